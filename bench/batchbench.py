"""Section: batch runs from the command line (issue 14), against the in-process figure.

The first ``PAGES`` receipts of ``sroie_receipts_en``, read three ways in each of ``ROUNDS``
rounds, taking turns:

- in-process: one ``Engine`` in this process (all cores as intra-op threads), the images one
  after the other, after one untimed pass (loaded and warm: the figure a batch can approach);
- ``python -m ocr_core --jsonl --jobs 2 IMAGES``: the whole command, worker start-up and engine
  loads included, one inference thread per worker;
- the same with the images as one scanned PDF of ``PAGES`` pages, split over the two workers.

Every run uses the backend ``auto`` takes in a long-lived process here, named explicitly so that
the in-process engine and the workers run the same. Medians of the rounds and their ratios to
in-process pages/s; the load average is printed before and after.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.docbench import scanned_pdf
from bench.report import Section
from bench.tasks import read_labels

TITLE = "6. Batch runs: --jobs 2 against in-process (issue 14)"
PAGES = 12
ROUNDS = 3
JOBS = 2


def _command(backend: str, files: list[Path]) -> float:
    """Seconds for the whole batch command; it must read every file."""
    root = Path(__file__).resolve().parent.parent
    started = time.perf_counter()
    command = [sys.executable, "-m", "ocr_core", "--jsonl", "--backend", backend, "--jobs", str(JOBS)]
    done = subprocess.run([*command, *map(str, files)], capture_output=True, text=True, cwd=root, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(root)})
    seconds = time.perf_counter() - started
    if done.returncode != 0 or done.stdout.count('"ok": true') != len(files):
        raise RuntimeError(f"the batch command failed ({done.returncode}): {done.stderr[-500:]}")
    return seconds


def _measure(eval_dir: Path) -> list[str]:
    from ocr_core import Engine, EngineConfig
    from ocr_core.backends import resolve

    labels = read_labels(eval_dir / "sroie_receipts_en")[:PAGES]
    paths = [eval_dir / "sroie_receipts_en" / row["image"] for row in labels]
    images = [path.read_bytes() for path in paths]
    backend = resolve("auto")  # this process is long-lived: what auto takes for one here
    engine = Engine.load(EngineConfig.from_env(backend=backend))
    for data in images:
        engine.recognize(data)
    loads = [os.getloadavg()[0]]
    samples: dict[str, list[float]] = {"in-process": [], "images": [], "pdf": []}
    with tempfile.TemporaryDirectory(prefix="crnnocr-batchbench-") as work:
        pdf = Path(work) / "receipts.pdf"
        pdf.write_bytes(scanned_pdf(images))
        for _ in range(ROUNDS):
            started = time.perf_counter()
            for data in images:
                engine.recognize(data)
            samples["in-process"].append(time.perf_counter() - started)
            samples["images"].append(_command(backend, paths))
            samples["pdf"].append(_command(backend, [pdf]))
    loads.append(os.getloadavg()[0])
    seconds = {key: statistics.median(values) for key, values in samples.items()}
    rate = {key: PAGES / value for key, value in seconds.items()}
    base = rate["in-process"]
    runtime = engine.runtime
    rows = [
        f"{PAGES} `sroie_receipts_en` receipts, backend {runtime.backend} ({runtime.precision}), "
        f"median of {ROUNDS} rounds taking turns; load average {loads[0]:.2f} before, {loads[1]:.2f} after.",
        "",
        "| run | seconds | pages/s | vs in-process |",
        "|---|---|---|---|",
        f"| in-process, one engine, {engine.config.threads or 'all'} threads (cores), warm | "
        f"{seconds['in-process']:.2f} | {base:.2f} | 1.00× |",
        f"| `--jobs {JOBS}`, {PAGES} images, whole command (start-up included) | {seconds['images']:.2f} | "
        f"{rate['images']:.2f} | {rate['images'] / base:.2f}× |",
        f"| `--jobs {JOBS}`, one {PAGES}-page PDF (pages split over the workers) | {seconds['pdf']:.2f} | "
        f"{rate['pdf']:.2f} | {rate['pdf'] / base:.2f}× |",
        "",
    ]
    return rows


def run(eval_dir: Path) -> Section:
    if not (eval_dir / "sroie_receipts_en" / "labels.jsonl").is_file():
        return Section(TITLE, skipped="sroie_receipts_en not in the eval data")
    print("== batch runs", file=sys.stderr, flush=True)
    try:
        return Section(TITLE, _measure(eval_dir))
    except Exception as exc:  # a section that fails must not lose the rest of the report
        return Section(TITLE, [], skipped=f"{type(exc).__name__}: {exc}"[:500])
