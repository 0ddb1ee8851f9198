"""Test data shared by every test module: the eval sets, the reference scorer, rendered images.

Real data is read from ``../shared/eval`` (override with CRNNOCR_EVAL) and never copied into
the project; tests that need it skip loudly when it is missing. Rendered images use Debian's
DejaVu fonts, so a fresh clone still has self-contained tests.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

CHECKOUT = Path(__file__).resolve().parent.parent


EVAL_DIR = Path(os.environ.get("CRNNOCR_EVAL") or CHECKOUT.parent / "shared" / "eval")
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


@dataclass(frozen=True)
class Sample:
    path: Path
    text: str

    def read(self) -> bytes:
        return self.path.read_bytes()


def eval_samples(set_name: str, count: int) -> list[Sample]:
    """The first ``count`` labelled images of an eval set; [] when the set is not there."""
    labels = EVAL_DIR / set_name / "labels.jsonl"
    if not labels.is_file():
        return []
    rows = [json.loads(line) for line in labels.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [Sample(EVAL_DIR / set_name / row["image"], row["text"]) for row in rows[:count]]


def load_score() -> ModuleType | None:
    """The eval set's own score.py (for its text normalisation), or None when it is missing."""
    path = EVAL_DIR / "score.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("crnnocr_eval_score", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cer(refs: list[str], hyps: list[str], norm: Callable[[str], str]) -> float:
    """Character error rate summed over pairs, after ``norm``."""
    from rapidfuzz.distance import Levenshtein

    edits = sum(Levenshtein.distance(norm(r), norm(h)) for r, h in zip(refs, hyps, strict=True))
    return edits / max(1, sum(len(norm(r)) for r in refs))


def render_text(lines: list[str], *, fmt: str = "PNG", size: int = 40) -> bytes:
    """Black text on white, one line per entry, in DejaVu Sans (Debian's fonts-dejavu-core)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(FONT), size)
    height = int(size * 1.6)
    width = max(int(font.getlength(line)) for line in lines) + 2 * size
    image = Image.new("RGB", (width, height * len(lines) + size), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((size, size // 2 + i * height), line, fill="black", font=font)
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def weak_line_png() -> bytes:
    """A line the recogniser reads with a confidence under 0.5 (thin strokes, blurred): what a
    default min_score of 0.5 would drop and 0 keeps."""
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    image = Image.new("L", (420, 70), 255)
    ImageDraw.Draw(image).text((10, 10), "ll1Il|", font=ImageFont.truetype(str(FONT), 40), fill=0)
    out = io.BytesIO()
    image.filter(ImageFilter.GaussianBlur(3)).save(out, "PNG")
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels but carries one empty IDAT: a pixel bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    parts = (chunk(b"IHDR", ihdr), chunk(b"IDAT", zlib.compress(b"")), chunk(b"IEND", b""))
    return b"\x89PNG\r\n\x1a\n" + b"".join(parts)


def eval_file(relative: str) -> Path:
    """A file of the eval data, or a loud skip when the data is not there."""
    import pytest

    path = EVAL_DIR / relative
    if not path.is_file():
        pytest.skip(f"SKIPPED LOUDLY: eval file {path} missing (CI has ../shared/eval; set CRNNOCR_EVAL)")
    return path


def scanned_pdf(images: list[bytes], dpi: int = 200) -> bytes:
    """A scanned-style PDF: each image embedded as a page at ``dpi`` (Pillow's PDF writer, JPEG
    inside), so that rendering it back at ``dpi`` gives the image's own pixel size."""
    from PIL import Image

    pages = [Image.open(io.BytesIO(data)).convert("RGB") for data in images]
    out = io.BytesIO()
    pages[0].save(out, "PDF", save_all=True, append_images=pages[1:], resolution=dpi)
    return out.getvalue()


def multipage_tiff(images: list[bytes]) -> bytes:
    """The images as the frames of one TIFF (Pillow 13's save_all to TIFF fails; this works)."""
    from PIL import Image, TiffImagePlugin

    out = io.BytesIO()
    with TiffImagePlugin.AppendingTiffWriter(out) as tiff:
        for data in images:
            Image.open(io.BytesIO(data)).convert("RGB").save(tiff, "TIFF", compression="tiff_deflate")
            tiff.newFrame()
    return out.getvalue()


def encrypted_pdf(plain: bytes, work: Path) -> bytes:
    """``plain`` encrypted with a user password by qpdf (Debian's qpdf), as a bank statement is."""
    import shutil
    import subprocess

    import pytest

    if shutil.which("qpdf") is None:
        pytest.fail("qpdf missing (Debian package qpdf, in setup/debian-packages.txt)")
    source, target = work / "plain.pdf", work / "encrypted.pdf"
    source.write_bytes(plain)
    command = ["qpdf", "--encrypt", "secret", "owner", "256", "--", str(source), str(target)]
    subprocess.run(command, check=True)
    return target.read_bytes()


def oversized_pdf() -> bytes:
    """One page of 200 × 200 inches: 40000 pixels a side at 200 dpi, from a 100-pixel image."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (100, 100), "white").save(out, "PDF", resolution=0.5)
    return out.getvalue()


def receipt_pages(count: int = 3) -> list[Sample]:
    """The first ``count`` scanned receipts of the eval data, or a loud skip without it."""
    import pytest

    samples = eval_samples("sroie_receipts_en", count)
    if len(samples) < count:
        pytest.skip(f"SKIPPED LOUDLY: {EVAL_DIR / 'sroie_receipts_en'} missing (set CRNNOCR_EVAL)")
    return samples


# The eval gate's CER bound for scanned receipts (tests/test_core_eval.py), for the pages of a document.
RECEIPT_CER = 0.074
