"""Result dataclasses; ``OcrResult.to_dict()`` is the JSON schema the CGI and C library emit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Point = tuple[float, float]
Box = tuple[Point, Point, Point, Point]


@dataclass(frozen=True)
class TextLine:
    """One recognised line: its text, mean character confidence in [0, 1], and its box.

    ``box`` holds 4 points clockwise from top-left, in pixels of the original image
    (after EXIF orientation).
    """

    text: str
    score: float
    box: Box

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "score": round(self.score, 4),
            "box": [[round(x, 1), round(y, 1)] for x, y in self.box],
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
        """The lines' texts joined by ``\\n`` ("" when nothing was found)."""
        return "\n".join(line.text for line in self.lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "text": self.text,
            "lines": [line.to_dict() for line in self.lines],
            "image": {"width": self.width, "height": self.height},
            "model": self.model,
            "timing_ms": self.timings.to_dict(),
        }
