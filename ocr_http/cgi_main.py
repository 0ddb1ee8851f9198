"""Process-level CGI concerns: the wall-clock limit, writing the response once, fast exit.

The watchdog is a thread, not ``signal.alarm``: a Python signal handler only runs between
bytecodes of the main thread, which may sit inside one long ONNX Runtime call, whereas ONNX
Runtime, OpenCV and blocking reads release the GIL so the watchdog thread gets to run. Whoever
commits the response first (the request or the watchdog) is the only one to write it.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Mapping
from typing import NoReturn

from ocr_core.deadline import Deadline
from ocr_core.errors import ErrorCode, OcrError
from ocr_core.process import configure_process

from .app import Services, error_reply, log, respond
from .response import Response, error_response
from .settings import CgiSettings
from .slots import recognition_slot


class OneShotOutput:
    """stdout that accepts exactly one response, from whichever thread gets there first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._committed = False

    def commit(self, data: bytes, log_line: str = "") -> bool:
        """Write ``data`` unless a response was already written; log ``log_line`` first if so."""
        with self._lock:
            if self._committed:
                return False
            self._committed = True
            if log_line:
                log(log_line)
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(1, view):]
            except OSError:  # the client or server went away: nobody is left to answer
                pass
            return True


class RequestBody:
    """The request body on stdin, read exactly once and never past its end (RFC 3875 §4.2)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        raw = environ.get("CONTENT_LENGTH", "").strip()
        self._left: int | None = int(raw) if raw.isascii() and raw.isdigit() else None
        # Apache passes a chunked body with no CONTENT_LENGTH: it is there, of unknown length.
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        self._pending = bool(self._left) or (self._left is None and chunked)

    def read_exactly(self, length: int) -> bytes:
        chunks: list[bytes] = []
        remaining = length
        while remaining:
            chunk = os.read(0, min(remaining, 1 << 20))
            if not chunk:
                got = length - remaining
                raise OcrError(ErrorCode.BAD_REQUEST, f"the body ended after {got} of {length} bytes")
            chunks.append(chunk)
            remaining -= len(chunk)
        if self._left is not None:
            self._left -= length
            self._pending = self._left > 0
        return b"".join(chunks)

    def read_unsized(self, cap: int) -> bytes:
        raise OcrError(ErrorCode.LENGTH_REQUIRED, "this server passes chunked bodies to the CGI without a "
                                                  "length; send a Content-Length")

    def discard_rest(self) -> None:
        """Read and drop what the request did not consume (a refused 411/413/400 body).

        Apache's mod_cgid carries stdin and stdout on one socket: a script that exits with
        unread input gets the socket reset and its response cut off. Constant memory; bounded
        by the server's body limit and the watchdog.
        """
        while self._pending:
            chunk = os.read(0, 1 << 16 if self._left is None else min(self._left, 1 << 16))
            if not chunk:
                break
            if self._left is not None:
                self._left -= len(chunk)
                self._pending = self._left > 0


def _arm_watchdog(seconds: float, output: OneShotOutput, response: Response, head_only: bool) -> None:
    def expire() -> None:
        late = response.to_cgi(include_body=not head_only)
        output.commit(late, f"timeout: request stopped after {seconds:g} s")
        # Either way the response is out (commit holds its lock while writing): stop now, even
        # if the main thread is still discarding an unread body.
        os._exit(0)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


def main() -> NoReturn:
    arrived = time.monotonic()
    # httpoxy: a client's "Proxy:" header arrives as HTTP_PROXY; nothing here may ever use it.
    os.environ.pop("HTTP_PROXY", None)
    # Web servers run many CGI processes side by side, each for one request.
    configure_process(side_by_side=True, one_shot=True)
    head_only = os.environ.get("REQUEST_METHOD", "").upper() == "HEAD"
    output = OneShotOutput()
    body = RequestBody(os.environ)
    try:
        settings = CgiSettings.from_env()
        if settings.timeout_s:
            limit = settings.timeout_s
            timeout = OcrError(ErrorCode.TIMEOUT, f"the request took longer than the {limit:g} s limit")
            _arm_watchdog(limit, output, error_reply(timeout, os.environ, settings), head_only)
        # The core stops at the same limit, counted from the same instant; the watchdog remains
        # for a step the core cannot interrupt (one decode, one inference run).
        deadline = Deadline.start(settings.timeout_s, started_at=arrived)
        slot = functools.partial(recognition_slot, settings.cgi_slot_dir, settings.cgi_slots)
        response = respond(os.environ, body, settings, Services(recognition_slot=slot), deadline)
    except OcrError as exc:  # a misconfigured environment
        log(f"{exc.code.value}: {exc.message}")
        response = error_response(exc)
    except Exception as exc:  # last resort: respond() already maps everything it runs
        log(f"internal error: {type(exc).__name__}: {exc}")
        response = error_response(OcrError(ErrorCode.INTERNAL, "internal error; see the server's error log"))
    output.commit(response.to_cgi(include_body=not head_only))
    body.discard_rest()
    # The response is out: skip interpreter teardown (module and ONNX Runtime destructors).
    os._exit(0)
