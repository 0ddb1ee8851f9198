"""Documents (issue 13): PDF pages and TIFF frames read page by page, selected, limited, refused.

The acceptance document is built here from eval receipts, scanned-style (each image a PDF page at
200 dpi); the same pages as a multi-page TIFF. Each page's text must stay within the receipts'
CER bound, and a document must cost one page's memory and leave an image request's imports alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ocr_core import Engine, EngineConfig, RecognizeOptions
from ocr_core.errors import ErrorCode, OcrError
from ocr_core.pages import PageSelection
from ocr_core.result import DocumentResult, OcrResult
from tests.support import (
    CHECKOUT,
    RECEIPT_CER,
    cer,
    encrypted_pdf,
    multipage_tiff,
    oversized_pdf,
    receipt_pages,
    render_text,
    scanned_pdf,
)


@pytest.fixture(scope="module")
def receipts() -> list:
    return receipt_pages(3)


@pytest.fixture(scope="module")
def receipts_pdf(receipts: list) -> bytes:
    return scanned_pdf([s.read() for s in receipts])


@pytest.fixture(scope="module")
def pdf_result(engine: Engine, receipts_pdf: bytes) -> DocumentResult:
    result = engine.recognize(receipts_pdf)
    assert isinstance(result, DocumentResult)
    return result


def assert_pages_within_bound(texts: list[str], receipts: list, norm: Callable[[str], str]) -> None:
    """The pages' CER, counted as the eval set's is (edits over characters), within its bound."""
    assert len(texts) == len(receipts)
    assert cer([s.text for s in receipts], texts, norm) <= RECEIPT_CER


def test_pdf_pages_are_read_within_the_receipts_bound(pdf_result: DocumentResult, receipts: list,
                                                      norm: Callable[[str], str]) -> None:
    assert [p.number for p in pdf_result.pages] == [1, 2, 3]
    assert_pages_within_bound([p.text for p in pdf_result.pages], receipts, norm)
    # Scanned at 200 dpi and rendered at 200 dpi: each page has its image's pixel size.
    from PIL import Image

    for page, sample in zip(pdf_result.pages, receipts, strict=True):
        with Image.open(sample.path) as image:
            assert abs(page.width - image.width) <= 1 and abs(page.height - image.height) <= 1
    assert pdf_result.text.split("\f") == [p.text for p in pdf_result.pages]
    record = pdf_result.to_dict()
    assert record["document"] == {"format": "PDF", "page_count": 3, "dpi": 200}
    assert [p["number"] for p in record["pages"]] == [1, 2, 3]
    assert set(record["pages"][0]) == {"number", "text", "lines", "image"}
    assert "lines" not in record and "image" not in record
    assert record["timing_ms"]["decode"] > 0  # rendering is counted as decoding


def test_tiff_frames_read_like_the_images(engine: Engine, receipts: list, norm: Callable[[str], str]) -> None:
    tiff = multipage_tiff([s.read() for s in receipts])
    result = engine.recognize(tiff)
    assert isinstance(result, DocumentResult) and result.format == "TIFF" and result.dpi is None
    assert result.to_dict()["document"] == {"format": "TIFF", "page_count": 3, "dpi": None}
    assert_pages_within_bound([p.text for p in result.pages], receipts, norm)
    # Lossless frames: a page reads exactly as its image does.
    assert result.pages[1].text == engine.recognize(receipts[1].read()).text


def test_page_selection(engine: Engine, receipts_pdf: bytes, pdf_result: DocumentResult) -> None:
    chosen = engine.recognize(receipts_pdf, RecognizeOptions(pages="3"))
    assert [p.number for p in chosen.pages] == [3]
    assert chosen.text == pdf_result.pages[2].text
    assert chosen.to_dict()["document"]["page_count"] == 3
    line_mode = RecognizeOptions(mode="line", pages="3,1")  # no detection: the selection is what counts
    assert [p.number for p in engine.recognize(receipts_pdf, line_mode).pages] == [1, 3]
    line_mode = RecognizeOptions(mode="line", pages="2-")
    assert [p.number for p in engine.recognize(receipts_pdf, line_mode).pages] == [2, 3]
    with pytest.raises(OcrError) as caught:
        engine.recognize(receipts_pdf, RecognizeOptions(pages="2-4"))
    assert caught.value.code is ErrorCode.BAD_REQUEST and "past the end" in caught.value.message


@pytest.mark.parametrize("spec", ["", "0", "3-1", "1,,2", "a", "1-2-3", "-3", "1" * 300])
def test_malformed_selections_are_refused_before_reading(spec: str) -> None:
    with pytest.raises(OcrError) as caught:
        RecognizeOptions(pages=spec)
    assert caught.value.code is ErrorCode.BAD_REQUEST


def test_selection_order_and_ranges() -> None:
    assert PageSelection.parse(" 7, 1-3 ,2").resolve(9) == [1, 2, 3, 7]
    assert PageSelection.parse("4-").resolve(6) == [4, 5, 6]


def test_an_image_is_page_one(engine: Engine) -> None:
    image = render_text(["Page one"])
    result = engine.recognize(image, RecognizeOptions(pages="1"))
    assert isinstance(result, OcrResult) and result.text == "Page one"
    assert "pages" not in result.to_dict() and [p.number for p in result.pages] == [1]
    with pytest.raises(OcrError) as caught:
        engine.recognize(image, RecognizeOptions(pages="2"))
    assert caught.value.code is ErrorCode.BAD_REQUEST


def test_rendered_text_pdf_at_several_resolutions(engine: Engine) -> None:
    pdf = scanned_pdf([render_text(["Quarterly report 2026"]), render_text(["Second page here"])], dpi=100)
    for dpi in (100, 300):
        result = engine.recognize(pdf, RecognizeOptions(dpi=dpi))
        assert result.text == "Quarterly report 2026\fSecond page here"
        assert result.pages[0].width == pytest.approx(dpi / 100 * result.pages[0].width / (dpi / 100), abs=1)
    low, high = (engine.recognize(pdf, RecognizeOptions(dpi=d, pages="1")).pages[0] for d in (100, 300))
    assert high.width == pytest.approx(3 * low.width, abs=2)


# ---- the limits and the errors, each with its own code -------------------------------------------


def test_too_many_pages(receipts_pdf: bytes) -> None:
    small = Engine.load(EngineConfig(max_pages=2))
    with pytest.raises(OcrError) as caught:
        small.recognize(receipts_pdf, RecognizeOptions(mode="line"))
    assert caught.value.code is ErrorCode.TOO_MANY_PAGES and caught.value.code.http_status == 413
    assert "3 pages" in caught.value.message and "limit is 2" in caught.value.message
    assert len(small.recognize(receipts_pdf, RecognizeOptions(mode="line", pages="2-3")).pages) == 2


def test_page_too_large_is_refused_before_rendering(engine: Engine) -> None:
    with pytest.raises(OcrError) as caught:
        engine.recognize(oversized_pdf())
    assert caught.value.code is ErrorCode.IMAGE_TOO_LARGE
    assert "40000×40000" in caught.value.message and "dpi" in caught.value.message
    # The same page at 30 dpi is 6000 pixels a side: within the limits.
    assert engine.recognize(oversized_pdf(), RecognizeOptions(dpi=30, mode="line")).pages[0].width == 6000


def test_encrypted_pdf(engine: Engine, tmp_path: Path) -> None:
    locked = encrypted_pdf(scanned_pdf([render_text(["Secret"])]), tmp_path)
    with pytest.raises(OcrError) as caught:
        engine.recognize(locked)
    assert caught.value.code is ErrorCode.DOCUMENT_ENCRYPTED and caught.value.code.http_status == 422
    assert "password" in caught.value.message


BROKEN_PDFS = {
    "garbage": b"%PDF-1.7\n" + bytes(range(256)) * 8,
    "no_pages": b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n",
    "header_only": b"%PDF-",
}


@pytest.mark.parametrize("name", sorted(BROKEN_PDFS))
def test_broken_pdf_is_a_clear_decode_failure(engine: Engine, name: str) -> None:
    with pytest.raises(OcrError) as caught:
        engine.recognize(BROKEN_PDFS[name])
    assert caught.value.code is ErrorCode.DECODE_FAILED
    assert "PDF" in caught.value.message and "pdfium" not in caught.value.message.lower()


def test_truncated_pdf_reads_what_is_there_or_fails_cleanly(engine: Engine, receipts_pdf: bytes) -> None:
    for cut in (len(receipts_pdf) // 3, len(receipts_pdf) - 40):
        try:
            result = engine.recognize(receipts_pdf[:cut], RecognizeOptions(mode="line"))
        except OcrError as exc:
            assert exc.code is ErrorCode.DECODE_FAILED, exc
        else:
            assert isinstance(result, DocumentResult)


def test_deadline_stops_a_document(engine: Engine) -> None:
    import time

    from ocr_core.deadline import Deadline
    from ocr_core.engine import _check_between_pages

    expired = Deadline(1.0, time.monotonic())
    pdf = scanned_pdf([render_text(["One"]), render_text(["Two"])])
    with pytest.raises(OcrError) as caught:
        engine.recognize(pdf, deadline=expired)
    assert caught.value.code is ErrorCode.TIMEOUT
    # Between two pages the message says how far it got and what to do.
    with pytest.raises(OcrError) as caught:
        _check_between_pages(expired, 1, 2)
    assert caught.value.code is ErrorCode.TIMEOUT
    assert "after 1 of 2 pages (select fewer" in caught.value.message


# ---- cost: one page at a time, and nothing for images --------------------------------------------


ONE_PAGE_AT_A_TIME = """
import json, tracemalloc
from ocr_core import Engine, EngineConfig, RecognizeOptions
from tests.support import render_text, scanned_pdf

