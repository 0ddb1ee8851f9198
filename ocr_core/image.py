"""Decode image bytes in memory into an 8-bit BGR array, refusing hostile input before it costs.

Order of checks: byte count, magic bytes (the declared type and filename are never trusted),
header dimensions (a decompression bomb is refused before a single pixel is decoded), then the
decode itself. Nothing touches the filesystem.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps

from .errors import ErrorCode, OcrError

# A side longer than this is refused whatever the pixel count: a 100000×1 strip holds no text a
# recogniser can read, and such shapes exist to make resizing code allocate absurd buffers.
MAX_SIDE = 32768

ImageFile.LOAD_TRUNCATED_IMAGES = False

# (format, magic test) in the order they are tried.
_SIGNATURES: tuple[tuple[str, bytes, int], ...] = (
    ("JPEG", b"\xff\xd8\xff", 0),
    ("PNG", b"\x89PNG\r\n\x1a\n", 0),
    ("BMP", b"BM", 0),
    ("TIFF", b"II*\x00", 0),
    ("TIFF", b"MM\x00*", 0),
    ("WEBP", b"WEBP", 8),
)


@dataclass(frozen=True)
class DecodedImage:
    """Pixels as contiguous uint8 BGR (H×W×3), the layout OpenCV and PP-OCR models use."""

    bgr: np.ndarray
    format: str

    @property
    def width(self) -> int:
        return int(self.bgr.shape[1])

    @property
    def height(self) -> int:
        return int(self.bgr.shape[0])


def sniff_format(data: bytes) -> str | None:
    """The image format named by the magic bytes, or None."""
    for name, magic, offset in _SIGNATURES:
        if data[offset:offset + len(magic)] == magic and (name != "WEBP" or data[:4] == b"RIFF"):
            return name
    return None


def load_decoders() -> None:
    """Import PIL's BMP, GIF, JPEG, PPM and PNG plugins now; otherwise the first decode does it."""
    Image.preinit()


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any mode PIL decodes (gray, 16-bit, palette, RGBA, CMYK...) to 8-bit RGB.

    Transparency is composited over white: screenshots are often black text on a transparent
    background, which becomes black on black if the alpha channel is simply dropped.
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.uint32)
        shift = 8 if array.max(initial=0) > 255 else 0
        image = Image.fromarray((array >> shift).clip(0, 255).astype(np.uint8), "L")
    elif image.mode == "F":
        array = np.asarray(image, dtype=np.float32)
        image = Image.fromarray(np.nan_to_num(array).clip(0, 255).astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB") if image.mode != "RGB" else image


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int, frame: int = 0) -> DecodedImage:
    """Decode ``data`` (JPEG, PNG, BMP, TIFF or WebP) with EXIF orientation applied; ``frame``
    picks a page of a multi-page TIFF (``ocr_core.pages``).

    Raises OcrError: bad_request (empty), payload_too_large, unsupported_media_type,
    image_too_large, decode_failed.
    """
    if not data:
        raise OcrError(ErrorCode.BAD_REQUEST, "the image is empty (0 bytes)")
    if len(data) > max_bytes:
        raise OcrError(
            ErrorCode.PAYLOAD_TOO_LARGE, f"the image is {len(data)} bytes; the limit is {max_bytes} bytes"
        )
    fmt = sniff_format(data)
    if fmt is None:
        raise OcrError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            "the data is not a JPEG, PNG, BMP, TIFF or WebP image (checked by its first bytes)",
        )
    try:
        with warnings.catch_warnings():
            # PIL's own bomb warning is superseded by the explicit limit below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[fmt])
            if frame:
                image.seek(frame)
            width, height = image.size
            if width <= 0 or height <= 0:
                raise OcrError(ErrorCode.DECODE_FAILED, f"the image header gives a size of {width}×{height}")
            if width > MAX_SIDE or height > MAX_SIDE or width * height > max_pixels:
                raise OcrError(
                    ErrorCode.IMAGE_TOO_LARGE,
                    f"the image is {width}×{height} pixels; the limits are {max_pixels} pixels "
                    f"and {MAX_SIDE} pixels a side",
                )
            image.load()
            image = ImageOps.exif_transpose(image) or image
            rgb = _to_rgb(image)
    except OcrError:
        raise
    except Image.DecompressionBombError as exc:
        raise OcrError(ErrorCode.IMAGE_TOO_LARGE, f"the image is too large to decode: {exc}") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise OcrError(ErrorCode.DECODE_FAILED, f"the {fmt} image cannot be decoded: {exc}") from None
    array = np.asarray(rgb, dtype=np.uint8)
    bgr = np.ascontiguousarray(array[:, :, ::-1])
    return DecodedImage(bgr=bgr, format=fmt)
