"""Decode image bytes in memory into an 8-bit BGR array, refusing hostile input before it costs.

Order of checks: byte count, magic bytes (the declared type and filename are never trusted),
the headers (dimensions, and what decoding them will cost: a decompression bomb is refused before
a single pixel is decoded), then a strict decode: data that is damaged or ends early is an error,
never an image padded with grey. Nothing touches the filesystem, and nothing reaches stderr.

Memory: decoding holds the decoder's own buffer plus the 3 bytes a pixel of the result (see
``ocr_core.pixels``), at most ``BYTES_PER_PIXEL`` together for every common kind of file. The few
kinds whose decoder needs more (a progressive JPEG without chroma subsampling keeps 6 bytes a pixel
of DCT coefficients while it writes the 3-byte result) are held to the same total: their
cost, computed from the headers, may not pass ``BYTES_PER_PIXEL × max_pixels``.

Decoders: JPEG by libjpeg-turbo through simplejpeg (``ocr_core.jpeg``), WebP by libwebp
(``ocr_core.webp_decode``), PNG, BMP and TIFF by Pillow.
"""

from __future__ import annotations

import functools
import io
import logging
import re
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile

from . import jpeg, pixels, webp_decode
from .errors import ErrorCode, OcrError

# A side longer than this is refused whatever the pixel count: a 100000×1 strip holds no text a
# recogniser can read, and such shapes exist to make resizing code allocate absurd buffers.
MAX_SIDE = 32768
# Decoding may cost this many bytes per pixel of the pixel limit (320 MB at 40 Mpx).
BYTES_PER_PIXEL = 8

ImageFile.LOAD_TRUNCATED_IMAGES = False
# Pillow reports damaged files through warnings.warn and its loggers as well as its exceptions;
# unconfigured, both print on stderr: a web server's error log, a C host's terminal. The decode's
# result or error is the answer, so neither goes anywhere. (Set once at import: a filter or a
# logger is process-wide, and warnings.catch_warnings is not thread-safe.)
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
logging.getLogger("PIL").addHandler(logging.NullHandler())
logging.getLogger("PIL").propagate = False

# (format, magic test) in the order they are tried.
_SIGNATURES: tuple[tuple[str, bytes, int], ...] = (
    ("JPEG", b"\xff\xd8\xff", 0),
    ("PNG", b"\x89PNG\r\n\x1a\n", 0),
    ("BMP", b"BM", 0),
    ("TIFF", b"II*\x00", 0),
    ("TIFF", b"MM\x00*", 0),
    ("WEBP", b"WEBP", 8),
)
# TIFF tags that size libtiff's strip or tile buffer.
_BITS_PER_SAMPLE, _SAMPLES_PER_PIXEL, _ROWS_PER_STRIP, _TILE_WIDTH, _TILE_LENGTH = 258, 277, 278, 322, 323
# Object reprs in exception texts carry memory addresses, which a client must never see.
_REPR = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")


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


@functools.cache
def _silence_libtiff() -> None:
    """libtiff prints its errors on file descriptor 2, from C; Pillow turns them into exceptions
    already, and silences libtiff's warnings the same way (a NULL handler) on every decode.

    The handlers are global to the libtiff that Pillow links (the wheel's private copy), the only
    way to keep a damaged TIFF out of a server's error log without redirecting fd 2, which would
    swallow other threads' output in a host process.
    """
    import ctypes

    from PIL import _imaging

    # dlsym on Pillow's extension searches it and its dependencies: Pillow's own libtiff.
    library = ctypes.CDLL(_imaging.__file__)
    for name in ("TIFFSetErrorHandler", "TIFFSetWarningHandler"):
        setter = getattr(library, name, None)  # absent when Pillow was built without libtiff
        if setter is not None:
            setter.argtypes = [ctypes.c_void_p]
            setter.restype = ctypes.c_void_p
            setter(None)


def load_decoders() -> None:
    """Import Pillow's plugins and quiet libtiff now; otherwise the first decode does."""
    Image.preinit()
    from PIL import TiffImagePlugin  # noqa: F401  (not one of preinit's)

    _silence_libtiff()


def _exif_orientation(exif: bytes | Image.Exif | None) -> int:
    """EXIF orientation 1..8 (1 when absent or unreadable: damaged metadata is not worth a refusal)."""
    try:
        if isinstance(exif, bytes):
            parsed = Image.Exif()
            parsed.load(exif)
            exif = parsed
        value = exif.get(0x0112, 1) if exif is not None else 1
    except Exception:  # any damage in the metadata: the pixels are still good
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _check_size(fmt: str, width: int, height: int, cost: int, max_pixels: int) -> None:
    """Refuse from the headers: a bad size, too many pixels, or a decode that costs too much memory."""
    if width <= 0 or height <= 0:
        raise OcrError(ErrorCode.DECODE_FAILED, f"the image header gives a size of {width}×{height}")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > max_pixels:
        raise OcrError(
            ErrorCode.IMAGE_TOO_LARGE,
            f"the image is {width}×{height} pixels; the limits are {max_pixels} pixels "
            f"and {MAX_SIDE} pixels a side",
        )
    budget = BYTES_PER_PIXEL * max_pixels
    if cost > budget:
        raise OcrError(
            ErrorCode.IMAGE_TOO_LARGE,
            f"decoding this {width}×{height} {fmt} needs about {cost >> 20} MB, more than the limit of "
            f"{budget >> 20} MB ({BYTES_PER_PIXEL} bytes a pixel of the {max_pixels}-pixel limit); "
            f"send it smaller{' or as a baseline JPEG' if fmt == 'JPEG' else ''}",
        )


