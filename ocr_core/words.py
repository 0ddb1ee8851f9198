"""Words of a recognised line, placed on the page from the recogniser's CTC alignment.

A word is a maximal run of characters other than spaces. CTC emits each character from a short
run of time steps that falls inside its glyph, right of its centre more often than not, never
across the whole glyph; so a word's extent is grown from the runs of its first and last
characters by a share of the line's character pitch (how far apart its characters are emitted):
``LEFT_REACH`` to the left, ``RIGHT_REACH`` to the right. Two neighbours grown into each other
are cut halfway through their overlap, so words never overlap. Each extent is then trimmed to the
crop's ink (the first and last columns holding any), as Tesseract's boxes are: a text layer needs
the gap between two words to show a space to ``pdftotext`` and other extractors that read spaces
from geometry. The extent, along the crop as the
recogniser read it, goes back to the page through the crop's frame (the perspective warp, the
quarter turn of tall text, and the half turn of an upside-down line).
"""

from __future__ import annotations

import cv2
import numpy as np

from .layout import CropFrame
from .median import median
from .recognize import Reading
from .result import Word

# Grow a word by these shares of the character pitch beyond the time steps of its first and last
# characters. The first is larger because CTC tends to emit a glyph from its right half. Measured
# on drawn lines (4 fonts; tilted, vertical, upside down) on both runtimes: the last glyph's ink
# covered >= 0.90 at 0.3, >= 0.97 at 0.5, and boxes reached into a neighbour's ink <= 4% either way.
LEFT_REACH = 0.8
RIGHT_REACH = 0.5
# A column holds ink when at least this share of the crop's height is ink (a speck is not a glyph).
INK_COLUMN_SHARE = 0.03
# Pixels kept beyond the last ink column: Otsu leaves out a glyph's anti-aliased rim.
INK_PAD = 1.5


def place_words(reading: Reading, crop: np.ndarray, frame: CropFrame, flipped: bool) -> tuple[Word, ...]:
    """The words of ``reading`` of ``crop`` (as the recogniser read it) with their page boxes;
    ``flipped`` when the crop was turned upside down before it was read."""
    spans = _word_spans(reading.text)
    if not spans:
        return ()
    centres = (reading.x0 + reading.x1) / 2
    steps = [np.diff(centres[a:z]) for a, z in spans if z - a > 1]
    inside = np.concatenate(steps) if steps else np.zeros(0)
    # The pitch of the line's characters; a line of one-letter words has none, so its height
    # (about an em) stands in for it.
    pitch = float(median(inside)) if inside.size else 0.5 * frame.reading_height
    width = frame.reading_width
    lefts = [max(0.0, float(reading.x0[a]) - LEFT_REACH * pitch) for a, _z in spans]
    rights = [min(float(width), float(reading.x1[z - 1]) + RIGHT_REACH * pitch) for _a, z in spans]
    for k in range(1, len(spans)):
        if rights[k - 1] > lefts[k]:
            cut = (rights[k - 1] + lefts[k]) / 2
            rights[k - 1] = lefts[k] = cut
    edges = _trim_to_ink(np.array([lefts, rights], dtype=np.float64).T, _ink_columns(crop))
    if flipped:  # the crop was read turned by half: measure from the other end
        edges = width - edges[:, ::-1]
    quads = frame.spans_to_page(edges).tolist()
    return tuple(
        Word(reading.text[a:z], float(reading.probs[a:z].mean()), tuple(map(tuple, quad)))  # type: ignore[arg-type]
        for (a, z), quad in zip(spans, quads, strict=True)
    )


def _word_spans(text: str) -> list[tuple[int, int]]:
    """[start, end) of each maximal run of non-space characters."""
    spans = []
    start = None
    for i, char in enumerate(text):
        if char.isspace():
            if start is not None:
                spans.append((start, i))
                start = None
        elif start is None:
            start = i
    if start is not None:
        spans.append((start, len(text)))
    return spans


def _ink_columns(crop: np.ndarray) -> np.ndarray:
    """Per column of the crop: whether it holds ink. Otsu splits ink from background; the ink is
    the smaller class, so light text on a dark band works too."""
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    _threshold, dark = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    ink = dark if 2 * int(dark.sum()) <= dark.size else 1 - dark
    return ink.sum(axis=0) >= max(1, INK_COLUMN_SHARE * gray.shape[0])


def _trim_to_ink(edges: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """Each [left, right) span shrunk to its first and last ink column (and ``INK_PAD``); a span
    without ink stays."""
    trimmed = edges.copy()
    for k, (left, right) in enumerate(edges):
        start = int(left)
        columns = np.flatnonzero(ink[start:int(np.ceil(right))])
        if columns.size:
            first, last = start + columns[0], start + columns[-1] + 1
            trimmed[k] = (max(left, first - INK_PAD), min(right, last + INK_PAD))
    return trimmed
