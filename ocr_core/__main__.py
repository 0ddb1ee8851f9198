"""Command line: ``python -m ocr_core [--mode page|line] [--pack P] [--format F | --jsonl] FILE...``
(``-`` = stdin). A FILE is an image, a PDF or a multi-page TIFF (``--dpi``, ``--pages``).

Plain output is the recognised text of each file (a document's pages separated by form feeds).
``--format`` prints each file's result as ``json``, ``hocr``, ``alto`` or ``tsv`` instead.
``--jsonl`` prints one JSON object per file: ``Result.to_dict()`` plus ``"file"`` and
``"backend"`` (the runtime, its version and precision), or ``{"file", "ok": false, "error":
{...}}`` for a file that failed. Every file is processed; the exit status is 1 if any failed, 2
for bad usage. An error's message is the same safe text every surface gives; its detail for the
operator (a path, the runtime's words), when it has one, goes to stderr as one line.

Batch runs (``ocr_core.batch``): ``--jobs N`` reads with N worker processes (one inference
thread each), ``--dask SCHEDULER`` on a Dask cluster; a document's pages are read in parallel.
Results come in input order whatever the mode; a progress line goes to stderr when it is a
terminal. ``--skip-done OUT.jsonl`` leaves out the files OUT already has a result for, so that
``... --jsonl --skip-done OUT.jsonl FILES >> OUT.jsonl`` resumes a run that was stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .config import BACKENDS, DEFAULT_DPI, DEFAULT_TIMEOUT_S, EngineConfig, RecognizeOptions
from .errors import OcrError, client_error
from .formats import FORMATS, render


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ocr_core",
                                     description="Recognise text in images and documents (PDF, TIFF).")
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="images, PDFs or multi-page TIFFs; - reads standard input")
    parser.add_argument("--mode", choices=["page", "line"], default="page",
                        help="page: detect lines first (default); line: the image is one text line")
    parser.add_argument("--pack", help="model pack (default: CRNNOCR_PACK or the manifest's default)")
    parser.add_argument("--cls", action="store_true", help="turn upside-down lines (0/180° classifier)")
    parser.add_argument("--min-score", type=float, help="drop lines scoring below this (0..1)")
    parser.add_argument("--format", choices=FORMATS, default="text",
                        help="text (default), json, hocr (hOCR 1.2), alto (ALTO v4) or tsv (Tesseract's)")
    parser.add_argument("--jsonl", action="store_true", help="one JSON object per file per line, named")
    parser.add_argument("--words", action="store_true", help="JSON: each line's words with their boxes")
    parser.add_argument("--dpi", type=int, default=DEFAULT_DPI,
                        help=f"resolution PDF pages are rendered at (default {DEFAULT_DPI})")
    parser.add_argument("--pages", help="pages of a document to read, e.g. 1-3,7 or 5- (default: all)")
    parser.add_argument("--backend", choices=BACKENDS,
                        help="inference runtime (default: CRNNOCR_BACKEND, else auto: onnxruntime here)")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="stop reading a file after this long, with a timeout error "
                             f"(default: CRNNOCR_TIMEOUT_S, else {DEFAULT_TIMEOUT_S:g}; 0: no limit)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="read with N worker processes, one inference thread each, a document's "
                             "pages in parallel (default 1: in this process; 0: one per core)")
    parser.add_argument("--dask", metavar="SCHEDULER",
                        help="read on the Dask cluster at this address (tcp://HOST:8786; needs "
                             "requirements-dask.txt here and on the workers)")
    parser.add_argument("--skip-done", metavar="OUT.jsonl",
                        help="leave out the files OUT.jsonl (an earlier --jsonl output) has a result for")
    args = parser.parse_args(argv)
    if args.jsonl and args.format != "text":
        parser.error("--jsonl and --format exclude each other")
    if args.jobs < 0:
        parser.error("--jobs must be 0 (one per core) or more")
    if args.dask and args.jobs != 1:
        parser.error("--jobs and --dask exclude each other (a Dask cluster has its own workers)")
    if args.skip_done and not args.jsonl:
        parser.error("--skip-done reads an earlier --jsonl output: give --jsonl too")

    failed = False

    def emit_error(name: str, error: OcrError) -> None:
        nonlocal failed
        failed = True
        if args.jsonl:
            print(json.dumps({"file": name, **error.to_dict()}, ensure_ascii=False), flush=True)
            if error.detail:
                print(f"{name}: {error.log_line()}", file=sys.stderr, flush=True)
        else:
            print(f"{name}: {error.log_line()}", file=sys.stderr, flush=True)

    def emit_result(name: str, result: Any, runtime: Mapping[str, str]) -> None:
        if args.jsonl:
            record: dict[str, Any] = {"file": name, **result.to_dict(words=args.words), "backend": runtime}
            print(json.dumps(record, ensure_ascii=False), flush=True)
        elif args.format == "text":
            if result.text:
                print(result.text, flush=True)
        else:
            output = render(result, args.format, words=args.words)
            print(output, end="" if output.endswith("\n") else "\n", flush=True)

    try:
        overrides = {"pack": args.pack, "backend": args.backend, "timeout_s": args.timeout}
        config = EngineConfig.from_env(**overrides)
        options = RecognizeOptions(mode=args.mode, use_cls=args.cls, min_score=args.min_score, dpi=args.dpi,
                                   pages=args.pages)
    except OcrError as exc:
        for name in args.files:
            emit_error(name, exc)
        return 1

    files = list(args.files)
    if args.skip_done:
        from .batch import cut_torn_tail, done_files

        done = done_files(args.skip_done)
        files = [name for name in files if name not in done]
        cut_torn_tail(args.skip_done, sys.stdout)

    if args.jobs == 1 and not args.dask:
        outcomes = _read_here(files, config, options)
    else:
        outcomes = _read_in_batch(files, options, overrides, args.jobs, args.dask)
    try:
        for name, result, runtime, error in outcomes:
            if error is not None:
                emit_error(name, error)
            else:
                emit_result(name, result, runtime)
    finally:
        outcomes.close()  # on Ctrl-C too: the batch's workers are stopped before the process exits
    return 1 if failed else 0


Outcome = tuple[str, Any, Mapping[str, str], OcrError | None]


def _read_here(files: Sequence[str], config: EngineConfig, options: RecognizeOptions) -> Iterator[Outcome]:
    """Each file read in this process, one after the other (the fastest start for a few files)."""
    from .engine import Engine
    from .pages import read_input

    try:
        engine = Engine.load(config)
    except OcrError as exc:
        for name in files:
            yield name, None, {}, exc
        return
    for name in files:
        try:
            result = engine.recognize(read_input(name, config.max_bytes), options)
        except Exception as exc:  # one bad file must not stop the others
            yield name, None, {}, client_error(exc)
            continue
        yield name, result, engine.runtime.to_dict(), None


def _read_in_batch(files: Sequence[str], options: RecognizeOptions, overrides: Mapping[str, Any],
                   jobs: int, dask: str | None) -> Iterator[Outcome]:
    """The files read by worker processes or a Dask cluster (``ocr_core.batch``), in order."""
    from .batch import LocalRunner, Progress, Runner, run

    runner: Runner
    try:
        if dask:
            from .dask_run import DaskRunner

            runner = DaskRunner(dask, overrides, options)
        else:
            from .process import available_cores

            runner = LocalRunner(jobs or available_cores(), overrides, options)
    except OcrError as exc:
        for name in files:
            yield name, None, {}, exc
        return
    progress = Progress(len(files), sys.stderr) if sys.stderr.isatty() and files else None
    try:
        for outcome in run(files, options, overrides, runner, progress=progress):
            yield outcome.name, outcome.result, outcome.runtime or {}, outcome.error
    finally:
        if progress is not None:
            progress.close()
        runner.close()


if __name__ == "__main__":
    from .process import configure_process

    # One call and exit: the fastest start wins (backend=auto takes ONNX Runtime).
    configure_process(one_shot=True)
    try:
        status = main()
    except KeyboardInterrupt:  # Ctrl-C: what was printed stands (resume with --skip-done)
        status = 130
    # Everything is written: skip interpreter teardown (module and ONNX Runtime destructors), which
    # costs a one-shot process ~25 ms and gives nothing back. The CGI ends the same way. Not after
    # worker processes (--jobs, --dask): multiprocessing removes its temporary directory (the
    # forkserver's socket) at exit, which os._exit would leave in /tmp.
    if "multiprocessing" in sys.modules:
        sys.exit(status)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