def _decode_jpeg(data: bytes, max_pixels: int) -> np.ndarray:
    layout = jpeg.read_layout(data)
    width, height, n = layout.width, layout.height, layout.width * layout.height
    orientation = _exif_orientation(layout.exif)
    cmyk = len(layout.sampling) == 4
    stored = (4 if cmyk else 3) * n
    coefficients = layout.coefficient_bytes() if layout.whole_coefficients else 0
    # The decoder's peak, then converting (CMYK) or turning (EXIF) into a second array.
    cost = max(coefficients + stored, stored + 3 * n if cmyk or orientation != 1 else 0)
    _check_size("JPEG", width, height, cost, max_pixels)
    decoded = jpeg.decode(data, layout)
    if decoded.shape[:2] != (height, width):
        raise OcrError(ErrorCode.DECODE_FAILED, "the JPEG decodes to another size than its header gives")
    if cmyk:
        def rows(y0: int, y1: int) -> np.ndarray:
            strip = Image.frombytes("CMYK", (width, y1 - y0), decoded[y0:y1].tobytes(), "raw", "CMYK;I")
            return np.asarray(strip.convert("RGB"))[:, :, ::-1]

        return pixels.fill(height, width, orientation, rows)
    if orientation == 1:
        return decoded
    return pixels.fill(height, width, orientation, lambda y0, y1: decoded[y0:y1])


def _decode_webp(data: bytes, max_pixels: int) -> np.ndarray:
    layout = webp_decode.read_layout(data)
    width, height = layout.width, layout.height
    orientation = _exif_orientation(layout.exif)
    stored = (4 if layout.alpha or layout.animated else 3) * width * height
    turned = layout.alpha or layout.animated or orientation != 1
    _check_size("WebP", width, height, max(layout.decode_bytes(), stored + 3 * width * height * turned),
                max_pixels)
    decoded = webp_decode.decode(data, layout)
    if decoded.shape[2] == 4:
        return pixels.from_bgra(height, width, orientation, lambda y0, y1: decoded[y0:y1])
    if orientation == 1:
        return decoded
    return pixels.fill(height, width, orientation, lambda y0, y1: decoded[y0:y1])


def _tiff_buffer_bytes(image: Image.Image) -> int:
    """libtiff's strip or tile buffer for a compressed TIFF (Pillow decodes raw ones in place)."""
    if not image.tile or image.tile[0].codec_name != "libtiff":
        return 0
    tags = image.tag_v2
    bits = tags.get(_BITS_PER_SAMPLE, 8)
    bits = max(bits) if isinstance(bits, tuple) else bits
    bytes_per_pixel = max(4, -(-int(bits) * int(tags.get(_SAMPLES_PER_PIXEL, 1)) // 8))
    if _TILE_WIDTH in tags:
        return int(tags[_TILE_WIDTH]) * int(tags.get(_TILE_LENGTH, 1)) * bytes_per_pixel
    rows = min(int(tags.get(_ROWS_PER_STRIP, image.height)), image.height)
    return rows * image.width * bytes_per_pixel


def _decode_with_pillow(data: bytes, fmt: str, max_pixels: int, frame: int = 0) -> np.ndarray:
    if fmt == "TIFF":
        _silence_libtiff()
    with Image.open(io.BytesIO(data), formats=[fmt]) as image:
        if frame:
            image.seek(frame)  # a page of a multi-page TIFF (ocr_core.pages)
        width, height = image.size
        held = pixels.pillow_bytes(image)
        cost = held + max(3 * width * height, _tiff_buffer_bytes(image) if fmt == "TIFF" else 0)
        _check_size(fmt, width, height, cost, max_pixels)
        image.load()
        return pixels.from_pillow(image, _exif_orientation(image.getexif()))


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
        if fmt == "JPEG":
            bgr = _decode_jpeg(data, max_pixels)
        elif fmt == "WEBP":
            bgr = _decode_webp(data, max_pixels)
        else:
            bgr = _decode_with_pillow(data, fmt, max_pixels, frame)
    except OcrError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own cap, checked as it opens the file
        claimed = re.search(r"\((\d+) pixels\)", str(exc))
        raise OcrError(
            ErrorCode.IMAGE_TOO_LARGE,
            f"the image has {claimed[1] if claimed else 'too many'} pixels (from its header); the limits are "
            f"{max_pixels} pixels and {MAX_SIDE} pixels a side",
        ) from None
    except Exception as exc:  # every decoder failure, whatever its type, is a damaged file
        detail = _REPR.sub("the data", str(exc)) or type(exc).__name__
        raise OcrError(ErrorCode.DECODE_FAILED, f"the {fmt} image cannot be decoded: {detail}") from None
    return DecodedImage(bgr=bgr, format=fmt)
