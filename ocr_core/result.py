"""Result dataclasses; ``OcrResult.to_dict()`` is the JSON schema the CGI and C library emit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Point = tuple[float, float]
Box = tuple[Point, Point, Point, Point]


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "score": round(self.score, 4),
            "box": [[round(x, 1), round(y, 1)] for x, y in self.box],
            "block": self.block,
            "row": self.row,
        }


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


@dataclass(frozen=True)
class OcrResult:
    """Everything one call recognised, in reading order."""

    lines: tuple[TextLine, ...]
    width: int
    height: int
    model: str
    timings: Timings = field(default_factory=Timings)

    @property
    def text(self) -> str:
        """The page as a person reads it: the lines of a row joined by a space, rows by ``\\n``,
        blocks by a blank line ("" when nothing was found)."""
        blocks: list[list[str]] = []
        last: TextLine | None = None
        for line in self.lines:
            if last is None or line.block != last.block:
                blocks.append([line.text])
            elif line.row != last.row:
                blocks[-1].append(line.text)
            else:
                blocks[-1][-1] += " " + line.text
            last = line
        return "\n\n".join("\n".join(rows) for rows in blocks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "text": self.text,
            "lines": [line.to_dict() for line in self.lines],
            "image": {"width": self.width, "height": self.height},
            "model": self.model,
            "timing_ms": self.timings.to_dict(),
        }
