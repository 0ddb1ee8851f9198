"""Result dataclasses; ``to_dict()`` is the JSON schema the CGI and C library emit.

An image gives an ``OcrResult`` (its JSON unchanged since before documents); a document (a PDF, a
multi-page TIFF) gives a ``DocumentResult`` of ``Page``s. Both are read page by page by the
renderers (``ocr_core.formats``: text, JSON, hOCR, ALTO, TSV), which ``render`` and the
``to_*`` methods reach.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

Point = tuple[float, float]
Box = tuple[Point, Point, Point, Point]
# Pages of a document's text are separated by a form feed, as Tesseract separates them.
PAGE_SEPARATOR = "\f"


def _box_to_list(box: Box) -> list[list[float]]:
    return [[round(x, 1), round(y, 1)] for x, y in box]


@dataclass(frozen=True)
class Word:
    """A maximal run of non-space characters of a line: its text, the mean probability of its
    characters, and its box (4 points, in the corner order of its line's box) placed from the
    recogniser's alignment."""

    text: str
    score: float
    box: Box

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "score": round(self.score, 4), "box": _box_to_list(self.box)}


@dataclass(frozen=True)
class TextLine:
    """One recognised line: its text, mean character confidence in [0, 1], its box, and its place.

    ``box`` holds 4 points clockwise from top-left, in pixels of the original image
    (after EXIF orientation). ``block`` and ``row`` number the page's blocks and visual rows in
    reading order, from 0: lines of one row share ``row`` and are listed left to right; a block
    (a column, a cell of a grid, a paragraph) holds consecutive rows, and a row never spans two.
    """

    text: str
    score: float
    box: Box
    block: int
    row: int
    words: tuple[Word, ...] = ()

    def to_dict(self, *, words: bool = False) -> dict[str, Any]:
        """The line's JSON; ``words`` adds its words (left out by default, as before words)."""
        record: dict[str, Any] = {
            "text": self.text,
            "score": round(self.score, 4),
            "box": _box_to_list(self.box),
            "block": self.block,
            "row": self.row,
        }
        if words:
            record["words"] = [word.to_dict() for word in self.words]
        return record


def page_text(lines: Sequence[TextLine]) -> str:
    """A page as a person reads it: the lines of a row joined by a space, rows by ``\\n``,
    blocks by a blank line ("" when nothing was found)."""
    blocks: list[list[str]] = []
    last: TextLine | None = None
    for line in lines:
        if last is None or line.block != last.block:
            blocks.append([line.text])
        elif line.row != last.row:
            blocks[-1].append(line.text)
        else:
            blocks[-1][-1] += " " + line.text
        last = line
    return "\n\n".join("\n".join(rows) for rows in blocks)


@dataclass(frozen=True)
class Timings:
    """Milliseconds spent per stage of one call."""

    decode: float = 0.0
    detect: float = 0.0
    classify: float = 0.0
    recognize: float = 0.0
    total: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return {
            "decode": round(self.decode, 2),
            "detect": round(self.detect, 2),
            "classify": round(self.classify, 2),
            "recognize": round(self.recognize, 2),
            "total": round(self.total, 2),
        }


class Renderable:
    """The output formats of a result: ``render(format)`` and one ``to_<format>()`` each."""

    def render(self, fmt: str) -> str:
        """The result in ``fmt``, one of ``ocr_core.formats.FORMATS``."""
        from .formats import render

        return render(self, fmt)  # type: ignore[arg-type]

    def to_json(self) -> str:
        return self.render("json")

    def to_text(self) -> str:
        return self.render("text")

    def to_hocr(self) -> str:
        return self.render("hocr")

    def to_alto(self) -> str:
        return self.render("alto")

    def to_tsv(self) -> str:
        return self.render("tsv")


@dataclass(frozen=True)
class Page:
    """One page read: its number in the document (from 1), its size in pixels, its lines in
    reading order. An image is a document of one page."""

    number: int
    width: int
    height: int
    lines: tuple[TextLine, ...]

    @property
    def text(self) -> str:
        return page_text(self.lines)

    def to_dict(self, *, words: bool = False) -> dict[str, Any]:
        return {
            "number": self.number,
            "text": self.text,
            "lines": [line.to_dict(words=words) for line in self.lines],
            "image": {"width": self.width, "height": self.height},
        }


@dataclass(frozen=True)
class OcrResult(Renderable):
    """Everything one call recognised in an image, in reading order."""

    lines: tuple[TextLine, ...]
    width: int
    height: int
    model: str
    timings: Timings = field(default_factory=Timings)

    @property
    def text(self) -> str:
        """The page as a person reads it (see ``page_text``)."""
        return page_text(self.lines)

    @property
    def pages(self) -> tuple[Page, ...]:
        """The image as the one page of a document, as the renderers read it."""
        return (Page(1, self.width, self.height, self.lines),)

    def to_dict(self, *, words: bool = False) -> dict[str, Any]:
        return {
            "ok": True,
            "text": self.text,
            "lines": [line.to_dict(words=words) for line in self.lines],
            "image": {"width": self.width, "height": self.height},
            "model": self.model,
            "timing_ms": self.timings.to_dict(),
        }


@dataclass(frozen=True)
class DocumentResult(Renderable):
    """Everything one call recognised in a document (a PDF, a multi-page TIFF): the pages read,
    in order. ``format`` is ``"PDF"`` or ``"TIFF"``, ``page_count`` the number of pages in the
    file (more than ``pages`` hold when some were selected), ``dpi`` the resolution PDF pages were
    rendered at (None for TIFF, whose pages are pixels already). ``timings`` add up the pages';
    ``decode`` includes rendering."""

    pages: tuple[Page, ...]
    format: str
    page_count: int
    dpi: int | None
    model: str
    timings: Timings = field(default_factory=Timings)

    @property
    def text(self) -> str:
        """Each page's text, pages separated by a form feed (``\\f``)."""
        return PAGE_SEPARATOR.join(page.text for page in self.pages)

    @property
    def lines(self) -> tuple[TextLine, ...]:
        """Every page's lines, page after page."""
        return tuple(line for page in self.pages for line in page.lines)

    def to_dict(self, *, words: bool = False) -> dict[str, Any]:
        return {
            "ok": True,
            "text": self.text,
            "pages": [page.to_dict(words=words) for page in self.pages],
            "document": {"format": self.format, "page_count": self.page_count, "dpi": self.dpi},
            "model": self.model,
            "timing_ms": self.timings.to_dict(),
        }
