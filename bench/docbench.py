"""Section 5: documents and output formats (issue 13), timed in-process on the default pack.

- PDF pages/s: the first ``PAGES`` receipts of ``sroie_receipts_en`` as a scanned PDF (each image a
  page at 200 dpi), read whole by ``Engine.recognize``, after one untimed call; the rendering share
  is the documents' ``decode`` time (PDFium rendering plus page handling) over their total.
- Formats: each renderer on the same results (one per receipt, read as images), ``REPEATS``
  rounds with the formats taking turns in each round; per page, against the page's OCR time.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from bench.report import FAIL, PASS, Section
from bench.tasks import read_labels

TITLE = "5. Documents and output formats (issue 13)"
PAGES = 5
ROUNDS = 3
REPEATS = 30
# "Nothing measurable" over JSON: a format may cost at most this share of the page's OCR time.
FORMAT_SHARE_TARGET = 0.01


def scanned_pdf(images: list[bytes]) -> bytes:
    """The images as the pages of a scanned PDF at 200 dpi (Pillow's PDF writer)."""
    import io

    from PIL import Image

    pages = [Image.open(io.BytesIO(data)).convert("RGB") for data in images]
    out = io.BytesIO()
    pages[0].save(out, "PDF", save_all=True, append_images=pages[1:], resolution=200)
    return out.getvalue()


def _measure(eval_dir: Path) -> list[str]:
    from ocr_core import Engine, EngineConfig
    from ocr_core.formats import FORMATS, render

    labels = read_labels(eval_dir / "sroie_receipts_en")[:PAGES]
    images = [(eval_dir / "sroie_receipts_en" / row["image"]).read_bytes() for row in labels]
    engine = Engine.load(EngineConfig.from_env(threads=2))
    pdf = scanned_pdf(images)
    engine.recognize(pdf, None)
    totals, decodes = [], []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        result = engine.recognize(pdf)
        totals.append((time.perf_counter() - started) * 1000)
        decodes.append(result.timings.decode)
    total, decode = statistics.median(totals), statistics.median(decodes)
    pages_per_s = PAGES / (total / 1000)

    results = [engine.recognize(data) for data in images]
    ocr_ms = statistics.median(r.timings.total for r in results)
    samples: dict[str, list[float]] = {fmt: [] for fmt in FORMATS}
    for round_ in range(REPEATS):
        order = FORMATS[round_ % len(FORMATS):] + FORMATS[:round_ % len(FORMATS)]
        for fmt in order:
            started = time.perf_counter()
            for result in results:
                render(result, fmt)
            samples[fmt].append((time.perf_counter() - started) * 1000 / len(results))
    words = sum(len(line.words) for r in results for line in r.lines) / len(results)
    rows = [
        "| measure | value | target | result |",
        "|---|---|---|---|",
        f"| PDF of {PAGES} receipts at 200 dpi, whole document, median of {ROUNDS} "
        f"({engine.runtime.backend}, 2 threads) | "
        f"{total:.0f} ms = {pages_per_s:.2f} pages/s | – | – |",
        f"| rendering share (decode / total) | {decode:.0f} ms = {decode / total:.1%} | – | – |",
    ]
    json_ms = statistics.median(samples["json"])
    for fmt in FORMATS:
        ms = statistics.median(samples[fmt])
        share = ms / ocr_ms
        rows.append(
            f"| {fmt} per page ({words:.0f} words), median of {REPEATS}: ms, vs JSON, share of the page's "
            f"OCR ({ocr_ms:.0f} ms) | {ms:.3f} ms, {ms / json_ms:.2f}× JSON, {share:.3%} | "
            f"≤ {FORMAT_SHARE_TARGET:.0%} | {PASS if share <= FORMAT_SHARE_TARGET else FAIL} |"
        )
    return [*rows, ""]


def run(eval_dir: Path) -> Section:
    if not (eval_dir / "sroie_receipts_en" / "labels.jsonl").is_file():
        return Section(TITLE, skipped="sroie_receipts_en not in the eval data")
    print("== documents and formats", file=sys.stderr, flush=True)
    intro = [f"In-process, default pack; the first {PAGES} `sroie_receipts_en` images.", ""]
    try:
        return Section(TITLE, intro + _measure(eval_dir))
    except Exception as exc:  # a section that fails must not lose the rest of the report
        return Section(TITLE, intro, skipped=f"{type(exc).__name__}: {exc}"[:500])
