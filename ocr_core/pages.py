"""Page sources: which input is a document, which of its pages to read, and their pixels one by one.

A PDF (``ocr_core.pdf``, rendered at the call's dpi) and a TIFF of several frames are documents;
anything else is one image, decoded by ``ocr_core.image``. A document is opened, its pages counted
and the selection checked against the limit before any page is decoded; pages then come one at a
time, so a document costs one page's pixels however many pages it has.
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from PIL import Image

from .errors import ErrorCode, OcrError
from .image import decode_image, sniff_format

# The PDF header may follow up to 1 KiB of junk (PDF 1.7, Annex H.3), as PDFium accepts.
PDF_MAGIC = b"%PDF-"
PDF_HEADER_WINDOW = 1024
# Frames of a TIFF looked at, at most, to count its pages: each costs a parse of its tags.
MAX_TIFF_FRAMES = 10_000
# A selection is a short list of ranges; this bounds what is parsed.
MAX_SELECTION_CHARS = 256
_RANGE = re.compile(r"\s*(\d{1,9})\s*(?:(-)\s*(\d{1,9})?)?\s*")


@dataclass(frozen=True)
class PageSelection:
    """Pages asked for, e.g. ``1-3,7`` or ``5-`` (page 5 to the end); numbered from 1."""

    ranges: tuple[tuple[int, int | None], ...]

    @classmethod
    def parse(cls, spec: str) -> PageSelection:
        """Raises OcrError(bad_request) for anything but comma-separated pages and ranges."""
        if len(spec) > MAX_SELECTION_CHARS:
            raise OcrError(ErrorCode.BAD_REQUEST, f"pages: longer than {MAX_SELECTION_CHARS} characters")
        ranges = []
        for part in spec.split(","):
            match = _RANGE.fullmatch(part)
            if match is None:
                raise OcrError(
                    ErrorCode.BAD_REQUEST,
                    f"pages must be page numbers and ranges such as 1-3,7 or 5- (not {spec!r})",
                )
            first = int(match[1])
            last = None if match[2] and match[3] is None else int(match[3] or first)
            if first < 1 or (last is not None and last < first):
                raise OcrError(ErrorCode.BAD_REQUEST, f"pages: {part.strip()!r} is not a range of pages")
            ranges.append((first, last))
        return cls(tuple(ranges))

    def resolve(self, page_count: int) -> list[int]:
        """The pages selected, in document order, each once; a page past the end is an error."""
        chosen: set[int] = set()
        for first, last in self.ranges:
            end = page_count if last is None else last
            if first > page_count or end > page_count:
                raise OcrError(
                    ErrorCode.BAD_REQUEST,
                    f"pages: page {max(first, end)} is past the end (the document has {page_count} "
                    f"page{'s' * (page_count != 1)})",
                )
            chosen.update(range(first, end + 1))
        return sorted(chosen)


class PageSource(Protocol):
    """An open document: its kind, its page count, and the selected pages' pixels on demand."""

    format: str
    dpi: int | None
    page_count: int

    def render(self, numbers: Sequence[int], max_side: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Each page's pixels, one page at a time; ``max_side`` bounds the longer side (a preview)."""
        ...

    def close(self) -> None: ...


def read_input(name: str, max_bytes: int) -> bytes:
    """A file's bytes, at most max_bytes + 1 (enough for the core to tell it is too large);
    ``-`` is standard input."""
    try:
        if name == "-":
            return sys.stdin.buffer.read(max_bytes + 1)
        with Path(name).open("rb") as f:
            return f.read(max_bytes + 1)
    except OSError as exc:
        raise OcrError(ErrorCode.BAD_REQUEST, f"cannot read {name}: {exc.strerror or exc}") from None


def is_pdf(data: bytes) -> bool:
    return sniff_format(data) is None and PDF_MAGIC in data[:PDF_HEADER_WINDOW]


def tiff_frame_count(data: bytes, limit: int) -> int:
    """Frames of a TIFF, counted up to ``limit + 1``; 1 for anything that is not a TIFF."""
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        return 1
    try:
        with Image.open(io.BytesIO(data), formats=["TIFF"]) as image:
            count = 1
            while count <= limit:
                try:
                    image.seek(count)
                except EOFError:
                    break
                count += 1
    except Exception:  # a TIFF whose frames cannot be walked reads as one image: decoding says why
        return 1
    return count


class TiffPages:
    """The frames of a multi-page TIFF, each decoded by ``decode_image`` (limits and all)."""

    format = "TIFF"
    dpi = None

    def __init__(self, data: bytes, page_count: int, max_bytes: int, max_pixels: int) -> None:
        self._data = data
        self.page_count = page_count
        self._limits = {"max_bytes": max_bytes, "max_pixels": max_pixels}

    def render(self, numbers: Sequence[int], max_side: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        # Nothing here keeps a page once it is yielded: the next one is decoded while only the
        # caller could hold the last (a local would keep two pages' pixels at once).
        for number in numbers:
            yield number, self._decode(number, max_side)

    def _decode(self, number: int, max_side: int | None) -> np.ndarray:
        try:
            bgr = decode_image(self._data, frame=number - 1, **self._limits).bgr
        except OcrError as exc:
            raise OcrError(exc.code, f"page {number} of the TIFF: {exc.message}") from None
        return bgr if max_side is None else fit(bgr, max_side)

    def close(self) -> None:
        pass


def fit(bgr: np.ndarray, max_side: int) -> np.ndarray:
    """``bgr`` scaled down (area-averaged, as a reader's eye does) so its longer side is at most
    ``max_side``; unchanged when it already is."""
    height, width = bgr.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return bgr
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)


def open_document(data: bytes, *, dpi: int, max_bytes: int, max_pixels: int) -> PageSource | None:
    """The document ``data`` holds, opened; None when it is a single image."""
    if len(data) > max_bytes:
        raise OcrError(ErrorCode.PAYLOAD_TOO_LARGE,
                       f"the input is {len(data)} bytes; the limit is {max_bytes} bytes")
    if is_pdf(data):
        from .pdf import PdfPages

        return PdfPages(data, dpi, max_pixels)
    frames = tiff_frame_count(data, MAX_TIFF_FRAMES)
    if frames > MAX_TIFF_FRAMES:
        raise OcrError(ErrorCode.TOO_MANY_PAGES, f"the TIFF has more than {MAX_TIFF_FRAMES} frames")
    if frames > 1:
        return TiffPages(data, frames, max_bytes, max_pixels)
    return None


def select_pages(source: PageSource, selection: PageSelection | None, max_pages: int) -> list[int]:
    """The page numbers to read; too_many_pages when they are more than ``max_pages``."""
    numbers = selection.resolve(source.page_count) if selection else list(range(1, source.page_count + 1))
    if len(numbers) > max_pages:
        asked = "selected" if selection else "in the document"
        raise OcrError(
            ErrorCode.TOO_MANY_PAGES,
            f"{len(numbers)} pages {asked}; the limit is {max_pages} a request (select fewer with pages=)",
        )
    return numbers
