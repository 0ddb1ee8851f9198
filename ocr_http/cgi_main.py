"""Process-level CGI concerns: the wall-clock limit, writing the response once, fast exit.

The watchdog is a thread, not ``signal.alarm``: a Python signal handler only runs between
bytecodes of the main thread, which may sit inside one long ONNX Runtime call, whereas ONNX
Runtime, OpenCV and blocking reads release the GIL so the watchdog thread gets to run. Whoever
commits the response first (the request or the watchdog) is the only one to write it.
"""

from __future__ import annotations

import os
import threading
from typing import NoReturn

from ocr_core.errors import ErrorCode, OcrError

from .app import cors_headers, log, respond
from .response import Response, error_response
from .settings import CgiSettings


class OneShotOutput:
    """stdout that accepts exactly one response, from whichever thread gets there first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._committed = False

    def commit(self, data: bytes) -> bool:
        with self._lock:
            if self._committed:
                return False
            self._committed = True
            view = memoryview(data)
            while view:
                view = view[os.write(1, view):]
            return True


def read_exactly(length: int) -> bytes:
    """Exactly ``length`` bytes of the request body (RFC 3875 §4.2: never read past it)."""
    chunks: list[bytes] = []
    remaining = length
    while remaining:
        chunk = os.read(0, min(remaining, 1 << 20))
        if not chunk:
            got = length - remaining
            raise OcrError(ErrorCode.BAD_REQUEST, f"the body ended after {got} of {length} bytes")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _arm_watchdog(seconds: float, output: OneShotOutput, response: Response, head_only: bool) -> None:
    def expire() -> None:
        if output.commit(response.to_cgi(include_body=not head_only)):
            log(f"timeout: request stopped after {seconds:g} s")
            os._exit(0)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


def main() -> NoReturn:
    # httpoxy: a client's "Proxy:" header arrives as HTTP_PROXY; nothing here may ever use it.
    os.environ.pop("HTTP_PROXY", None)
    # Web servers run many CGI processes side by side: one ONNX Runtime thread each by default.
    os.environ.setdefault("CRNNOCR_THREADS", "1")
    # ONNX Runtime's telemetry would write a device id and an event database under the server
    # user's $HOME (or warn on every hit when it cannot) and try to upload them: never for a CGI.
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    head_only = os.environ.get("REQUEST_METHOD", "").upper() == "HEAD"
    output = OneShotOutput()
    try:
        settings = CgiSettings.from_env()
    except OcrError as exc:
        log(f"configuration error: {exc}")
        response = error_response(exc)
    else:
        if settings.timeout_s:
            limit = settings.timeout_s
            timeout = OcrError(ErrorCode.TIMEOUT, f"the request took longer than the {limit:g} s limit")
            late = error_response(timeout, *cors_headers(os.environ, settings))
            _arm_watchdog(limit, output, late, head_only)
        response = respond(os.environ, read_exactly, settings)
    output.commit(response.to_cgi(include_body=not head_only))
    # The response is out: skip interpreter teardown (module and ONNX Runtime destructors).
    os._exit(0)
