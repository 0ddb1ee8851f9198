"""Command line: ``python -m ocr_core [--mode page|line] [--pack P] [--format F | --jsonl] FILE...``
(``-`` = stdin). A FILE is an image, a PDF or a multi-page TIFF (``--dpi``, ``--pages``).

Plain output is the recognised text of each file (a document's pages separated by form feeds).
``--format`` prints each file's result as ``json``, ``hocr``, ``alto`` or ``tsv`` instead.
``--jsonl`` prints one JSON object per file: ``Result.to_dict()`` plus ``"file"`` and
``"backend"`` (the runtime, its version and precision), or ``{"file", "ok": false, "error":
{...}}`` for a file that failed. Every file is processed; the exit status is 1 if any failed, 2
for bad usage. An error's message is the same safe text every surface gives; its detail for the
operator (a path, the runtime's words), when it has one, goes to stderr as one line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import BACKENDS, DEFAULT_DPI, DEFAULT_TIMEOUT_S, EngineConfig, RecognizeOptions
from .errors import ErrorCode, OcrError, client_error
from .formats import FORMATS, render


def _read(name: str, max_bytes: int) -> bytes:
    """Read at most max_bytes + 1 bytes: enough for the core to tell the input is too large."""
    try:
        if name == "-":
            return sys.stdin.buffer.read(max_bytes + 1)
        with Path(name).open("rb") as f:
            return f.read(max_bytes + 1)
    except OSError as exc:
        raise OcrError(ErrorCode.BAD_REQUEST, f"cannot read {name}: {exc.strerror or exc}") from None


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
    args = parser.parse_args(argv)
    if args.jsonl and args.format != "text":
        parser.error("--jsonl and --format exclude each other")

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

    try:
        from .engine import Engine

        config = EngineConfig.from_env(pack=args.pack, backend=args.backend, timeout_s=args.timeout)
        options = RecognizeOptions(mode=args.mode, use_cls=args.cls, min_score=args.min_score, dpi=args.dpi,
                                   pages=args.pages)
        engine = Engine.load(config)
    except OcrError as exc:
        for name in args.files:
            emit_error(name, exc)
        return 1

    for name in args.files:
        try:
            result = engine.recognize(_read(name, config.max_bytes), options)
        except Exception as exc:  # one bad file must not stop the others
            emit_error(name, client_error(exc))
            continue
        if args.jsonl:
            record: dict[str, Any] = {"file": name, **result.to_dict(words=args.words),
                                      "backend": engine.runtime.to_dict()}
            print(json.dumps(record, ensure_ascii=False), flush=True)
        elif args.format == "text":
            if result.text:
                print(result.text, flush=True)
        else:
            output = render(result, args.format, words=args.words)
            print(output, end="" if output.endswith("\n") else "\n", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    from .process import configure_process

    # One call and exit: the fastest start wins (backend=auto takes ONNX Runtime).
    configure_process(one_shot=True)
    status = main()
    # Everything is written: skip interpreter teardown (module and ONNX Runtime destructors), which
    # costs a one-shot process ~25 ms and gives nothing back. The CGI ends the same way.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
