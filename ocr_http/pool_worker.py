"""A pool worker: the FastCGI Responder role over connections the supervisor hands it.

Forked by the supervisor, which has imported nothing heavy: numpy, OpenCV and ONNX Runtime are
imported here, after the fork, and the engine's sessions are built before the worker says it is
ready. A worker answers one request at a time with ``ocr_http.app.respond``, the CGI's own
application, so every path gives the same bytes.

Control messages on the worker's SOCK_SEQPACKET socket (one message each):
  supervisor → worker   ``C`` + the request's deadline (``time.monotonic``, 8-byte double) + a
                        connection (SCM_RIGHTS)   ``Q`` finish and exit
  worker → supervisor   ``R`` ready   ``I`` + request id (2 bytes, big-endian): a request began
                        (sent on its BEGIN_REQUEST, before its PARAMS are read, so that the
                        supervisor can answer it if the worker dies or overruns from then on)
                        ``B`` + request id + HEAD (1 byte) + the Origin header: its PARAMS are
                        read (what an answer in its place needs besides the id)
                        ``W`` about to write the response   ``D`` + 0/1 done (1: keep the connection)
                        ``J`` a job was submitted (the supervisor tells the job runners)
The supervisor keeps its own copy of every connection: if the worker dies before ``W``, it can
still answer the client itself.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import struct
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from ocr_core.deadline import NO_DEADLINE, Deadline
from ocr_core.errors import ErrorCode, OcrError
from ocr_core.process import configure_process, release_free_memory

from . import fastcgi
from .app import Services, log, respond
from .pool_settings import PoolSettings
from .pool_status import StatusBoard

READ_SIZE = 1 << 16
# After the response is out, what is left of the request body is read and dropped for at most
# this long (the server may still be sending a body that was refused early).
DRAIN_TIMEOUT_S = 5.0
MULTIPROC_DIR = "metrics"
CACHE_FILE = "results.sqlite"
MAX_ORIGIN = 2048
# A request's PARAMS (its CGI environment): web servers send a few kilobytes and cap request
# headers well below this; a client speaking to a TCP pool directly gets no more.
MAX_PARAMS_BYTES = 1 << 20
DEADLINE_MARGIN_S = 0.25
HANGUP_CHECK_EVERY_S = 0.05
# A worker with no request for this long gives its heap's free pages back (~20 MiB after pages).
IDLE_TRIM_S = 0.5


class ConnectionClosed(Exception):
    """The web server closed the connection (or broke the framing) mid-request."""


class Connection:
    """Records from one web-server connection, read as needed (blocking)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._parser = fastcgi.RecordParser()
        self._ready: list[fastcgi.Record] = []

    def next_record(self) -> fastcgi.Record | None:
        """The next record, or None at a clean end of the connection."""
        while not self._ready:
            try:
                data = self.sock.recv(READ_SIZE)
            except OSError as exc:
                raise ConnectionClosed(str(exc)) from None
            if not data:
                if self._parser.pending:
                    raise ConnectionClosed("the connection ended inside a record")
                return None
            try:
                self._ready.extend(self._parser.feed(data))
            except fastcgi.ProtocolError as exc:
                raise ConnectionClosed(str(exc)) from None
        return self._ready.pop(0)

    def peer_gone(self, request_id: int) -> bool:
        """Without blocking: has the web server closed its side, or aborted ``request_id``? What
        has arrived is queued for ``next_record``."""
        while True:
            try:
                data = self.sock.recv(READ_SIZE, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            except OSError:
                return True
            if not data:
                return True
            try:
                self._ready.extend(self._parser.feed(data))
            except fastcgi.ProtocolError:
                return True
        return any(r.type == fastcgi.ABORT_REQUEST and r.request_id == request_id for r in self._ready)


class WatchedDeadline(Deadline):
    """The request's deadline, which also stops the work once nobody waits for the answer: the web
    server closed the connection or sent ABORT_REQUEST (lighttpd does on a client's hang-up with
    ``tcp-fin-propagate``; Apache's mod_proxy_fcgi never does). Looked at every
    ``HANGUP_CHECK_EVERY_S`` at most, between the engine's steps (the body has been read by then)."""

    def __init__(self, deadline: Deadline, request: Request) -> None:
        super().__init__(deadline.budget_s, deadline.expires_at)
        self.request = request
        self.next_look = 0.0

    def check(self, stage: str) -> None:
        super().check(stage)
        now = time.monotonic()
        if now < self.next_look:
            return
        self.next_look = now + HANGUP_CHECK_EVERY_S
        if self.request.conn.peer_gone(self.request.id):
            self.request.aborted = True
            raise OcrError(ErrorCode.BAD_REQUEST, f"the web server aborted the request during {stage}")


class Request:
    """One request on a connection: its params, then its body as ``app.RequestBody``.

    Records that are not this request's stream are answered as the protocol asks: management
    queries, and any second request (no multiplexing: ``FCGI_CANT_MPX_CONN``).
    """

    def __init__(self, conn: Connection, request_id: int, flags: int, management: Mapping[str, str]) -> None:
        self.conn = conn
        self.id = request_id
        self.keep_conn = bool(flags & fastcgi.KEEP_CONN)
        self.aborted = False
        self.stdin_done = False
        self._management = management

    def _next(self) -> fastcgi.Record:
        while True:
            rec = self.conn.next_record()
            if rec is None:
                raise ConnectionClosed("the connection ended mid-request")
            if rec.request_id == fastcgi.MANAGEMENT_ID:
                answer_management(self.conn.sock, rec, self._management)
            elif rec.request_id != self.id:
                if rec.type == fastcgi.BEGIN_REQUEST:
                    self.conn.sock.sendall(fastcgi.end_request(rec.request_id, 0, fastcgi.CANT_MPX_CONN))
            elif rec.type == fastcgi.ABORT_REQUEST:
                self.aborted = True
                raise OcrError(ErrorCode.BAD_REQUEST, "the web server aborted the request")
            else:
                return rec

    def params(self) -> dict[str, str]:
        data = bytearray()
        while True:
            rec = self._next()
            if rec.type != fastcgi.PARAMS:
                raise ConnectionClosed(f"record type {rec.type} before the end of PARAMS")
            if not rec.content:
                try:
                    return fastcgi.decode_pairs(bytes(data))
                except fastcgi.ProtocolError as exc:
                    raise ConnectionClosed(str(exc)) from None
            data += rec.content
            if len(data) > MAX_PARAMS_BYTES:
                raise ConnectionClosed(f"PARAMS over {MAX_PARAMS_BYTES} bytes")

    def _stdin_chunk(self) -> bytes:
        """The next piece of the body; b"" once it has ended."""
        while not self.stdin_done:
            rec = self._next()
            if rec.type == fastcgi.STDIN:
                self.stdin_done = not rec.content
                return rec.content
            # DATA belongs to the Filter role: not ours; anything else is ignored as the spec allows.
        return b""

    def read_exactly(self, length: int) -> bytes:
        chunks, got = [], 0
        while got < length:
            chunk = self._stdin_chunk()
            if not chunk:
                raise OcrError(ErrorCode.BAD_REQUEST, f"the body ended after {got} of {length} bytes")
            chunks.append(chunk)
            got += len(chunk)
        data = b"".join(chunks)
        return data[:length] if got > length else data

    def read_unsized(self, cap: int) -> bytes:
        chunks, got = [], 0
        while chunk := self._stdin_chunk():
            got += len(chunk)
            if got > cap:
                raise OcrError(ErrorCode.PAYLOAD_TOO_LARGE,
                               f"the body is larger than the limit of {cap} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def drain(self) -> bool:
        """Read what is left of the body; False if it did not end in time (drop the connection)."""
        self.conn.sock.settimeout(DRAIN_TIMEOUT_S)
        try:
            while self._stdin_chunk():
                pass
        except (ConnectionClosed, OcrError, TimeoutError):
            return False
        finally:
            self.conn.sock.settimeout(None)
        return True


def answer_management(sock: socket.socket, rec: fastcgi.Record, values: Mapping[str, str]) -> None:
    """FCGI_GET_VALUES gets the values asked for that we know; other management types are unknown."""
    if rec.type == fastcgi.GET_VALUES:
        try:
            asked = fastcgi.decode_pairs(rec.content)
        except fastcgi.ProtocolError:
            asked = {}
        known = {name: values[name] for name in asked if name in values}
        sock.sendall(fastcgi.record(fastcgi.GET_VALUES_RESULT, 0, fastcgi.encode_pairs(known)))
    else:
        sock.sendall(fastcgi.unknown_type(rec.type))


class Worker:
    def __init__(self, ctl: socket.socket, run_dir: Path, settings: PoolSettings) -> None:
        self.ctl = ctl
        self.settings = settings
        board = StatusBoard.open(run_dir)
        self.services = self._services(run_dir, board)
        capacity = str(settings.workers + settings.queue_max)
        self.management = {"FCGI_MAX_CONNS": capacity, "FCGI_MAX_REQS": capacity, "FCGI_MPXS_CONNS": "0"}

    def _services(self, run_dir: Path, board: StatusBoard) -> Services:
        from .pool_metrics import PoolMetrics, PoolObserver

        cache = None
        if self.settings.cache_bytes:
            from .result_cache import ResultCache

            cache = ResultCache(run_dir / CACHE_FILE, self.settings.cache_bytes)
        jobs = None
        if self.settings.jobs.runners:
            from .jobs import JobStore

            # A submission wakes the idle job runners (through the supervisor) at once.
            jobs = JobStore(self.settings.jobs.store_dir(run_dir), self.settings.jobs,
                            on_submit=lambda: self.tell(b"J"))
        metrics = PoolMetrics(str(run_dir / MULTIPROC_DIR), board)
        return Services(cache=cache, observer=PoolObserver(), metrics=metrics.response,
                        pool_status=lambda: board.snapshot().health(), jobs=jobs)

    def tell(self, message: bytes) -> None:
        self.ctl.send(message)

    def run(self) -> None:
        served = False  # since the heap was last trimmed
        while True:
            # Idle for IDLE_TRIM_S after a request: hand the heap's free pages back. Not after each
            # request: the next one would fault them in again (pages +5-7% in an A/B).
            self.ctl.settimeout(IDLE_TRIM_S if served else None)
            try:
                message, fds, _flags, _addr = socket.recv_fds(self.ctl, 16, 1)
            except TimeoutError:
                release_free_memory()
                served = False
                continue
            except OSError:
                return
            finally:
                self.ctl.settimeout(None)
            if not message or message == b"Q":  # told to go, or the supervisor is gone
                for fd in fds:
                    os.close(fd)
                return
            if not fds:
                continue
            sock = socket.socket(fileno=fds[0])
            (expires_at,) = struct.unpack("!d", message[1:9]) if len(message) >= 9 else (math.inf,)
            keep = False
            try:
                keep = self.serve(Connection(sock), self._deadline(expires_at))
            except (ConnectionClosed, OSError):  # the server went away mid-request
                pass
            finally:
                sock.close()  # the supervisor's copy stays open when it keeps the connection
            served = True
            self.tell(b"D" + (b"\x01" if keep else b"\x00"))

    def _deadline(self, expires_at: float) -> Deadline:
        """The engine's deadline: a little before the supervisor's, so that a request over its
        time is answered ``503 timeout`` by the engine here rather than by killing this worker."""
        budget = self.settings.http.timeout_s
        if not budget or math.isinf(expires_at):
            return NO_DEADLINE
        return Deadline(budget, expires_at - min(DEADLINE_MARGIN_S, budget / 10))

    def serve(self, conn: Connection, deadline: Deadline = NO_DEADLINE) -> bool:
        """Answer one request; True if the connection stays open for the server's next one."""
        while True:
            rec = conn.next_record()
            if rec is None:
                return False
            if rec.request_id == fastcgi.MANAGEMENT_ID:
                answer_management(conn.sock, rec, self.management)
            elif rec.type == fastcgi.BEGIN_REQUEST:
                break
        try:
            role, flags = fastcgi.parse_begin(rec.content)
        except fastcgi.ProtocolError as exc:
            raise ConnectionClosed(str(exc)) from None
        if role != fastcgi.RESPONDER:
            conn.sock.sendall(fastcgi.end_request(rec.request_id, 0, fastcgi.UNKNOWN_ROLE))
            return bool(flags & fastcgi.KEEP_CONN)
        self.tell(b"I" + struct.pack("!H", rec.request_id))
        request = Request(conn, rec.request_id, flags, self.management)
        try:
            environ = request.params()
        except OcrError:  # aborted before it began
            conn.sock.sendall(fastcgi.end_request(request.id))
            return False
        head_only = environ.get("REQUEST_METHOD", "").upper() == "HEAD"
        # What the supervisor needs to answer this request itself if this worker dies or overruns.
        origin = environ.get("HTTP_ORIGIN", "").encode("utf-8", "surrogateescape")[:MAX_ORIGIN]
        self.tell(b"B" + struct.pack("!H?", request.id, head_only) + origin)
        watched = WatchedDeadline(deadline, request)
        response = respond(environ, request, self.settings.http, self.services, watched)
        self.tell(b"W")
        if request.aborted:  # nobody is waiting for the answer
            conn.sock.sendall(fastcgi.end_request(request.id))
            return False
        output = fastcgi.stream(fastcgi.STDOUT, request.id, response.to_cgi(include_body=not head_only))
        conn.sock.sendall(output + fastcgi.end_request(request.id))
        drained = request.drain()
        return drained and request.keep_conn


def warm_up() -> None:
    """Load the engine and run every stage once, so that the first request finds it warm."""
    import cv2
    import numpy as np

    from ocr_core.config import RecognizeOptions
    from ocr_core.engine import get_engine

    from .app import engine_config

    blank = cv2.imencode(".png", np.full((48, 320, 3), 255, np.uint8))[1].tobytes()
    engine = get_engine(engine_config())
    engine.recognize(blank, RecognizeOptions(mode="line"))
    engine.recognize(blank, RecognizeOptions(mode="page"))


def enter_child(environ: Mapping[str, str]) -> None:
    """A child of the supervisor (a worker, a job runner) takes its signals and environment."""
    # The supervisor decides when its children stop; a Ctrl-C or a SIGHUP sent to the whole
    # process group must not cut a request short.
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    os.environ.clear()
    os.environ.update(environ)
    configure_process(side_by_side=True)


def main(ctl: socket.socket, run_dir: Path, environ: Mapping[str, str], settings: PoolSettings) -> int:
    """Run as a freshly forked worker; the return value is the process' exit status."""
    enter_child({**environ, "PROMETHEUS_MULTIPROC_DIR": str(run_dir / MULTIPROC_DIR)})
    try:
        worker = Worker(ctl, run_dir, settings)
    except Exception as exc:  # e.g. a venv without prometheus_client: the supervisor backs off
        log(f"pool worker cannot start: {type(exc).__name__}: {exc}")
        return 3
    try:
        warm_up()
    except OcrError as exc:  # requests will say the same, each with its own status
        log(f"pool worker started without an engine ({exc.code.value}: {exc.message})")
    except Exception as exc:
        log(f"pool worker started without an engine: {type(exc).__name__}: {exc}")
    worker.tell(b"R")
    worker.run()
    sys.stdout.flush()
    return 0

