"""What the layout formats share: a page's blocks of rows of words, and integer boxes."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..result import Box, Page, TextLine, Word

Rect = tuple[int, int, int, int]  # left, top, right, bottom, in whole pixels


@dataclass(frozen=True)
class Row:
    """A visual row: the lines of one row (left to right) and their words, in reading order."""

    lines: tuple[TextLine, ...]
    words: tuple[Word, ...]
    rect: Rect


@dataclass(frozen=True)
class Block:
    rows: tuple[Row, ...]
    rect: Rect


def rect(boxes: Iterable[Box], width: int, height: int) -> Rect:
    """The smallest whole-pixel rectangle holding the boxes, inside the page."""
    points = [point for box in boxes for point in box]
    xs = [x for x, _y in points]
    ys = [y for _x, y in points]
    left = min(max(math.floor(min(xs)), 0), width)
    top = min(max(math.floor(min(ys)), 0), height)
    right = min(max(math.ceil(max(xs)), left), width)
    bottom = min(max(math.ceil(max(ys)), top), height)
    return left, top, right, bottom


def union(rects: Iterable[Rect]) -> Rect:
    rects = list(rects)
    lefts, tops, rights, bottoms = zip(*rects, strict=True)
    return min(lefts), min(tops), max(rights), max(bottoms)


def line_words(line: TextLine) -> tuple[Word, ...]:
    """A line's words; a line built without them is one word, as wide as the line."""
    return line.words or (Word(line.text, line.score, line.box),)


def baseline(row: Row) -> tuple[float, int]:
    """The row's baseline as hOCR puts it: slope, then offset from the bottom-left corner of
    ``row.rect``. The bottom edge of the row's boxes stands in for it (it runs under the
    descenders)."""
    (x0, y0), (x1, y1) = row.lines[0].box[3], row.lines[-1].box[2]
    slope = (y1 - y0) / (x1 - x0) if x1 - x0 > 1 else 0.0
    return slope, round(y0 + slope * (row.rect[0] - x0) - row.rect[3])


def blocks(page: Page) -> Iterator[Block]:
    """The page's blocks of rows, from the lines' ``block`` and ``row`` numbers."""
    groups: list[list[list[TextLine]]] = []
    last: TextLine | None = None
    for line in page.lines:
        if last is None or line.block != last.block:
            groups.append([[line]])
        elif line.row != last.row:
            groups[-1].append([line])
        else:
            groups[-1][-1].append(line)
        last = line
    for group in groups:
        rows = tuple(
            Row(tuple(lines), tuple(w for line in lines for w in line_words(line)),
                rect((line.box for line in lines), page.width, page.height))
            for lines in group
        )
        yield Block(rows, union(row.rect for row in rows))
