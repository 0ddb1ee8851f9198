"""The worker pool's supervisor: ``crnnocr-pool`` (``python -m ocr_http.pool``).

    crnnocr-pool --socket /run/crnnocr/pool.sock [--tcp 127.0.0.1:9000] [--env-file FILE]
    crnnocr-pool --listen-fd 0 --run-dir DIR     (spawned by lighttpd's fastcgi.server bin-path)

One single-threaded process that imports nothing heavy (stdlib and this package's cheap modules:
no numpy, OpenCV or ONNX Runtime, ever) owns the listening sockets and forks the workers, which
load the engine after the fork (``pool_worker``). It accepts every connection itself and hands
it to an idle worker over a socketpair (SCM_RIGHTS), keeping a copy, so that:

- a full house is answered at once: past the bounded queue, ``503 busy`` with ``Retry-After``;
- a request past ``CRNNOCR_TIMEOUT_S`` (queue time included) is answered ``503 timeout`` and its
  worker stopped (a worker inside ONNX Runtime cannot be interrupted any other way);
- a worker that dies mid-request (``kill -9``, the OOM killer, a crash in native code) costs its
  client a JSON ``503 busy``, not a dropped connection, and is replaced;
- workers are recycled after ``CRNNOCR_POOL_MAX_REQUESTS`` requests or past
  ``CRNNOCR_POOL_MAX_RSS_MB``, between requests, with the replacement forked at once;
- SIGHUP re-reads ``--env-file`` and starts a new generation of workers (new configuration, model
  packs read anew from disk); each old worker retires once a new one is ready to take its place,
  after finishing what it is doing, so no request is dropped and capacity never dips;
- SIGTERM (and SIGINT) stop accepting, finish every accepted request, then exit;
- ``CRNNOCR_JOB_RUNNERS`` job runners (``job_runner``), forked beside the workers, run the
  asynchronous jobs of ``async=1`` requests from the job store (``jobs``); one that dies is
  replaced, and on SIGTERM or SIGHUP each gives its job back to the queue at its next page.

Every response it writes itself is made by ``ocr_http.app.error_reply``, as the workers' are.
Why not flup, fcgisgi or uWSGI: see the README ("Why a FastCGI server of our own").
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import selectors
import signal
import socket
import sqlite3
import stat
import struct
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ocr_core.errors import ErrorCode, OcrError

from . import fastcgi, jobs, result_cache
from .app import error_reply
from .pool_settings import PoolSettings, SettingsError, read_env_file
from .pool_status import MAX_WORKERS, StatusBoard, WorkerState
from .pool_worker import MULTIPROC_DIR

DEFAULT_SOCKET = "/run/crnnocr/pool.sock"
ANSWER_TIMEOUT_S = 10.0  # reading a request the supervisor answers itself, then the rest of its body
STOP_SLACK_S = 10.0  # SIGTERM: what is in flight gets its timeout and this much more
SPAWN_BACKOFF_MAX_S = 30.0
PARENT_CHECK_S = 1.0
RECV_SIZE = 1 << 16
CTL_MESSAGE_MAX = 4096


def log(message: str) -> None:
    sys.stderr.write(f"crnnocr-pool: {message}\n")
    sys.stderr.flush()


@dataclass(eq=False)
class Conn:
    """A web-server connection the supervisor holds (its own copy while a worker has it too)."""

    sock: socket.socket
    deadline: float
    request_id: int | None = None  # peeked before dispatch, or from the worker's I message
    head_only: bool = False
    origin: str = ""
    writing: bool = False  # the worker has started writing the response: hands off


@dataclass(eq=False)
class Worker:
    pid: int
    ctl: socket.socket
    generation: int
    slot: int
    started: float
    state: WorkerState = WorkerState.STARTING
    retiring: bool = False
    served: int = 0
    conn: Conn | None = None


@dataclass(eq=False)
class JobRunner:
    """A job runner process; its control socket closes when it exits."""

    pid: int
    ctl: socket.socket
    generation: int
    started: float
    told_to_go: bool = False


@dataclass(eq=False)
class Answer:
    """A connection the supervisor answers itself: read to the end of PARAMS, answer ``error``,
    then read and drop the rest of the body (so the server is not cut off mid-send)."""

    sock: socket.socket
    error: OcrError
    deadline: float
    parser: fastcgi.RecordParser = field(default_factory=fastcgi.RecordParser)
    request_id: int | None = None
    params: bytearray = field(default_factory=bytearray)
    answered: bool = False


def _send_now(sock: socket.socket, data: bytes) -> bool:
    """Write without blocking (the descriptor may be shared with a worker: never set O_NONBLOCK)."""
    try:
        return sock.send(data, socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL) == len(data)
    except OSError:
        return False


def _recv_now(sock: socket.socket) -> bytes | None:
    """What is readable now; b"" at EOF; None if nothing is."""
    try:
        return sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def _peek_request_id(sock: socket.socket) -> int | None:
    """The id of the request the connection starts with, if its first record is already here:
    then a worker that dies before it reads that far still leaves us able to answer."""
    try:
        head = sock.recv(fastcgi.HEADER_LEN, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except OSError:
        return None
    if len(head) < fastcgi.HEADER_LEN:
        return None
    version, type_, request_id, _length, _padding = fastcgi.HEADER.unpack(head)
    return request_id if (version, type_) == (fastcgi.VERSION, fastcgi.BEGIN_REQUEST) else None


def _unread(sock: socket.socket) -> bool:
    """Nobody has read from the connection, as far as its head shows: nothing has arrived yet, or
    what has starts like a BEGIN_REQUEST record (the first record of every request)."""
    try:
        head = sock.recv(2, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return bool(head) and bytes([fastcgi.VERSION, fastcgi.BEGIN_REQUEST]).startswith(head)


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


class Supervisor:
    def __init__(self, listeners: list[socket.socket], run_dir: Path, base_env: dict[str, str],
                 env_file: Path | None, settings: PoolSettings, *, owned_paths: Sequence[Path] = (),
                 watch_parent: bool = False) -> None:
        self.listeners = listeners
        self.run_dir = run_dir
        self.base_env = base_env
        self.env_file = env_file
        self.env = self._environment()
        self.settings = settings
        self.owned_paths = owned_paths
        self.parent = os.getppid() if watch_parent else None
        self.generation = 1
        self.workers: list[Worker] = []
        self.runners: list[JobRunner] = []
        self.runner_failures = 0
        self.next_runner_spawn = 0.0
        self.queue: deque[Conn] = deque()
        self.idle_conns: dict[int, Conn] = {}
        self.answers: dict[int, Answer] = {}
        self.closing: dict[int, tuple[socket.socket, float]] = {}
        self.exit_status: dict[int, int] = {}
        self.signals: list[int] = []
        self.stopping = False
        self.stop_deadline = float("inf")
        self.spawn_failures = 0
        self.next_spawn = 0.0
        self.next_parent_check = 0.0
        self.selector = selectors.DefaultSelector()
        self.board = StatusBoard.create(run_dir)

    # --- set-up ----------------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        env = dict(self.base_env)
        if self.env_file is not None:
            env.update(read_env_file(self.env_file))
        return env

    def _prepare_run_dir(self) -> None:
        metrics = self.run_dir / MULTIPROC_DIR
        metrics.mkdir(exist_ok=True)
        for stale in metrics.glob("*.db"):  # counts of an earlier run (prometheus_client's rule)
            stale.unlink()
        result_cache.create(self.run_dir)
        if self.settings.jobs.runners:
            try:
                jobs.create(self.settings.jobs.store_dir(self.run_dir))
            except (OSError, sqlite3.Error) as exc:  # requests are served all the same
                log(f"the job store cannot be used ({exc}); asynchronous jobs are off")
                self.settings = replace(self.settings, jobs=replace(self.settings.jobs, runners=0))

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.signals.append(signum)

    def run(self) -> int:
        self._prepare_run_dir()
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, self._on_signal)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        self.selector.register(wake_r, selectors.EVENT_READ, ("wake", None))
        for listener in self.listeners:
            listener.setblocking(False)
            self.selector.register(listener, selectors.EVENT_READ, ("listen", listener))
        self.board.set("pid", os.getpid())
        self.board.set("started_at", time.time())
        self._publish_settings()
        log(f"started: {self.settings.workers} workers, queue {self.settings.queue_max}, pid {os.getpid()}")
        while not (self.stopping and not self.workers and not self.runners and not self.answers
                   and not self.closing):
            now = time.monotonic()
            self._balance(now)
            self._dispatch(now)
            self._publish()
            for key, _events in self.selector.select(self._wait_s(now)):
                kind, obj = key.data
                if kind == "wake":
                    while _recv_pipe(wake_r):
                        pass
                elif kind == "listen":
                    self._accept(obj)
                elif kind == "worker":
                    self._from_worker(obj)
                elif kind == "runner":
                    self._from_runner(obj)
                elif kind == "idle":
                    self._idle_readable(obj)
                elif kind == "answer":
                    self._answer_readable(obj)
                elif kind == "closing":
                    self._closing_readable(obj)
            self._handle_signals()
            self._check_deadlines(time.monotonic())
        log("stopped")
        return 0

    def _wait_s(self, now: float) -> float:
        deadlines = [self.next_spawn if self.next_spawn > now else now + 1.0, now + PARENT_CHECK_S]
        if self.next_runner_spawn > now:
            deadlines.append(self.next_runner_spawn)
        deadlines += [w.conn.deadline for w in self.workers if w.conn]
        deadlines += [c.deadline for c in self.queue]
        deadlines += [a.deadline for a in self.answers.values()]
        deadlines += [d for _s, d in self.closing.values()]
        if self.stopping:
            deadlines.append(self.stop_deadline)
        return max(0.0, min(deadlines) - now)

    # --- workers -----------------------------------------------------------------------------------

    def _free_slot(self) -> int:
        used = {w.slot for w in self.workers}
        return next(i for i in range(MAX_WORKERS) if i not in used)

    def _fork(self, role: str) -> tuple[int, socket.socket]:
        """A child running ``role`` (``pool_worker`` or ``job_runner``) with one end of a control
        socket; its pid and the other end."""
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:  # the child: never returns into the supervisor's code
            code = 1
            try:
                keep = child_end.fileno()
                devnull = os.open(os.devnull, os.O_RDONLY)
                os.dup2(devnull, 0)  # fd 0 may be lighttpd's listening socket
                os.closerange(3, keep)
                os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
                from importlib import import_module

                code = import_module(f".{role}", __package__).main(child_end, self.run_dir, self.env,
                                                                     self.settings)
            except BaseException as exc:
                log(f"{role} {os.getpid()}: {type(exc).__name__}: {exc}")
            finally:
                os._exit(code)
        child_end.close()
        return pid, parent_end

    def _spawn(self) -> None:
        slot = self._free_slot()
        pid, parent_end = self._fork("pool_worker")
        worker = Worker(pid, parent_end, self.generation, slot, time.monotonic())
        self.workers.append(worker)
        self.selector.register(parent_end, selectors.EVENT_READ, ("worker", worker))

    def _balance(self, now: float) -> None:
        """Spawn what the current generation lacks; retire old workers the new ones replace."""
        if self.stopping:
            return
        current = [w for w in self.workers if w.generation == self.generation and not w.retiring]
        missing = self.settings.workers - len(current)
        if missing > 0 and now >= self.next_spawn:
            for _ in range(missing):
                self._spawn()
        ready = sum(1 for w in current if w.state in (WorkerState.IDLE, WorkerState.BUSY))
        old = [w for w in self.workers if w.generation != self.generation and not w.retiring]
        excess = len(old) - max(0, self.settings.workers - ready)
        for worker in sorted(old, key=lambda w: w.state != WorkerState.IDLE)[:max(0, excess)]:
            self.board.add("restarts_reloaded")
            self._retire(worker)
        self._balance_runners(now)

    def _balance_runners(self, now: float) -> None:
        """As many job runners of this generation as the settings say; older ones are told to go
        (each gives its job back to the queue, which a new one takes)."""
        for runner in self.runners:
            if runner.generation != self.generation:
                self._tell_runner(runner)
        current = sum(1 for r in self.runners if r.generation == self.generation)
        if now >= self.next_runner_spawn:
            for _ in range(self.settings.jobs.runners - current):
                pid, ctl = self._fork("job_runner")
                runner = JobRunner(pid, ctl, self.generation, now)
                self.runners.append(runner)
                self.selector.register(ctl, selectors.EVENT_READ, ("runner", runner))

    def _tell_runner(self, runner: JobRunner) -> None:
        """Ask it to stop at its job's next page; once."""
        if not runner.told_to_go:
            runner.told_to_go = True
            with contextlib.suppress(OSError):
                runner.ctl.send(b"Q", socket.MSG_DONTWAIT)

    def _from_runner(self, runner: JobRunner) -> None:
        """A runner says nothing: its control socket is readable when it has exited."""
        try:
            if runner.ctl.recv(CTL_MESSAGE_MAX, socket.MSG_DONTWAIT):
                return
        except BlockingIOError:
            return
        except OSError:
            pass
        self.selector.unregister(runner.ctl)
        runner.ctl.close()
        self.runners.remove(runner)
        status = self._reap(runner.pid)
        if self.stopping or runner.generation != self.generation:
            return
        # A runner exits only when told to: anything else is a death (its job runs again once
        # its lease runs out). Back off if they keep dying.
        if time.monotonic() - runner.started > SPAWN_BACKOFF_MAX_S:
            self.runner_failures = 0
        self.runner_failures += 1
        self.next_runner_spawn = time.monotonic() + min(SPAWN_BACKOFF_MAX_S, 0.25 * 2 ** self.runner_failures)
        log(f"job runner {runner.pid} {_describe(status)}; replacing it")

    def _retire(self, worker: Worker) -> None:
        worker.retiring = True
        if worker.state in (WorkerState.IDLE, WorkerState.STARTING):
            self._tell(worker, b"Q")
            worker.state = WorkerState.RETIRING

    def _tell(self, worker: Worker, message: bytes, fds: Sequence[int] = ()) -> bool:
        try:
            socket.send_fds(worker.ctl, [message], list(fds))
            return True
        except OSError:
            return False

    def _from_worker(self, worker: Worker) -> None:
        while True:
            try:
                message = worker.ctl.recv(CTL_MESSAGE_MAX, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError:
                message = b""
            if not message:
                self._worker_gone(worker)
                return
            self._worker_said(worker, message)

    def _worker_said(self, worker: Worker, message: bytes) -> None:
        kind = message[:1]
        if kind == b"R":
            self.spawn_failures = 0
            if worker.retiring:
                self._tell(worker, b"Q")
                worker.state = WorkerState.RETIRING
            else:
                worker.state = WorkerState.IDLE
        elif kind == b"I" and worker.conn is not None and len(message) == 3:
            (worker.conn.request_id,) = struct.unpack("!H", message[1:3])
        elif kind == b"B" and worker.conn is not None and len(message) >= 4:
            worker.conn.request_id, worker.conn.head_only = struct.unpack("!H?", message[1:4])
            worker.conn.origin = message[4:].decode("utf-8", "surrogateescape")
        elif kind == b"W" and worker.conn is not None:
            worker.conn.writing = True
        elif kind == b"D":
            self._worker_done(worker, keep=message[1:2] == b"\x01")
        elif kind == b"J":
            for runner in self.runners:
                if not runner.told_to_go:
                    with contextlib.suppress(OSError):
                        runner.ctl.send(b"J", socket.MSG_DONTWAIT)

    def _worker_done(self, worker: Worker, keep: bool) -> None:
        conn, worker.conn = worker.conn, None
        worker.served += 1
        self.board.add("served")
        if conn is not None:
            if keep and not self.stopping:
                conn.request_id, conn.writing, conn.head_only, conn.origin = None, False, False, ""
                self.idle_conns[conn.sock.fileno()] = conn
                self.selector.register(conn.sock, selectors.EVENT_READ, ("idle", conn))
            else:
                conn.sock.close()
        limit = self.settings.max_requests
        if not worker.retiring and ((limit and worker.served >= limit) or (
                self.settings.max_rss_bytes and _rss_bytes(worker.pid) > self.settings.max_rss_bytes)):
            self.board.add("restarts_recycled")
            worker.retiring = True
        if worker.retiring or self.stopping:
            self._tell(worker, b"Q")
            worker.state = WorkerState.RETIRING
        else:
            worker.state = WorkerState.IDLE

    def _worker_gone(self, worker: Worker, *, reason: str = "died") -> None:
        """The worker's control socket closed: it exited or was killed. Answer its client if we can."""
        self.selector.unregister(worker.ctl)
        worker.ctl.close()
        self.workers.remove(worker)
        self.board.clear_worker(worker.slot)
        status = self._reap(worker.pid)
        conn = worker.conn
        expected = worker.retiring and conn is None
        if not expected:
            if worker.state == WorkerState.STARTING and reason == "died":  # a start that fails: back off
                self.spawn_failures += 1
                delay = min(SPAWN_BACKOFF_MAX_S, 0.5 * 2 ** self.spawn_failures)
                self.next_spawn = time.monotonic() + delay
            if not worker.retiring and reason == "died":
                self.board.add("restarts_died")
            what = ("while answering a request" if conn else "while starting"
                    if worker.state == WorkerState.STARTING else "while idle")
            if reason == "died":
                log(f"worker {worker.pid} {_describe(status)} {what}; replacing it")
        if conn is None:
            return
        error = (OcrError(ErrorCode.TIMEOUT, f"the request took longer than the "
                          f"{self.settings.http.timeout_s:g} s limit") if reason == "timed_out"
                 else OcrError(ErrorCode.BUSY, "the worker answering this request stopped; retry"))
        if conn.request_id is None and not conn.writing and _unread(conn.sock):
            # It died before reading a byte (a connection is handed over as soon as it is
            # accepted, often before the server has written the request): answer it as a refusal.
            self._answer(conn.sock, error)
            return
        if conn.writing or conn.request_id is None:
            conn.sock.close()  # its answer is (partly) out, or its first bytes went with the worker
            return
        environ = {"HTTP_ORIGIN": conn.origin} if conn.origin else {}
        response = error_reply(error, environ, self.settings.http)
        output = response.to_cgi(include_body=not conn.head_only)
        data = fastcgi.stream(fastcgi.STDOUT, conn.request_id, output) + fastcgi.end_request(conn.request_id)
        _send_now(conn.sock, data)
        self._close_soon(conn.sock)

    def _reap(self, pid: int) -> int:
        if pid in self.exit_status:
            return self.exit_status.pop(pid)
        try:
            _pid, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return 0
        return status

    def _reap_any(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.exit_status[pid] = status

    def _stop_worker(self, worker: Worker) -> None:
        """Kill a worker over its deadline, then answer its client 503 timeout (unless it was writing)."""
        try:
            os.kill(worker.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.exit_status[worker.pid] = self._reap(worker.pid)
        # Messages it sent before dying (a W among them means hands off the connection).
        while True:
            try:
                message = worker.ctl.recv(CTL_MESSAGE_MAX, socket.MSG_DONTWAIT)
            except OSError:
                break
            if not message:
                break
            if message[:1] in (b"I", b"B", b"W"):
                self._worker_said(worker, message)
        self.board.add("timeouts")
        if not worker.retiring:
            self.board.add("restarts_timed_out")
        log(f"timeout: request stopped after {self.settings.http.timeout_s:g} s; "
            f"worker {worker.pid} replaced")
        self._worker_gone(worker, reason="timed_out")

    # --- connections -------------------------------------------------------------------------------

    def _deadline(self, now: float) -> float:
        return now + self.settings.http.timeout_s if self.settings.http.timeout_s else float("inf")

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log(f"cannot accept a connection: {exc.strerror}")
                return
            self._admit(Conn(sock, self._deadline(time.monotonic())))

    def _admit(self, conn: Conn) -> None:
        if len(self.queue) < self.settings.queue_max or (self._idle_worker() is not None and not self.queue):
            self.queue.append(conn)
            self._dispatch(time.monotonic())
        else:
            self.board.add("rejected_busy")
            self._answer(conn.sock, OcrError(ErrorCode.BUSY, "the server is at its limit of concurrent "
                                             "requests; retry shortly"))

    def _idle_worker(self) -> Worker | None:
        idle = [w for w in self.workers if w.state == WorkerState.IDLE and not w.retiring]
        # The newest generation first: after a reload, its workers have the new configuration.
        return max(idle, key=lambda w: w.generation, default=None)

    def _dispatch(self, now: float) -> None:
        while self.queue:
            worker = self._idle_worker()
            if worker is None:
                return
            conn = self.queue.popleft()
            if now > conn.deadline:
                self._answer_timeout(conn)
                continue
            if conn.request_id is None:
                conn.request_id = _peek_request_id(conn.sock)
            # Counted before the worker has the request, so that a health request counts itself
            # (the next _publish corrects the count if the hand-over fails).
            self.board.set("busy", 1 + sum(1 for w in self.workers if w.state == WorkerState.BUSY))
            # With the request's deadline (monotonic clocks agree across processes), so that the
            # worker's engine stops in time by itself and the kill below stays a backstop.
            if not self._tell(worker, b"C" + struct.pack("!d", conn.deadline), [conn.sock.fileno()]):
                self.queue.appendleft(conn)
                self._from_worker(worker)  # it is gone: find out and clean up
                continue
            worker.conn = conn
            worker.state = WorkerState.BUSY

    def _answer_timeout(self, conn: Conn) -> None:
        self.board.add("timeouts")
        log(f"timeout: request waited longer than {self.settings.http.timeout_s:g} s for a worker")
        self._answer(conn.sock, OcrError(ErrorCode.TIMEOUT, f"the request took longer than the "
                                         f"{self.settings.http.timeout_s:g} s limit"))

    def _idle_readable(self, conn: Conn) -> None:
        """A kept connection has something: the server's next request (or its end)."""
        self.selector.unregister(conn.sock)
        del self.idle_conns[conn.sock.fileno()]
        try:
            peek = conn.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except OSError:
            peek = b""
        if not peek or self.stopping:
            conn.sock.close()
            return
        conn.deadline = self._deadline(time.monotonic())
        self._admit(conn)

    def _answer(self, sock: socket.socket, error: OcrError) -> None:
        answer = Answer(sock, error, time.monotonic() + ANSWER_TIMEOUT_S)
        self.answers[sock.fileno()] = answer
        self.selector.register(sock, selectors.EVENT_READ, ("answer", answer))
        self._answer_readable(answer)

    def _answer_readable(self, answer: Answer) -> None:
        data = _recv_now(answer.sock)
        if data is None:
            return
        try:
            records = list(answer.parser.feed(data)) if data else []
        except fastcgi.ProtocolError:
            records, data = [], b""
        for rec in records:
            if rec.request_id == fastcgi.MANAGEMENT_ID:
                _send_now(answer.sock, fastcgi.unknown_type(rec.type) if rec.type != fastcgi.GET_VALUES
                          else fastcgi.record(fastcgi.GET_VALUES_RESULT, 0, b""))
            elif rec.type == fastcgi.BEGIN_REQUEST and answer.request_id is None:
                answer.request_id = rec.request_id
            elif rec.request_id != answer.request_id:
                continue
            elif rec.type == fastcgi.PARAMS and not answer.answered:
                if rec.content:
                    answer.params += rec.content
                else:
                    self._send_answer(answer)
            elif rec.type == fastcgi.STDIN and not rec.content and answer.answered:
                data = b""  # the body is all in: done
                break
            elif rec.type == fastcgi.ABORT_REQUEST:
                data = b""
                break
        if not data:
            self._drop_answer(answer)

    def _send_answer(self, answer: Answer) -> None:
        assert answer.request_id is not None
        try:
            environ = fastcgi.decode_pairs(bytes(answer.params))
        except fastcgi.ProtocolError:
            environ = {}
        head_only = environ.get("REQUEST_METHOD", "").upper() == "HEAD"
        response = error_reply(answer.error, environ, self.settings.http)
        data = fastcgi.stream(fastcgi.STDOUT, answer.request_id, response.to_cgi(include_body=not head_only))
        _send_now(answer.sock, data + fastcgi.end_request(answer.request_id))
        answer.answered = True
        answer.params.clear()

    def _drop_answer(self, answer: Answer) -> None:
        self.selector.unregister(answer.sock)
        del self.answers[answer.sock.fileno()]
        answer.sock.close()

    def _close_soon(self, sock: socket.socket) -> None:
        """Read and drop until the server closes (it has our END_REQUEST), or a deadline."""
        self.closing[sock.fileno()] = (sock, time.monotonic() + ANSWER_TIMEOUT_S)
        self.selector.register(sock, selectors.EVENT_READ, ("closing", sock))

    def _closing_readable(self, sock: socket.socket) -> None:
        if _recv_now(sock) == b"":
            self._drop_closing(sock)

    def _drop_closing(self, sock: socket.socket) -> None:
        self.selector.unregister(sock)
        del self.closing[sock.fileno()]
        sock.close()

    def _check_deadlines(self, now: float) -> None:
        for worker in list(self.workers):
            conn = worker.conn
            if conn is not None and now > conn.deadline and not conn.writing:
                self._stop_worker(worker)
        while self.queue and now > min(c.deadline for c in self.queue):
            expired = min(self.queue, key=lambda c: c.deadline)
            self.queue.remove(expired)
            self._answer_timeout(expired)
        for answer in [a for a in self.answers.values() if now > a.deadline]:
            self._drop_answer(answer)
        for sock in [s for s, d in self.closing.values() if now > d]:
            self._drop_closing(sock)
        if self.stopping and now > self.stop_deadline:
            for pid in [w.pid for w in self.workers] + [r.pid for r in self.runners]:
                os.kill(pid, signal.SIGKILL)
            for worker in list(self.workers):
                self._worker_gone(worker, reason="stopped")
        if self.parent is not None and now >= self.next_parent_check:
            self.next_parent_check = now + PARENT_CHECK_S
            if os.getppid() != self.parent:
                log("the server that started the pool is gone; stopping")
                self._stop()

    # --- signals -----------------------------------------------------------------------------------

    def _handle_signals(self) -> None:
        pending, self.signals = self.signals, []
        for signum in pending:
            if signum == signal.SIGCHLD:
                self._reap_any()
            elif signum == signal.SIGHUP:
                self._reload()
            elif signum in (signal.SIGTERM, signal.SIGINT):
                self._stop()
        # A worker reaped here has closed its control socket too: its EOF comes through select.

    def _reload(self) -> None:
        try:
            env = self._environment()
            settings = PoolSettings.from_env(env)
        except SettingsError as exc:
            log(f"reload refused, the running configuration stays: {exc}")
            return
        self.env, self.settings = env, settings
        self.generation += 1
        self.next_spawn = self.next_runner_spawn = 0.0
        self.spawn_failures = 0
        self._publish_settings()
        log(f"reloading: generation {self.generation}, {settings.workers} workers")

    def _stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.stop_deadline = time.monotonic() + self.settings.http.timeout_s + STOP_SLACK_S \
            if self.settings.http.timeout_s else float("inf")
        for listener in self.listeners:
            self.selector.unregister(listener)
            listener.close()
        for path in self.owned_paths:
            path.unlink(missing_ok=True)
        for conn in list(self.idle_conns.values()):
            self.selector.unregister(conn.sock)
            conn.sock.close()
        self.idle_conns.clear()
        for runner in self.runners:
            self._tell_runner(runner)
        log(f"stopping: {len(self.queue)} queued and {sum(1 for w in self.workers if w.conn)} running "
            "requests finish first")

    # --- status ------------------------------------------------------------------------------------

    def _publish_settings(self) -> None:
        self.board.set("generation", self.generation)
        self.board.set("workers_target", self.settings.workers)
        self.board.set("queue_max", self.settings.queue_max)

    def _publish(self) -> None:
        if self.stopping and not self.queue:
            for worker in self.workers:
                if worker.state in (WorkerState.IDLE, WorkerState.STARTING) and not worker.retiring:
                    worker.retiring = True
                    self._tell(worker, b"Q")
                    worker.state = WorkerState.RETIRING
        self.board.set("queue_depth", len(self.queue))
        self.board.set("busy", sum(1 for w in self.workers if w.state == WorkerState.BUSY))
        serving = (WorkerState.IDLE, WorkerState.BUSY)
        self.board.set("alive", sum(1 for w in self.workers if w.state in serving))
        for w in self.workers:
            self.board.set_worker(w.slot, w.pid, w.generation, w.state, w.served, w.started)


def _recv_pipe(fd: int) -> bool:
    try:
        return bool(os.read(fd, 512))
    except BlockingIOError:
        return False


# --- the command line ------------------------------------------------------------------------------

def _unix_listener(path: Path, mode: int) -> socket.socket:
    """Bind ``path``, replacing a stale socket file (one nobody answers on), never another file."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(info.st_mode):
            raise SettingsError(f"{path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()
        else:
            raise SettingsError(f"another process answers on {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o777 & ~mode)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old_umask)
    os.chmod(path, mode)
    sock.listen(socket.SOMAXCONN)
    return sock


def _tcp_listener(address: str) -> socket.socket:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise SettingsError(f"--tcp {address!r}: expected HOST:PORT")
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), int(port)))
    sock.listen(socket.SOMAXCONN)
    return sock


def _inherited_listener(fd: int) -> socket.socket:
    try:
        sock = socket.socket(fileno=fd)
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            raise OSError("not listening")
    except OSError as exc:
        raise SettingsError(f"--listen-fd {fd} is not a listening socket ({exc})") from None
    return sock


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crnnocr-pool", description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", type=Path, help=f"Unix socket to listen on (e.g. {DEFAULT_SOCKET})")
    parser.add_argument("--socket-mode", default="660", help="its permissions, octal (default 660)")
    parser.add_argument("--tcp", action="append", default=[], metavar="HOST:PORT",
                        help="also listen on TCP (no authentication: bind a private address)")
    parser.add_argument("--listen-fd", type=int, help="a listening socket passed by the web server (0)")
    parser.add_argument("--run-dir", type=Path,
                        help="status, metrics and result cache (default: the socket's directory)")
    parser.add_argument("--env-file", type=Path, help="KEY=VALUE lines over the environment; "
                        "read again on SIGHUP")
    args = parser.parse_args(argv)
    os.environ.pop("HTTP_PROXY", None)
    listeners: list[socket.socket] = []
    owned: list[Path] = []
    try:
        if args.socket is None and args.listen_fd is None and not args.tcp:
            raise SettingsError("give --socket PATH, --listen-fd N or --tcp HOST:PORT")
        run_dir = args.run_dir or (args.socket.parent if args.socket else None)
        if run_dir is None:
            raise SettingsError("give --run-dir")
        run_dir = run_dir.resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
        # Work in the run directory, as a daemon does: the directory it was started from may be
        # one its workers' user cannot read (a checkout under a 0700 home), and OpenVINO aborts
        # at model load when it cannot stat its working directory.
        args.socket = args.socket.absolute() if args.socket else None
        args.env_file = args.env_file.absolute() if args.env_file else None
        os.chdir(run_dir)
        base_env = dict(os.environ)
        env = dict(base_env)
        if args.env_file is not None:
            env.update(read_env_file(args.env_file))
        settings = PoolSettings.from_env(env)
        if args.listen_fd is not None:
            listeners.append(_inherited_listener(args.listen_fd))
        if args.socket is not None:
            listeners.append(_unix_listener(args.socket.absolute(), int(args.socket_mode, 8)))
            owned.append(args.socket.absolute())
        listeners += [_tcp_listener(address) for address in args.tcp]
    except (SettingsError, OSError, ValueError) as exc:
        log(f"cannot start: {exc}")
        return 2
    supervisor = Supervisor(listeners, run_dir, base_env, args.env_file, settings, owned_paths=owned,
                            watch_parent=args.listen_fd is not None)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
