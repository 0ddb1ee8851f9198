"""PDF pages rendered to pixels with PDFium (pypdfium2), one page at a time.

Imported only when a PDF arrives: an image request never pays for pypdfium2 (~25-40 ms).
PDFium is not thread-safe, so every call into it holds one process-wide lock; a page renders
in ~100 ms at 200 dpi while other threads go on with their own OCR. Pages and documents are
closed explicitly under that lock, never by a garbage collector's finaliser on another thread.

Errors say what is wrong with the file, never PDFium's internals: a password-protected file is
``document_encrypted``, anything PDFium cannot parse ``decode_failed``; a page whose rendered
size would pass the pixel limit is refused from its size in points, before it is rendered.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence

import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from .errors import ErrorCode, OcrError
from .image import MAX_SIDE

POINTS_PER_INCH = 72.0

_PDFIUM = threading.Lock()
# Loading errors that mean "encrypted": a password is needed, or the security handler is unknown.
_ENCRYPTED = (pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY)


class PdfPages:
    """An open PDF: its page count, and its pages rendered on demand. Close it when done."""

    format = "PDF"

    def __init__(self, data: bytes, dpi: int, max_pixels: int) -> None:
        self.dpi = dpi
        self._scale = dpi / POINTS_PER_INCH
        self._max_pixels = max_pixels
        with _PDFIUM:
            try:
                self._document = pdfium.PdfDocument(data)
            except pdfium.PdfiumError as exc:
                if exc.err_code in _ENCRYPTED:
                    raise OcrError(
                        ErrorCode.DOCUMENT_ENCRYPTED,
                        "the PDF is encrypted with a password; send it decrypted",
                    ) from None
                raise OcrError(
                    ErrorCode.DECODE_FAILED, "the PDF is damaged or not a PDF: its structure cannot be read"
                ) from None
            self.page_count = len(self._document)
        if self.page_count == 0:
            self.close()
            raise OcrError(ErrorCode.DECODE_FAILED, "the PDF has no pages")

    def close(self) -> None:
        with _PDFIUM:
            self._document.close()

    def render(self, numbers: Sequence[int], max_side: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(page number, BGR pixels) for each page of ``numbers`` (from 1), one at a time: a page's
        pixels are the caller's, and the next page is rendered only when asked for. ``max_side``
        renders a page whose longer side would pass it at a lower resolution (a preview), drawn
        by PDFium at that size rather than scaled down afterwards."""
        for number in numbers:
            yield number, self._render(number, max_side)

    def _render(self, number: int, max_side: int | None) -> np.ndarray:
        with _PDFIUM:
            try:
                page = self._document[number - 1]
            except pdfium.PdfiumError:
                raise OcrError(ErrorCode.DECODE_FAILED, f"page {number} of the PDF cannot be read") from None
            try:
                width_pt, height_pt = page.get_size()
                scale = self._scale
                if max_side is not None and max(width_pt, height_pt) * scale > max_side:
                    scale = (max_side - 0.5) / max(width_pt, height_pt)  # rounded up to max_side
                # The size PDFium will render at (pypdfium2 rounds up), known before rendering.
                width, height = math.ceil(width_pt * scale), math.ceil(height_pt * scale)
                if not (width >= 1 and height >= 1):
                    raise OcrError(ErrorCode.DECODE_FAILED, f"page {number} of the PDF has no area")
                if width > MAX_SIDE or height > MAX_SIDE or width * height > self._max_pixels:
                    raise OcrError(
                        ErrorCode.IMAGE_TOO_LARGE,
                        f"page {number} of the PDF renders at {self.dpi} dpi to {width}×{height} pixels; "
                        f"the limits are {self._max_pixels} pixels and {MAX_SIDE} pixels a side "
                        "(ask for a lower dpi)",
                    )
                bitmap = page.render(scale=scale, fill_color=(255, 255, 255, 255), may_draw_forms=False)
                try:
                    pixels = bitmap.to_numpy()
                    if pixels.ndim != 3 or pixels.shape[2] != 3:
                        raise OcrError(ErrorCode.DECODE_FAILED, f"page {number} of the PDF did not render")
                    bgr = np.array(pixels, dtype=np.uint8, copy=True)  # PDFium's buffer is freed below
                finally:
                    bitmap.close()
            finally:
                page.close()
        return bgr