engine = Engine.load(EngineConfig.from_env())
page = render_text(["A page of a long document", "with two lines of text"], size=90)
peaks = []
for count in (1, 4):
    pdf = scanned_pdf([page] * count, dpi=100)
    tracemalloc.start()
    result = engine.recognize(pdf, RecognizeOptions(dpi=200))
    peaks.append(tracemalloc.get_traced_memory()[1])
    tracemalloc.stop()
    assert len(result.pages) == count
print(json.dumps({"peaks": peaks, "pixels": 3 * result.pages[0].width * result.pages[0].height}))
"""


def test_a_document_holds_one_page_at_a_time() -> None:
    """Pages are rendered, read and dropped one by one: four pages peak no higher than one does.
    (tracemalloc sees numpy's buffers: the rendered pages and every stage's arrays.) Measured in a
    fresh process: in the suite's own, earlier tests' state moved the figures by two pages."""
    done = subprocess.run([sys.executable, "-c", ONE_PAGE_AT_A_TIME], capture_output=True, text=True,
                          cwd=CHECKOUT, timeout=300, check=True)
    figures = json.loads(done.stdout)
    (one, four), pixels = figures["peaks"], figures["pixels"]
    assert four - one < pixels / 2, figures


def test_an_image_request_never_imports_pypdfium2(tmp_path: Path) -> None:
    image = tmp_path / "line.png"
    image.write_bytes(render_text(["Cold start"]))
    probe = (
        "import sys, runpy\n"
        f"sys.argv = ['ocr_core', '--format', 'json', {str(image)!r}]\n"
        "from ocr_core.__main__ import main\n"
        "main()\n"
        "print('pypdfium2' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(CHECKOUT)}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120,
                          check=True)
    output, imported = done.stdout.rsplit("\n", 2)[0], done.stdout.rsplit("\n", 2)[1]
    assert json.loads(output)["text"] == "Cold start"
    assert imported == "False"


def _cli(*args: str | Path, **environ: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(CHECKOUT), **environ}
    return subprocess.run([sys.executable, "-m", "ocr_core", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


def test_command_line_reads_documents(receipts: list, receipts_pdf: bytes, tmp_path: Path,
                                      norm: Callable[[str], str]) -> None:
    """The CLI on the acceptance PDF (text, pages by form feed) and on the same pages as a TIFF,
    one page of it selected."""
    pdf, tiff = tmp_path / "receipts.pdf", tmp_path / "receipts.tif"
    pdf.write_bytes(receipts_pdf)
    tiff.write_bytes(multipage_tiff([s.read() for s in receipts]))
    done = _cli(pdf)
    assert done.returncode == 0, done.stderr
    assert_pages_within_bound(done.stdout.removesuffix("\n").split("\f"), receipts, norm)
    done = _cli("--jsonl", "--pages", "2", tiff)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["document"] == {"format": "TIFF", "page_count": 3, "dpi": None}
    assert [p["number"] for p in record["pages"]] == [2]
    assert cer([receipts[1].text], [record["pages"][0]["text"]], norm) <= RECEIPT_CER


def test_command_line_document_errors(receipts_pdf: bytes, tmp_path: Path) -> None:
    """Each document error as the CLI reports it: every file is tried, each gets its code."""
    files = {
        "locked.pdf": (encrypted_pdf(scanned_pdf([render_text(["Secret"])]), tmp_path), "document_encrypted"),
        "broken.pdf": (BROKEN_PDFS["garbage"], "decode_failed"),
        "poster.pdf": (oversized_pdf(), "image_too_large"),
        "receipts.pdf": (receipts_pdf, "too_many_pages"),
    }
    for name, (data, _code) in files.items():
        (tmp_path / name).write_bytes(data)
    done = _cli("--jsonl", "--mode", "line", *(tmp_path / name for name in files), CRNNOCR_MAX_PAGES="2")
    assert done.returncode == 1
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(Path(r["file"]).name, r["error"]["code"]) for r in records] == [
        (name, code) for name, (_data, code) in files.items()]
    assert "Traceback" not in done.stderr
