"""Batch runs: many files read by several processes (``--jobs N``) or a Dask cluster (``--dask``).

The work is a map over *parts*: an image is one part, a document (a PDF, a multi-page TIFF) one
part per selected page, so one long document does not hold one process while the others idle.
The parent plans (reads each file, opens a document to count and select its pages, with the
same checks and errors as ``Engine.recognize``), submits parts in input order, at most a few
per worker at a time, and hands each file back in input order as soon as all its parts are in:
a document's pages reassembled into the ``DocumentResult`` one call would have given (timings
added up), or the error of its first failed page.

Workers are processes of their own that load the engine once (``get_engine``) after they start:
a local pool uses the forkserver start method, so no worker inherits the parent's state (a child
that inherits an imported ONNX Runtime can abort at exit); Dask workers load it in a
``WorkerPlugin`` (``ocr_core.dask_run``). Each is a side-by-side process (``ocr_core.process``):
one inference thread, ``backend=auto`` as in a pool worker. ``timeout_s`` bounds each part (a
page), not a whole document. A local worker that dies is replaced, and the parts it had in
flight are read again once (``RETRIES_AFTER_DEATH``): then a part that kills its worker every
time is its file's ``internal`` error, and the run goes on. (Dask retries a task whose worker
died by itself, ``distributed.scheduler.allowed-failures``.)

``done_files`` and ``cut_torn_tail`` make a run resumable from its own ``--jsonl`` output.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, Protocol

from .config import EngineConfig, RecognizeOptions
from .errors import ErrorCode, OcrError, client_error
from .pages import PageSelection, open_document, read_input, select_pages
from .result import DocumentResult, OcrResult, Timings

Result = OcrResult | DocumentResult
# Parts waiting for a worker, per worker: enough to keep each busy while the parent plans ahead.
PARTS_PER_WORKER = 2
# Files finished but not yet handed back (a slow file ahead of them holds them), at most.
MAX_BUFFERED_FILES = 256
# A part in flight when its worker died is read again this many times; then it is an error (it
# may be the part that kills the worker).
RETRIES_AFTER_DEATH = 1


def done_files(path: str) -> set[str]:
    """The files a ``--jsonl`` output already holds a result for (``"ok": true``). A line that is
    not a JSON object (the half-written last line of a run that was killed) counts for nothing;
    a file whose line is an error is read again."""
    done = set()
    try:
        with open(path, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and record.get("ok") is True:
                    done.add(str(record.get("file")))
    except FileNotFoundError:
        pass  # the first run of a resumable command: nothing is done yet
    return done


def cut_torn_tail(path: str, output: IO[str]) -> None:
    """When ``output`` appends to ``path`` and ``path`` ends in a half-written line (a run killed
    mid-write), cut that line off, so that the next line starts on a line of its own."""
    try:
        if not os.path.samestat(os.fstat(output.fileno()), os.stat(path)):
            return
        with open(path, "rb+") as f:
            end = f.seek(0, os.SEEK_END)
            if end == 0:
                return
            f.seek(max(0, end - 1))
            if f.read(1) == b"\n":
                return
            # Find the last newline, a block at a time from the end.
            position = end
            while position > 0:
                step = min(position, 1 << 16)
                f.seek(position - step)
                block = f.read(step)
                newline = block.rfind(b"\n")
                if newline >= 0:
                    f.truncate(position - step + newline + 1)
                    return
                position -= step
            f.truncate(0)
    except (OSError, ValueError):
        return  # not a file on disk (a pipe, a terminal): nothing to repair


# --- the worker's side -------------------------------------------------------------------------------

@dataclass(frozen=True)
class PartOutcome:
    """What a worker sends back for one part: a result and the runtime that read it, or an error
    (its code, safe message and operator's detail: an OcrError itself need not pickle)."""

    result: Result | None = None
    runtime: dict[str, str] | None = None
    error: tuple[str, str, str | None] | None = None

    def ocr_error(self) -> OcrError | None:
        return None if self.error is None else OcrError(ErrorCode(self.error[0]), *self.error[1:])


def start_worker(overrides: Mapping[str, Any]) -> None:
    """A worker process's first step: its knobs, then the engine (a failure is each part's error)."""
    configure_worker()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        worker_engine(overrides)
    except Exception:  # read_part reports it for every part
        pass


def configure_worker() -> None:
    from .process import configure_process

    configure_process(side_by_side=True)


def worker_engine(overrides: Mapping[str, Any]) -> Any:
    """The worker's one engine, for the configuration its own environment and ``overrides`` give
    (a remote worker's model directory is its own)."""
    from .engine import get_engine

    return get_engine(EngineConfig.from_env(**overrides))


def read_part(source: bytes | str, overrides: Mapping[str, Any], options: RecognizeOptions,
              page: int | None) -> PartOutcome:
    """Read one part: the whole input (``page`` None) or one page of a document. ``source`` is
    the input's bytes or a path to read them from. Never raises."""
    try:
        engine = worker_engine(overrides)
        data = source if isinstance(source, bytes) else read_input(source, engine.config.max_bytes)
        if page is not None:
            options = dataclasses.replace(options, pages=str(page))
        result = engine.recognize(data, options)
        return PartOutcome(result=result, runtime=engine.runtime.to_dict())
    except Exception as exc:  # one bad part is its file's error, never the run's end
        error = client_error(exc)
        return PartOutcome(error=(error.code.value, error.message, error.detail))


# --- planning and reassembly -------------------------------------------------------------------------

@dataclass(frozen=True)
class FileOutcome:
    """One input file's answer, in input order: a result (and the runtime that read it) or an error."""

    name: str
    result: Result | None = None
    runtime: dict[str, str] | None = None
    error: OcrError | None = None


@dataclass(frozen=True)
class Plan:
    """One input file: its bytes and the parts to read (page numbers; ``(None,)`` for an image)."""

    name: str
    data: bytes
    pages: tuple[int | None, ...]
    document: bool


def plan_file(name: str, options: RecognizeOptions, config: EngineConfig) -> Plan:
    """Read ``name`` and, for a document, open it and select its pages as ``Engine.recognize``
    does (same checks, same errors). Raises OcrError."""
    data = read_input(name, config.max_bytes)
    source = open_document(data, dpi=options.dpi, max_bytes=config.max_bytes, max_pixels=config.max_pixels)
    if source is None:
        return Plan(name, data, (None,), document=False)
    try:
        selection = PageSelection.parse(options.pages) if options.pages is not None else None
        numbers = select_pages(source, selection, config.max_pages)
    finally:
        source.close()
    return Plan(name, data, tuple(numbers), document=True)


def assemble(name: str, outcomes: list[PartOutcome]) -> FileOutcome:
    """A file's parts, in page order, as the one answer a single call would have given."""
    for outcome in outcomes:
        if outcome.error is not None:
            return FileOutcome(name, error=outcome.ocr_error())
    results = [outcome.result for outcome in outcomes]
    if len(results) == 1 and not isinstance(results[0], DocumentResult):
        return FileOutcome(name, result=results[0], runtime=outcomes[0].runtime)
    documents = [r for r in results if isinstance(r, DocumentResult)]
    first = documents[0]
    spent = [t.timings for t in documents]
    timings = Timings(*(sum(getattr(t, f.name) for t in spent) for f in dataclasses.fields(Timings)))
    document = DocumentResult(
        pages=tuple(page for part in documents for page in part.pages), format=first.format,
        page_count=first.page_count, dpi=first.dpi, model=first.model, timings=timings,
    )
    return FileOutcome(name, result=document, runtime=outcomes[0].runtime)


# --- runners: where the parts are read ---------------------------------------------------------------

class PartFuture(Protocol):
    def add_done_callback(self, fn: Callable[[Any], object], /) -> None: ...

    def result(self) -> Any: ...


class Runner(Protocol):
    """Reads parts somewhere: ``share`` turns a planned file into what its parts carry,
    ``submit`` starts one part, ``workers`` says how many parts run at once."""

    workers: int

    def share(self, plan: Plan) -> Any: ...

    def submit(self, source: Any, page: int | None) -> PartFuture: ...

    def close(self) -> None: ...


class LocalRunner:
    """``jobs`` worker processes on this machine (forkserver: none inherits the parent). A worker
    that dies (killed, out of memory, a crash in native code) breaks the executor: the next
    submit starts a new one, and the parts that were in flight come back as ``WorkerDied``."""

    def __init__(self, jobs: int, overrides: Mapping[str, Any], options: RecognizeOptions) -> None:
        self.workers = jobs
        self._overrides = dict(overrides)
        self._options = options
        self._pool = self._start()

    def _start(self) -> Any:
        import concurrent.futures
        import multiprocessing

        return concurrent.futures.ProcessPoolExecutor(
            max_workers=self.workers, mp_context=multiprocessing.get_context("forkserver"),
            initializer=start_worker, initargs=(self._overrides,),
        )

    def share(self, plan: Plan) -> bytes | str:
        # The pages of a file on disk are read from it by each worker, not sent through a pipe
        # once a page; an image (one part) and standard input travel as bytes.
        if plan.document and plan.name != "-":
            return os.path.abspath(plan.name)
        return plan.data

    def submit(self, source: bytes | str, page: int | None) -> PartFuture:
        from concurrent.futures.process import BrokenProcessPool

        try:
            return self._pool.submit(read_part, source, self._overrides, self._options, page)
        except BrokenProcessPool:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = self._start()
            return self._pool.submit(read_part, source, self._overrides, self._options, page)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class WorkerDied(Exception):
    """A part's worker process died while the part was in flight (which part killed it is unknown)."""


def part_outcome(future: PartFuture) -> PartOutcome:
    """A finished part's outcome; any failure of the runner itself is the part's internal error.
    Raises WorkerDied when the part's worker process died."""
    from concurrent.futures.process import BrokenProcessPool

    try:
        return future.result()
    except BrokenProcessPool as exc:
        raise WorkerDied(str(exc)) from None
    except Exception as exc:
        error = client_error(exc)
        return PartOutcome(error=(error.code.value, error.message, error.detail))


# --- the run -----------------------------------------------------------------------------------------

@dataclass
class _Pending:
    name: str
    source: Any
    pages: tuple[int | None, ...]
    outcomes: list[PartOutcome | None]
    error: OcrError | None = None

    def parts(self) -> Iterator[tuple[_Pending, int]]:
        return ((self, k) for k in range(len(self.pages)))

    @property
    def complete(self) -> bool:
        return self.error is not None or all(o is not None for o in self.outcomes)


class Progress:
    """One status line on a terminal's stderr: files and pages done, pages a second."""

    def __init__(self, total_files: int, stream: IO[str]) -> None:
        self._total = total_files
        self._stream = stream
        self._started = self._shown = time.monotonic()
        self.files = self.pages = 0

    def update(self, *, files: int = 0, pages: int = 0, force: bool = False) -> None:
        self.files += files
        self.pages += pages
        now = time.monotonic()
        if force or now - self._shown >= 0.2:
            self._shown = now
            rate = self.pages / max(now - self._started, 1e-9)
            self._stream.write(f"\r{self.files}/{self._total} files, {self.pages} pages, {rate:.1f} pages/s ")
            self._stream.flush()

    def close(self) -> None:
        self.update(force=True)
        self._stream.write("\n")
        self._stream.flush()


def run(names: Iterable[str], options: RecognizeOptions, overrides: Mapping[str, Any], runner: Runner,
        *, progress: Progress | None = None) -> Iterator[FileOutcome]:
    """Every file's outcome, in the order of ``names``, read by ``runner`` part by part.

    Parts are submitted in input order, at most ``PARTS_PER_WORKER`` per worker in flight, and
    no new file is planned while ``MAX_BUFFERED_FILES`` wait to be handed back: the head file's
    parts always go first, and the run holds a bounded amount of work whatever the number of files.
    """
    config = EngineConfig.from_env(**overrides)
    done: queue.SimpleQueue[tuple[_Pending, int, int, PartFuture]] = queue.SimpleQueue()
    window = max(1, runner.workers * PARTS_PER_WORKER)
    order: deque[_Pending] = deque()  # files not yet handed back, in input order
    names = iter(names)
    parts: Iterator[tuple[_Pending, int]] = iter(())
    in_flight = 0
    more_files = True

    def submit(pending: _Pending, k: int, attempt: int) -> None:
        future = runner.submit(pending.source, pending.pages[k])
        future.add_done_callback(lambda f: done.put((pending, k, attempt, f)))

    while True:
        while in_flight < window:
            part = next(parts, None)
            if part is None:
                if not more_files or len(order) >= MAX_BUFFERED_FILES:
                    break
                name = next(names, None)
                if name is None:
                    more_files = False
                    break
                try:
                    plan = plan_file(name, options, config)
                except Exception as exc:
                    order.append(_Pending(name, None, (), [], error=client_error(exc)))
                    continue
                pending = _Pending(name, runner.share(plan), plan.pages, [None] * len(plan.pages))
                order.append(pending)
                parts = pending.parts()
                continue
            submit(*part, 0)
            in_flight += 1
        while order and order[0].complete:
            head = order.popleft()
            if progress is not None:
                progress.update(files=1, pages=len(head.outcomes))
            if head.error is not None:
                yield FileOutcome(head.name, error=head.error)
            else:
                yield assemble(head.name, [o for o in head.outcomes if o is not None])
        if in_flight == 0:
            if not more_files and not order:
                return
            continue  # a full buffer was handed back: plan more
        finished, k, attempt, future = done.get()
        try:
            finished.outcomes[k] = part_outcome(future)
        except WorkerDied as exc:
            if attempt < RETRIES_AFTER_DEATH:
                submit(finished, k, attempt + 1)
                continue
            finished.outcomes[k] = PartOutcome(error=(
                ErrorCode.INTERNAL.value, "a worker process died while reading this file", str(exc)))
        in_flight -= 1
        if finished.complete:
            finished.source = None  # its bytes (or its data on the cluster) are needed no more
