"""Output formats read by real consumers, and word boxes placed on the words' ink (issue 13).

ALTO is validated against the official ALTO 4.4 XSD (tests/data/alto/SOURCES.md) by lxml; hOCR is
checked by hocr-tools' hocr-check (hocr-tools-lib) and parsed by the Internet Archive's hOCR
parser (archive-hocr-tools); TSV is read the two ways pytesseract reads Tesseract's: its own
``file_to_dict`` (Output.DICT) and pandas ``read_csv(sep='\\t', quoting=QUOTE_NONE)``
(Output.DATAFRAME). Word boxes are checked against the ink of words drawn at known places.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from ocr_core import Engine, RecognizeOptions
from ocr_core.formats import FORMATS, MEDIA_TYPES, render
from ocr_core.result import DocumentResult, OcrResult
from tests.support import render_text, scanned_pdf

ALTO_DIR = Path(__file__).resolve().parent / "data" / "alto"
XLINK_URL = "http://www.loc.gov/standards/xlink/xlink.xsd"
FONTS = Path("/usr/share/fonts/truetype/dejavu")
TSV_COLUMNS = ["level", "page_num", "block_num", "par_num", "line_num", "word_num",
               "left", "top", "width", "height", "conf", "text"]


@pytest.fixture(scope="module")
def page_result(engine: Engine) -> OcrResult:
    """Two blocks of text, so that every level of every format has more than one element."""
    image = render_text(["Invoice 2026-11 total 42.50", "Shipped to Berlin by rail", "Paid in full", "", "",
                         "Thank you & see you <soon>", "Opening hours 9-17", "Closed on Sundays"])
    result = engine.recognize(image)
    assert isinstance(result, OcrResult) and len({line.block for line in result.lines}) == 2
    return result


@pytest.fixture(scope="module")
def document_result(engine: Engine) -> DocumentResult:
    pdf = scanned_pdf([render_text(["First page words"]), render_text(["Second page", "two rows"])])
    result = engine.recognize(pdf)
    assert isinstance(result, DocumentResult)
    return result


def words_of(result: OcrResult | DocumentResult) -> list[list[str]]:
    return [[w.text for line in page.lines for w in line.words] for page in result.pages]


# ---- ALTO -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alto_schema():
    from lxml import etree

    class LocalXlink(etree.Resolver):
        def resolve(self, url, _public_id, context):
            if url == XLINK_URL:
                return self.resolve_filename(str(ALTO_DIR / "xlink.xsd"), context)
            return None

    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(LocalXlink())
    return etree.XMLSchema(etree.parse(str(ALTO_DIR / "alto-4-4.xsd"), parser))


@pytest.mark.parametrize("which", ["page", "document"])
def test_alto_is_valid_against_the_official_schema(alto_schema, which: str, page_result: OcrResult,
                                                   document_result: DocumentResult) -> None:
    from lxml import etree

    result = page_result if which == "page" else document_result
    alto = result.to_alto()
    tree = etree.fromstring(alto.encode("utf-8"))
    assert alto_schema.validate(tree), alto_schema.error_log
    ns = {"a": "http://www.loc.gov/standards/alto/ns-v4#"}
    pages = tree.findall(".//a:Page", ns)
    assert [int(p.get("PHYSICAL_IMG_NR")) for p in pages] == [p.number for p in result.pages]
    for page, xml_page in zip(result.pages, pages, strict=True):
        strings = xml_page.findall(".//a:String", ns)
        assert [s.get("CONTENT") for s in strings] == [w.text for line in page.lines for w in line.words]
        assert all(0 <= float(s.get("WC")) <= 1 for s in strings)
        for line in xml_page.findall(".//a:TextLine", ns):
            kinds = [etree.QName(child).localname for child in line]
            assert kinds[::2] == ["String"] * len(kinds[::2]) and set(kinds[1::2]) <= {"SP"}
        assert len(xml_page.findall(".//a:TextBlock", ns)) == len({line.block for line in page.lines})


# ---- hOCR -----------------------------------------------------------------------------------------


def test_hocr_passes_hocr_check(page_result: OcrResult, document_result: DocumentResult, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    from hocr_tools_lib.tools.hocr_check import Checker

    # hocr-check's overlap test looks at every ocr_line of the file at once (an XPath from the
    # root), so pages of one document, whose boxes share coordinates, fail it, Tesseract's too:
    # a document gets the structure checks, and each page the overlap checks alone.
    single_pages = [DocumentResult((page,), "PDF", 2, 200, document_result.model)
                    for page in document_result.pages]
    cases = [("page", page_result, False), ("document", document_result, True)]
    cases += [(f"page{n}", page, False) for n, page in enumerate(single_pages)]
    for name, result, structure_only in cases:
        path = tmp_path / f"{name}.hocr"
        path.write_text(result.to_hocr(), encoding="utf-8")
        Checker(path, no_overlap=structure_only).check()
        report = capsys.readouterr().err.splitlines()
        assert report and all(line.startswith("ok ") for line in report), report


def test_hocr_words_as_the_internet_archive_parser_reads_them(document_result: DocumentResult) -> None:
    from hocr.parse import (
        hocr_page_get_dimensions,
        hocr_page_get_scan_res,
        hocr_page_iterator,
        hocr_page_to_word_data,
    )

    # The iterator clears each page once the next is asked for, so read them as they come.
    parsed = []
    for page in hocr_page_iterator(io.BytesIO(document_result.to_hocr().encode("utf-8"))):
        words = [w for par in hocr_page_to_word_data(page) for line in par["lines"] for w in line["words"]]
        parsed.append((hocr_page_get_dimensions(page), hocr_page_get_scan_res(page), words))
    assert len(parsed) == len(document_result.pages)
    for page, (size, scan_res, words) in zip(document_result.pages, parsed, strict=True):
        assert size == (page.width, page.height) and scan_res == (200, 200)
        expected = [w for line in page.lines for w in line.words]
        assert [w["text"] for w in words] == [w.text for w in expected]
        for word, mine in zip(words, expected, strict=True):
            assert word["confidence"] == round(100 * mine.score)
            left, top, right, bottom = word["bbox"]
            xs, ys = [x for x, _ in mine.box], [y for _, y in mine.box]
            assert (left, top, right, bottom) == (math.floor(min(xs)), math.floor(min(ys)),
                                                  math.ceil(max(xs)), math.ceil(max(ys)))


def test_hocr_escapes_markup(page_result: OcrResult) -> None:
    from lxml import etree

    hocr = page_result.to_hocr()
    tree = etree.fromstring(hocr.encode("utf-8"))  # well-formed XHTML, as Tesseract writes it
    words = tree.findall(".//{http://www.w3.org/1999/xhtml}span[@class='ocrx_word']")
    assert [w.text for w in words] == [w for page in words_of(page_result) for w in page]
    assert any("<" in w.text for w in words) and "&lt;" in hocr


# ---- TSV ------------------------------------------------------------------------------------------


def test_tsv_as_pytesseract_reads_it(document_result: DocumentResult) -> None:
    import pandas as pd
    from pytesseract.pytesseract import file_to_dict

    tsv = document_result.to_tsv()
    # Output.DATAFRAME: pytesseract's own read_csv arguments.
    frame = pd.read_csv(io.BytesIO(tsv.encode("utf-8")), quoting=csv.QUOTE_NONE, sep="\t")
    assert list(frame.columns) == TSV_COLUMNS
    for column in TSV_COLUMNS[:10]:
        assert frame[column].dtype == np.int64, column
    assert frame["conf"].dtype == np.float64
    words = frame[frame.level == 5]
    assert (frame[frame.level < 5]["conf"] == -1).all() and frame[frame.level < 5]["text"].isna().all()
    assert words["conf"].between(0, 100).all()
    assert list(words["text"]) == [w for page in words_of(document_result) for w in page]
    assert sorted(set(frame.level)) == [1, 2, 3, 4, 5]
    assert list(frame[frame.level == 1].page_num) == [1, 2]
    pages = frame[frame.level == 1]
    assert list(pages.width) == [p.width for p in document_result.pages]
    # Output.DICT: pytesseract's file_to_dict, text the last column.
    table = file_to_dict(tsv, "\t", -1)
    assert list(table) == TSV_COLUMNS
    levels = zip(table["text"], table["level"], strict=True)
    assert [text for text, level in levels if level == 5] == list(words["text"])
    assert all(isinstance(v, int) for v in table["left"])


def test_formats_share_one_entry_point(page_result: OcrResult) -> None:
    assert set(MEDIA_TYPES) == set(FORMATS)
    for fmt in FORMATS:
        assert render(page_result, fmt) == page_result.render(fmt) == getattr(page_result, f"to_{fmt}")()
    assert render(page_result, "text") == page_result.text
    import json

    assert json.loads(render(page_result, "json")) == page_result.to_dict()
    with_words = json.loads(render(page_result, "json", words=True))
    assert [w["text"] for line in with_words["lines"] for w in line["words"]] == words_of(page_result)[0]
    assert "words" not in json.dumps(page_result.to_dict())  # today's JSON, unchanged by default


# ---- word boxes on the ink ------------------------------------------------------------------------


@dataclass(frozen=True)
class DrawnLine:
    image: Image.Image
    words: list[str]
    inks: list[np.ndarray]  # each word's ink box, 4 corners on the page


def draw_line(text: str, font_name: str, size: int) -> DrawnLine:
    font = ImageFont.truetype(str(FONTS / font_name), size)
    image = Image.new("RGB", (int(font.getlength(text)) + 2 * size, 3 * size), "white")
    ImageDraw.Draw(image).text((size, size), text, fill="black", font=font)
    inks, x = [], float(size)
    for word in text.split(" "):
        left, top, right, bottom = font.getbbox(word)
        inks.append(np.array([[x + left, size + top], [x + right, size + top], [x + right, size + bottom],
                              [x + left, size + bottom]]))
        x += font.getlength(word + " ")
    return DrawnLine(image, text.split(" "), inks)


def turned(line: DrawnLine, degrees: float) -> DrawnLine:
    """The line rotated counter-clockwise by ``degrees`` about its centre, on a larger canvas."""
    rotated = line.image.rotate(degrees, expand=True, fillcolor="white", resample=Image.BICUBIC)
    angle = math.radians(degrees)
    cx, cy = line.image.width / 2, line.image.height / 2
    matrix = np.array([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]])
    shift = np.array([rotated.width / 2, rotated.height / 2])
    inks = [(ink - [cx, cy]) @ matrix.T + shift for ink in line.inks]
    return DrawnLine(rotated, line.words, inks)


def along(points: np.ndarray, origin: np.ndarray, direction: np.ndarray) -> tuple[float, float]:
    """The extent of ``points`` projected on the line's reading direction."""
    t = (points - origin) @ direction
    return float(t.min()), float(t.max())


def overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def check_words(engine: Engine, line: DrawnLine, options: RecognizeOptions | None = None) -> None:
    out = io.BytesIO()
    line.image.save(out, "PNG")
    result = engine.recognize(out.getvalue(), options)
    words = [w for text_line in result.lines for w in text_line.words]
    assert [w.text for w in words] == line.words, [text_line.text for text_line in result.lines]
    # Measure along the reading direction (first ink's left edge to the last's right edge).
    origin = line.inks[0][0]
    direction = line.inks[-1][1] - origin
    direction = direction / np.linalg.norm(direction)
    inks = [along(ink, origin, direction) for ink in line.inks]
    for k, word in enumerate(words):
        box = along(np.array(word.box), origin, direction)
        ink = inks[k]
        assert overlap(box, ink) >= 0.9 * (ink[1] - ink[0]), (word.text, box, ink)
        for j in (k - 1, k + 1):
            if 0 <= j < len(inks):
                neighbour = inks[j]
                assert overlap(box, neighbour) <= 0.1 * (neighbour[1] - neighbour[0]), (word.text, j)
        # Across the line too: the box spans the ink's height.
        across = np.array([-direction[1], direction[0]])
        box_h = along(np.array(word.box), origin, across)
        ink_h = along(line.inks[k], origin, across)
        assert overlap(box_h, ink_h) >= 0.9 * (ink_h[1] - ink_h[0]), (word.text, box_h, ink_h)


