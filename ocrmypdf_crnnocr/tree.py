"""A crnnocr page as OCRmyPDF's ``OcrElement`` tree: the structure of crnnocr's hOCR (page, a
content area and a paragraph per block, a line per visual row, words), the same boxes and
baselines (``ocr_core.formats.geometry``), built as objects instead of text."""

from __future__ import annotations

from ocrmypdf.models.ocr_element import Baseline, BoundingBox, OcrClass, OcrElement

from ocr_core.formats.geometry import Rect, baseline, blocks, rect
from ocr_core.result import OcrResult


def _box(r: Rect) -> BoundingBox:
    return BoundingBox(left=r[0], top=r[1], right=r[2], bottom=r[3])


def page_element(result: OcrResult, dpi: float | None, page_number: int) -> OcrElement:
    """The page tree OCRmyPDF renders as its text layer; boxes in the image's pixels."""
    page = result.pages[0]
    areas = []
    for block in blocks(page):
        lines = []
        for row in block.rows:
            words = [
                OcrElement(ocr_class=OcrClass.WORD, bbox=_box(rect([word.box], page.width, page.height)),
                           text=word.text, confidence=word.score)
                for word in row.words
            ]
            slope, offset = baseline(row)
            lines.append(OcrElement(ocr_class=OcrClass.LINE, bbox=_box(row.rect), children=words,
                                    baseline=Baseline(slope=slope, intercept=offset)))
        paragraph = OcrElement(ocr_class=OcrClass.PARAGRAPH, bbox=_box(block.rect), children=lines)
        areas.append(OcrElement(ocr_class=OcrClass.CAREA, bbox=_box(block.rect), children=[paragraph]))
    return OcrElement(ocr_class=OcrClass.PAGE, bbox=_box((0, 0, page.width, page.height)), children=areas,
                      dpi=dpi, page_number=page_number)
