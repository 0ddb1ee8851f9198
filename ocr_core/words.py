"""Words of a recognised line, placed on the page from the recogniser's CTC alignment.

A word is a maximal run of characters other than spaces. CTC emits each character from a short
run of time steps that falls inside its glyph, right of its centre more often than not, never
across the whole glyph; so a word's extent is grown from the runs of its first and last
characters by a share of the line's character pitch (how far apart its characters are emitted):
``LEFT_REACH`` to the left, ``RIGHT_REACH`` to the right. Two neighbours grown into each other
are cut halfway through their overlap, so words never overlap. The extent, along the crop as the
recogniser read it, goes back to the page through the crop's frame (the perspective warp, the
quarter turn of tall text, and the half turn of an upside-down line).
"""

from __future__ import annotations

import numpy as np

from .layout import CropFrame
from .recognize import Reading
from .result import Word

# Grow a word by these shares of the character pitch beyond the time steps of its first and last
# characters. The first is larger because CTC tends to emit a glyph from its right half. Measured
# on drawn lines (4 fonts; tilted, vertical, upside down) on both runtimes: the last glyph's ink
# covered >= 0.90 at 0.3, >= 0.97 at 0.5, and boxes reached into a neighbour's ink <= 4% either way.
LEFT_REACH = 0.8
RIGHT_REACH = 0.5


def place_words(reading: Reading, frame: CropFrame, flipped: bool) -> tuple[Word, ...]:
    """The words of ``reading`` with their page boxes; ``flipped`` when the crop was turned
    upside down before it was read."""
    spans = _word_spans(reading.text)
    if not spans:
        return ()
    centres = (reading.x0 + reading.x1) / 2
    steps = [np.diff(centres[a:z]) for a, z in spans if z - a > 1]
    inside = np.concatenate(steps) if steps else np.zeros(0)
    # The pitch of the line's characters; a line of one-letter words has none, so its height
    # (about an em) stands in for it.
    pitch = float(np.median(inside)) if inside.size else 0.5 * frame.reading_height
    width = frame.reading_width
    lefts = [max(0.0, float(reading.x0[a]) - LEFT_REACH * pitch) for a, _z in spans]
    rights = [min(float(width), float(reading.x1[z - 1]) + RIGHT_REACH * pitch) for _a, z in spans]
    for k in range(1, len(spans)):
        if rights[k - 1] > lefts[k]:
            cut = (rights[k - 1] + lefts[k]) / 2
            rights[k - 1] = lefts[k] = cut
    edges = np.array([lefts, rights], dtype=np.float64).T
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
