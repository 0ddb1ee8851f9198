"""The largest image each accepted format may be, and the small page every peak is compared with.

"Largest allowed" is the pixel limit (``EngineConfig.max_pixels``, 40 Mpx by default) as a square,
in a file under the byte limit: most are tiny files of one colour (the decompression bombs of
``tests/crafted.py``, grown to the limit), one is a page of large text (real crops for the
recogniser), and a PDF page is rendered at the dpi that fills the limit. A progressive JPEG without
chroma subsampling costs 9 bytes a pixel to decode, so the decoder refuses it past 8/9 of the limit
(``ocr_core.image``): its largest allowed size is that.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from ocr_core.image import BYTES_PER_PIXEL
from tests import crafted
from tests.support import FONT

# A PDF page of this many inches a side is rendered at the dpi that gives the pixel limit.
PDF_PAGE_INCHES = 10


@dataclass(frozen=True)
class Input:
    """One input: ``pixels`` once decoded (a document's largest page), sent with ``dpi`` if set."""

    name: str
    label: str
    data: bytes
    pixels: int
    dpi: int | None = None


def square_side(max_pixels: int, bytes_per_pixel: int = BYTES_PER_PIXEL) -> int:
    """The side of the largest square whose decoding costs at most ``BYTES_PER_PIXEL × max_pixels``."""
    return math.isqrt(max_pixels * BYTES_PER_PIXEL // bytes_per_pixel)


def _save(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def _pdf_page(inches: int) -> bytes:
    """One PDF page ``inches`` square holding a small scan of a few text lines."""
    side = 100 * inches
    image = Image.new("L", (side, side), 255)
    font = ImageFont.truetype(str(FONT), side // 30)
    draw = ImageDraw.Draw(image)
    for i in range(6):
        draw.text((side // 20, side // 20 + i * side // 8), f"Page line {i}: 12.50 EUR", font=font, fill=0)
    return _save(image, "PDF", resolution=100.0)


def _blank(side: int, mode: str = "RGB", colour: str | tuple[int, ...] = "white") -> Image.Image:
    return Image.new(mode, (side, side), colour)


def two_page_tiff(side: int) -> bytes:
    """A document of two side² pages: each within the limit, never both held at once."""
    return _save(_blank(side), "TIFF", compression="tiff_adobe_deflate", save_all=True,
                 append_images=[_blank(side, colour="black")])


# name -> (label, builder of the file from the side); each built only when asked for.
_BUILDERS: dict[str, tuple[str, Callable[[int], bytes]]] = {
    "png_rgba16": ("PNG 16-bit RGBA", lambda s: crafted.png_rgba16(s, s)),
    "png_rgba8": ("PNG 8-bit RGBA", lambda s: _save(_blank(s, "RGBA", (0, 0, 0, 0)), "PNG")),
    "png_text_page": ("PNG grey, a page of text", crafted.text_page),
    "jpeg_baseline": ("JPEG baseline 4:2:0", lambda s: _save(_blank(s), "JPEG", quality=50)),
    "jpeg_progressive": ("JPEG progressive 4:2:0",
                         lambda s: _save(_blank(s), "JPEG", quality=50, progressive=True)),
    "jpeg_100_scans": ("JPEG grey, 100 scans (the most allowed)",
                       lambda s: crafted.progressive_jpeg(s, s, 100)),
    "webp_lossy": ("WebP lossy", lambda s: _save(_blank(s), "WEBP", quality=50)),
    "webp_lossless": ("WebP lossless", crafted.BOMBS["webp_lossless"]),
    "webp_lossless_alpha": ("WebP lossless with alpha", crafted.BOMBS["webp_lossless_alpha"]),
    "webp_animated": ("WebP animated, 2 frames", crafted.BOMBS["webp_animated"]),
    "tiff_deflate_one_strip": ("TIFF deflate, one strip", crafted.BOMBS["tiff_deflate_one_strip"]),
    "tiff_two_pages": ("TIFF, 2 pages (a document)", two_page_tiff),
    "bmp_rle8": ("BMP 8-bit RLE", crafted.BOMBS["bmp_rle8"]),
}
NAMES = (*_BUILDERS, "jpeg_progressive_444", "pdf_page")


def largest_allowed(max_pixels: int, names: Iterable[str] = NAMES) -> list[Input]:
    """The named images (default: one per accepted format and decoder path) at the largest size the
    limits allow, built in this order."""
    side = square_side(max_pixels)
    images = []
    for name in names:
        if name in _BUILDERS:
            label, build = _BUILDERS[name]
            images.append(Input(name, label, build(side), side * side))
        elif name == "jpeg_progressive_444":
            # Its blocks are padded to whole 8×8 MCUs: a multiple of 8 costs exactly 9 B/px.
            s = square_side(max_pixels, crafted.BYTES_PER_PIXEL_EXCEPTIONS[name]) // 8 * 8
            images.append(Input(name, f"JPEG progressive 4:4:4 ({s}², 8/9 of the limit)",
                                 crafted.BOMBS[name](s), s * s))
        elif name == "pdf_page":
            dpi = math.isqrt(max_pixels) // PDF_PAGE_INCHES
            images.append(Input(name, f"PDF page, {PDF_PAGE_INCHES} in at {dpi} dpi",
                                 _pdf_page(PDF_PAGE_INCHES), (dpi * PDF_PAGE_INCHES) ** 2, dpi=dpi))
        else:
            raise ValueError(f"unknown image {name!r}; known: {', '.join(NAMES)}")
    return images


def reference_page() -> Input:
    """What "idle" means: the same process reading a small page that fills the detector's input
    (ONNX Runtime's arena and the models' working memory are the same for any page)."""
    return Input("reference", "reference: 1200² page of text", crafted.text_page(1200), 1200 * 1200)
