"""Previews of a document's pages: each page read, as a small JPEG to show its boxes over.

A browser can show an image it was given, but not a PDF page or a TIFF frame. A caller that wants
to draw a document's boxes asks for previews: the pages are rendered again (a PDF by PDFium at
the preview's own size, which costs less than the full-resolution render the OCR needed), scaled
so the longer side is at most ``MAX_SIDE`` and encoded as JPEG under ``MAX_JPEG_BYTES`` each.
A page's boxes stay in the page's own pixels (``Page.width``/``height``); a preview has the
page's proportions, so a box maps onto it by ``preview.width / page.width``.

The byte bound is what makes previews safe to put in a response: at most ``MAX_JPEG_BYTES`` a
page (a scanned A4 page is ~100-250 KB at 1600 px), so a document at the page limit of 50 costs
at most 50 × 320 KiB = 16 MiB of JPEG, 21 MiB as base64.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import numpy as np
import simplejpeg

from .deadline import Deadline
from .pages import fit, open_document

MAX_SIDE = 1600
MAX_JPEG_BYTES = 320 * 1024
# Tried in turn until the JPEG fits; then the picture is halved and tried again. Text stays
# legible at 60; below 40 blocks show, so a page that will not fit is made smaller instead.
QUALITIES = (80, 60, 40)
MIN_SIDE = 64  # a picture this small fits any byte bound above a few KB; halving stops here


@dataclass(frozen=True)
class PagePreview:
    """One page's preview: its number in the document (from 1), its size in pixels, JPEG bytes."""

    number: int
    width: int
    height: int
    jpeg: bytes

    def to_dict(self) -> dict[str, Any]:
        """The preview as a ``data:`` URL, which an ``<img>`` shows as it is."""
        return {
            "width": self.width,
            "height": self.height,
            "url": "data:image/jpeg;base64," + base64.b64encode(self.jpeg).decode("ascii"),
        }


def encode_preview(bgr: np.ndarray, max_side: int = MAX_SIDE,
                   max_bytes: int = MAX_JPEG_BYTES) -> tuple[np.ndarray, bytes]:
    """``bgr`` fitted within ``max_side`` and encoded as a JPEG of at most ``max_bytes`` (lower
    quality first, then half the size, down to ``MIN_SIDE``); returns (pixels encoded, JPEG)."""
    picture = fit(bgr, max_side)
    while True:
        for quality in QUALITIES:
            jpeg = simplejpeg.encode_jpeg(picture, quality=quality, colorspace="BGR", colorsubsampling="420")
            if len(jpeg) <= max_bytes:
                return picture, jpeg
        if max(picture.shape[:2]) <= MIN_SIDE:
            return picture, jpeg
        picture = fit(picture, max(picture.shape[:2]) // 2)


def page_previews(data: bytes, numbers: Sequence[int], *, dpi: int, max_bytes: int, max_pixels: int,
                  deadline: Deadline) -> Iterator[PagePreview]:
    """A preview of each page ``numbers`` names in the document ``data`` (read before with the same
    ``dpi`` and limits, so it opens and its pages exist), one page at a time. Nothing for a single
    image: its caller has it already. Stops with OcrError(timeout) at ``deadline``."""
    source = open_document(data, dpi=dpi, max_bytes=max_bytes, max_pixels=max_pixels)
    if source is None:
        return
    with closing(source):
        for number, bgr in source.render(numbers, MAX_SIDE):
            picture, jpeg = encode_preview(bgr)
            del bgr
            deadline.check(f"the preview of page {number}")
            yield PagePreview(number, picture.shape[1], picture.shape[0], jpeg)
