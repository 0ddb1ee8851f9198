"""Searchable PDF through OCRmyPDF (issue 13, item 3): ``ocrmypdf --plugin ocrmypdf_crnnocr``.

The real ocrmypdf command (two forked page workers, its fpdf2 text layer, its PDF/A step) on a
scanned PDF; the text layer is then read back by poppler's ``pdftotext``, as a user's search
would: the eval receipts' text within their CER bound, and on a page drawn here from Debian fonts,
every word found back on its own ink.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import CHECKOUT, RECEIPT_CER, cer, receipt_pages, scanned_pdf

DPI = 200
POINTS_TO_PIXELS = DPI / 72


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} missing (Debian package in setup/debian-packages.txt; `make setup`)")
    return path


def ocrmypdf(work: Path, pdf: bytes, *extra: str, **environ: str) -> subprocess.CompletedProcess[str]:
    """``ocrmypdf --plugin ocrmypdf_crnnocr`` as a user runs it, on ``pdf``; out.pdf in ``work``."""
    pytest.importorskip("ocrmypdf", reason="requirements-pdf.txt not installed; `make setup`")
    (work / "in.pdf").write_bytes(pdf)
    env = {**os.environ, "PYTHONPATH": str(CHECKOUT), "TMPDIR": str(work), **environ}
    command = [sys.executable, "-m", "ocrmypdf", "--plugin", "ocrmypdf_crnnocr", "-j", "2", *extra,
               "in.pdf", "out.pdf"]
    return subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=300)


def page_text(pdf: Path, page: int) -> str:
    """The page's text layer in content-stream order (-raw), the order crnnocr wrote it in."""
    command = [_tool("pdftotext"), "-raw", "-f", str(page), "-l", str(page), str(pdf), "-"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


@dataclass(frozen=True)
class PdfWord:
    text: str
    box: tuple[float, float, float, float]  # left, top, right, bottom in the page image's pixels


def page_words(pdf: Path, page: int) -> list[PdfWord]:
    command = [_tool("pdftotext"), "-bbox", "-f", str(page), "-l", str(page), str(pdf), "-"]
    html = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    pattern = r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>'
    return [PdfWord(text, tuple(float(v) * POINTS_TO_PIXELS for v in box))  # type: ignore[arg-type]
            for *box, text in re.findall(pattern, html)]


def assert_pdfa(pdf: Path) -> None:
    import pikepdf

    with pikepdf.open(pdf) as document:
        assert document.open_metadata().pdfa_status == "2B"
        assert "crnnocr" in str(document.docinfo.get("/Creator", ""))


def test_scanned_receipts_come_back_searchable(tmp_path: Path, norm: Callable[[str], str]) -> None:
    receipts = receipt_pages(3)
    run = ocrmypdf(tmp_path, scanned_pdf([s.read() for s in receipts], DPI))
    assert run.returncode == 0, run.stderr[-3000:]
    out = tmp_path / "out.pdf"
    assert_pdfa(out)
    texts = [page_text(out, page) for page in (1, 2, 3)]
    assert cer([s.text for s in receipts], texts, norm) <= RECEIPT_CER
    # Nothing of the run is left behind in its temporary directory.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.pdf", "out.pdf"]


@dataclass(frozen=True)
class DrawnWord:
    text: str
    line: int
    ink: tuple[float, float, float, float]


def drawn_page() -> tuple[bytes, list[DrawnWord]]:
    """A letter-like page in DejaVu Sans and Serif at 200 dpi, with each word's ink box."""
    from PIL import Image, ImageDraw, ImageFont

    fonts = Path("/usr/share/fonts/truetype/dejavu")
    lines = [("DejaVuSans.ttf", 44, "Invoice 2231 for Berlin Rail"),
             ("DejaVuSerif.ttf", 34, "Shipped on 3 May to Hamburg"),
             ("DejaVuSans.ttf", 34, "Total due 42.50 EUR by June")]
    image = Image.new("RGB", (1400, 700), "white")
    draw = ImageDraw.Draw(image)
    words: list[DrawnWord] = []
    y = 120
    for line, (name, size, text) in enumerate(lines):
        font = ImageFont.truetype(str(fonts / name), size)
        x = 100.0
        draw.text((x, y), text, fill="black", font=font)
        for word in text.split(" "):
            left, top, right, bottom = font.getbbox(word)
            words.append(DrawnWord(word, line, (x + left, y + top, x + right, y + bottom)))
            x += font.getlength(word + " ")
        y += 180
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue(), words


def test_words_land_on_their_ink(tmp_path: Path) -> None:
    image, drawn = drawn_page()
    run = ocrmypdf(tmp_path, scanned_pdf([image], DPI))
    assert run.returncode == 0, run.stderr[-3000:]
    out = tmp_path / "out.pdf"
    assert_pdfa(out)
    found = page_words(out, 1)
    assert [w.text for w in found] == [w.text for w in drawn]
    for k, (word, ink) in enumerate(zip(found, drawn, strict=True)):
        left, top, right, bottom = word.box
        # Along the line the text layer's word covers its ink, and not its neighbours'.
        covered = min(right, ink.ink[2]) - max(left, ink.ink[0])
        assert covered >= 0.85 * (ink.ink[2] - ink.ink[0]), (word, ink)
        for j in (k - 1, k + 1):
            if 0 <= j < len(drawn) and drawn[j].line == ink.line:
                other = drawn[j].ink
                assert min(right, other[2]) - max(left, other[0]) <= 0.15 * (other[2] - other[0]), (word, j)
        # Across it, the word sits on its own line's ink.
        assert ink.ink[1] <= (top + bottom) / 2 <= ink.ink[3], (word, ink)
    assert page_text(out, 1).split() == [w.text for w in drawn]


def test_sandwich_renderer_is_refused_clearly(tmp_path: Path) -> None:
    """Tesseract's own renderer cannot take crnnocr's words: a usage error, before any page."""
    image, _drawn = drawn_page()
    run = ocrmypdf(tmp_path, scanned_pdf([image], DPI), "--pdf-renderer", "sandwich")
    assert run.returncode == 1, run.stderr[-3000:]  # OCRmyPDF's ExitCode.bad_args
    assert "crnnocr" in run.stderr and "sandwich" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "out.pdf").exists()


def test_a_page_crnnocr_refuses_fails_the_run_clearly(tmp_path: Path) -> None:
    """crnnocr's own limit on a page (here a pixel cap below the page) is OCRmyPDF's child-process
    error, with crnnocr's code and no traceback; no output is written."""
    image, _drawn = drawn_page()
    run = ocrmypdf(tmp_path, scanned_pdf([image], DPI), CRNNOCR_MAX_PIXELS="100000")
    assert run.returncode == 7, run.stderr[-3000:]  # OCRmyPDF's ExitCode.child_process_error
    assert "image_too_large" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "out.pdf").exists()
