"""A job runner: reads the job store's queued jobs one at a time, page by page, beside the workers.

Forked by the pool's supervisor (``CRNNOCR_JOB_RUNNERS`` of them) so that long documents never
take a worker that synchronous requests need; like a worker it imports the engine after the fork
(when its first job comes, see ``main``).
It claims the oldest queued job under a lease (``ocr_http.jobs``), which a heartbeat thread renews
while the engine works (ONNX Runtime releases the GIL), and records ``pages_done`` after each page.
It stops a job at the next page when the job was deleted (its lease cannot be renewed) and, told
to stop (``Q`` on its control socket, or the socket closing: the supervisor is going), gives the
job back to the queue uncounted, so that the next start of the pool runs it again.

A finished job's result is stored rendered in every format (``RESULT_FORMATS``): a poll answers
any ``format=`` with the bytes the synchronous call would have sent, and nothing has to be read
again. A job submitted with ``preview=1`` keeps each page's preview in its JSON, as the
synchronous JSON has it.
"""

from __future__ import annotations

import os
import secrets
import select
import socket
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ocr_core.deadline import Deadline
from ocr_core.errors import ErrorCode, OcrError, client_error

from .app import engine_config, log, previews_for, with_previews
from .jobs import ClaimedJob, JobStore
from .pool_settings import PoolSettings

# An idle runner is woken by a submission (``J`` from the supervisor); this is the fallback.
IDLE_POLL_S = 1.0
SWEEP_EVERY_S = 60.0
RESULT_FORMATS = ("text", "hocr", "alto", "tsv")


class Stopped(Exception):
    """The job is no longer this runner's to finish (deleted, or the runner is told to stop)."""


def rendered(result: Any, previews: list[dict[str, Any]]) -> dict[str, Any]:
    """What a finished job keeps: the JSON document with words (a poll drops them unless asked)
    and its pages' previews, and each other format, rendered now from the one result."""
    return {"json": with_previews(result.to_dict(words=True), previews),
            **{fmt: result.render(fmt) for fmt in RESULT_FORMATS}}


class Runner:
    def __init__(self, ctl: socket.socket, store: JobStore, settings: PoolSettings) -> None:
        self.ctl = ctl
        self.store = store
        self.settings = settings
        self.owner = secrets.token_hex(8)  # this process' leases, whatever its pid is reused for
        self.stopping = False

    def _told_to_stop(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for a message: ``Q`` (or the supervisor gone) means stop; ``J``
        (a job was submitted) only ends the wait."""
        if not self.stopping and select.select([self.ctl], [], [], timeout)[0]:
            try:
                message = self.ctl.recv(16)
            except OSError:
                message = b""
            self.stopping = message in (b"", b"Q")
        return self.stopping

    def run(self) -> None:
        next_sweep = 0.0
        while not self._told_to_stop(0):
            if time.monotonic() >= next_sweep:
                self.store.sweep()
                next_sweep = time.monotonic() + min(SWEEP_EVERY_S, self.settings.jobs.ttl_s)
            job = self.store.claim(self.owner, os.getpid())
            if job is None:
                self._told_to_stop(IDLE_POLL_S)
                continue
            self.run_job(job)

    def run_job(self, job: ClaimedJob) -> None:
        lost = threading.Event()  # the lease could not be renewed: the job was deleted
        done = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job.key, lost, done), daemon=True)
        beat.start()

        def progress(pages_done: int, pages_total: int) -> None:
            if lost.is_set() or self._told_to_stop(0):
                raise Stopped
            if not self.store.progress(job.key, self.owner, pages_done, pages_total):
                raise Stopped

        try:
            result, previews = self._read(job, progress)
        except Stopped:
            if self.stopping:
                self.store.release(job.key, self.owner)
            return
        except Exception as exc:
            error = client_error(exc)
            if error.code is ErrorCode.INTERNAL or error.detail:
                log(f"job failed: {error.log_line()}")
            self.store.fail(job.key, self.owner, error)
            return
        finally:
            done.set()
            beat.join()
        self.store.finish(job.key, self.owner, rendered(result, previews))

    def _read(self, job: ClaimedJob, progress: Any) -> tuple[Any, list[dict[str, Any]]]:
        """The result of reading the job's input with its options, and the previews it asked for."""
        from ocr_core.engine import get_engine
        from ocr_core.result import DocumentResult

        from .request import parse_query

        try:
            data = job.input_path.read_bytes()
        except FileNotFoundError:  # deleted since it was claimed
            raise Stopped from None
        query = parse_query(job.query)
        config = engine_config(pack=query.pack) if query.pack else engine_config()
        deadline = Deadline.start(self.settings.jobs.timeout_s)
        try:
            result = get_engine(config).recognize(data, query.options, deadline=deadline, progress=progress)
            numbers = [page.number for page in result.pages] if isinstance(result, DocumentResult) else []
            # Whatever format the poll asks for later: previews belong to the JSON.
            return result, previews_for(replace(query, format="json"), numbers, data, config, deadline)
        except OcrError as exc:
            if exc.code is ErrorCode.TIMEOUT:
                raise OcrError(ErrorCode.TIMEOUT, f"the job took longer than its limit of "
                                                  f"{self.settings.jobs.timeout_s:g} s") from None
            raise

    def _heartbeat(self, key: str, lost: threading.Event, done: threading.Event) -> None:
        """Renew the lease a few times per lease period, on a connection of this thread's own."""
        store = JobStore(self.store.directory, self.store.settings)
        try:
            while not done.wait(self.settings.jobs.lease_s / 4):
                if not store.heartbeat(key, self.owner):
                    lost.set()
                    return
        finally:
            store.close()


def main(ctl: socket.socket, run_dir: Path, environ: Mapping[str, str], settings: PoolSettings) -> int:
    """Run as a freshly forked job runner; the return value is the process' exit status.

    The engine is loaded by the first job, not before: a pool whose clients never submit one
    does not carry a second copy of the models (a job waits the load once, on top of minutes)."""
    from .pool_worker import enter_child

    enter_child(environ)
    store = JobStore(settings.jobs.store_dir(run_dir), settings.jobs)
    Runner(ctl, store, settings).run()
    store.close()
    sys.stdout.flush()
    return 0
