"""The job protocol every engine runner speaks, so that all engines are timed and recorded the same way.

Standard library only: peer runners import this from their own venvs (``python -m bench.engines.X``
with the checkout as the working directory).

A job file is JSON: ``{"options": {...}, "tasks": [{"id", "mode", "out", "images": [{"image", "path"}]}]}``.
For each task the runner recognises every image once (after one untimed warm-up call on the task's
first image) and writes ``out`` as the PRED.jsonl that ``score.py`` reads:
``{"image": <key from labels.jsonl>, "text": <lines joined by \\n>, "ms": <wall time of the call>}``,
plus ``"error"`` when the engine failed on that image (its text is then empty).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# (image bytes, image path, mode "line"|"page") -> recognised text, lines joined by "\n".
Recognize = Callable[[bytes, Path, str], str]


@dataclass(frozen=True)
class Prediction:
    image: str
    text: str
    ms: float
    error: str | None = None

    def to_json(self) -> str:
        record: dict[str, Any] = {"image": self.image, "text": self.text, "ms": round(self.ms, 2)}
        if self.error is not None:
            record["error"] = self.error
        return json.dumps(record, ensure_ascii=False)


def write_predictions(path: Path, predictions: list[Prediction]) -> None:
    path.write_text("".join(p.to_json() + "\n" for p in predictions), encoding="utf-8")


def read_job(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _timed(recognize: Recognize, data: bytes, path: Path, mode: str) -> tuple[str, float, str | None]:
    start = time.perf_counter()
    try:
        text, error = recognize(data, path, mode), None
    except Exception as exc:  # one bad image must not end a benchmark run
        text, error = "", f"{type(exc).__name__}: {exc}"
    return text, (time.perf_counter() - start) * 1000.0, error


def run_job(job: dict[str, Any], recognize: Recognize, name: str) -> None:
    """Run every task of ``job`` through ``recognize`` and write each task's PRED.jsonl."""
    for task in job["tasks"]:
        images = task["images"]
        # Images are read before timing: the clock covers decode + OCR, not the disk.
        blobs = [Path(item["path"]).read_bytes() for item in images]
        if images:
            _timed(recognize, blobs[0], Path(images[0]["path"]), task["mode"])
        predictions = []
        for item, data in zip(images, blobs, strict=True):
            text, ms, error = _timed(recognize, data, Path(item["path"]), task["mode"])
            predictions.append(Prediction(item["image"], text, ms, error))
        write_predictions(Path(task["out"]), predictions)
        errors = sum(p.error is not None for p in predictions)
        print(
            f"[{name}] {task['id']}: {len(predictions)} images, {errors} errors", file=sys.stderr, flush=True
        )


def serve(recognize: Recognize) -> None:
    """Answer timing requests, one JSON line in, one out, until stdin closes.

    In: ``{"path": IMAGE, "mode": "line"|"page"}``. Out: ``{"ms": wall time of the call}``, plus
    ``"error"`` when the engine failed. The speed section keeps every engine serving at once and
    times each image on each engine in turn, so a busy spell on the machine hits them alike.
    """
    for request in sys.stdin:
        item = json.loads(request)
        path = Path(item["path"])
        _text, ms, error = _timed(recognize, path.read_bytes(), path, item["mode"])
        reply: dict[str, Any] = {"ms": round(ms, 2)}
        if error is not None:
            reply["error"] = error
        print(json.dumps(reply), flush=True)


def main(make_recognize: Callable[[dict[str, Any]], Recognize], name: str) -> None:
    """Entry point of a runner module.

    ``python -m bench.engines.X JOB.json`` runs a job; ``... --once MODE IMAGE [OPTIONS_JSON]`` builds the
    engine and reads one image, for cold-start time and peak memory measured from outside;
    ``... --serve [OPTIONS_JSON]`` builds the engine and answers timing requests (see ``serve``).
    """
    args = sys.argv[1:]
    if len(args) in (3, 4) and args[0] == "--once":
        options = json.loads(args[3]) if len(args) == 4 else {}
        path = Path(args[2])
        print(make_recognize(options)(path.read_bytes(), path, args[1]))
    elif len(args) in (1, 2) and args[0] == "--serve":
        serve(make_recognize(json.loads(args[1]) if len(args) == 2 else {}))
    elif len(args) == 1:
        job = read_job(Path(args[0]))
        run_job(job, make_recognize(job.get("options", {})), name)
    else:
        sys.exit(
            f"usage: python -m bench.engines.{name} JOB.json | --once line|page IMAGE [OPTIONS_JSON]"
            " | --serve [OPTIONS_JSON]"
        )