LINES = [
    ("Invoice total: 42.50 EUR paid", "DejaVuSans.ttf", 40),
    ("Shipped to Berlin by rail on 3 May", "DejaVuSerif.ttf", 32),
    ("ID 7731 qty 12 price 9.99", "DejaVuSansMono.ttf", 28),
    ("a quick brown fox jumps over it", "DejaVuSans.ttf", 22),
]


@pytest.mark.parametrize(("text", "font", "size"), LINES, ids=[f for _t, f, _s in LINES])
def test_word_boxes_cover_their_ink(engine: Engine, text: str, font: str, size: int) -> None:
    check_words(engine, draw_line(text, font, size))


def test_word_boxes_on_a_tilted_line(engine: Engine) -> None:
    check_words(engine, turned(draw_line("Shipped to Berlin by rail", "DejaVuSans.ttf", 36), 12))


def test_word_boxes_on_a_vertical_line(engine: Engine) -> None:
    """Read top to bottom: the crop is turned a quarter before it is read."""
    check_words(engine, turned(draw_line("Total due 42.50", "DejaVuSans.ttf", 36), -90))


def test_word_boxes_on_an_upside_down_line(engine: Engine) -> None:
    """Turned by half and read back by the classifier: the words still sit on their ink."""
    check_words(engine, turned(draw_line("Shipped to Berlin", "DejaVuSans.ttf", 40), 180),
                RecognizeOptions(use_cls=True))


def test_word_scores_come_from_their_characters(page_result: OcrResult) -> None:
    for line in page_result.lines:
        assert "".join(w.text for w in line.words) == line.text.replace(" ", "")
        assert all(0 < w.score <= 1 for w in line.words)
        # The line's score also counts its spaces; its letters' mean is the words' weighted mean.
        letters = sum(w.score * len(w.text) for w in line.words) / sum(len(w.text) for w in line.words)
        assert letters == pytest.approx(line.score, abs=0.05)
