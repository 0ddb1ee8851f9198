"""WebP through libwebp (the ``webp`` package's bindings), decoded straight into a numpy array.

Pillow reads every WebP through libwebp's animation decoder and copies its canvas twice (12 bytes
a pixel before any conversion). Here ``WebPDecode`` writes into an array of ours: 3 bytes a pixel,
4 with alpha, plus libwebp's own 4-byte ARGB buffer while a lossless bitstream decodes. An
animation is read as its first frame, as a still viewer shows it: the frame's own bitstream (its
ANMF chunk) decoded into its rectangle of a transparent canvas, which is what libwebp's
animation decoder does for frame 1, without that decoder's second canvas (8 bytes a pixel, and 11
once converted: over the 8-byte bound of ``ocr_core.image``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from webp._webp import ffi, lib

from .errors import ErrorCode, OcrError

_LOSSLESS = 2  # WebPBitstreamFeatures.format
_ANMF_HEADER = 16  # frame x/2, y/2, width-1, height-1, duration (24 bits each), flags


@dataclass(frozen=True)
class Frame:
    """An animation frame: its rectangle on the canvas and where its bitstream lies in the file."""

    x: int
    y: int
    width: int
    height: int
    start: int
    end: int


@dataclass(frozen=True)
class WebPLayout:
    width: int
    height: int
    alpha: bool
    animated: bool
    lossless: bool
    exif: bytes | None
    first_frame: Frame | None  # animations only

    def decode_bytes(self) -> int:
        """Peak memory of ``decode``, before any conversion of ours."""
        pixels = self.width * self.height
        if self.animated:  # the BGRA canvas, and the frame's decoder at most 4 bytes a pixel
            return 8 * pixels
        output = (4 if self.alpha else 3) * pixels
        return output + (4 * pixels if self.lossless else pixels if self.alpha else 0)


def _failed(message: str) -> OcrError:
    return OcrError(ErrorCode.DECODE_FAILED, message)


def _chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """The top-level RIFF chunks: (fourcc, payload start, payload end), the end clipped to the data."""
    found = []
    pos = 12
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4:pos + 8], "little")
        found.append((data[pos:pos + 4], pos + 8, min(len(data), pos + 8 + size)))
        pos += 8 + size + (size & 1)
    return found


def _first_frame(data: bytes, chunks: list[tuple[bytes, int, int]], width: int, height: int) -> Frame:
    anmf = next(((start, end) for fourcc, start, end in chunks if fourcc == b"ANMF"), None)
    if anmf is None or anmf[1] - anmf[0] <= _ANMF_HEADER:
        raise _failed("the animated WebP has no frame: the file is damaged or truncated")
    start, end = anmf

    def field(index: int) -> int:
        return int.from_bytes(data[start + 3 * index:start + 3 * index + 3], "little")

    frame = Frame(2 * field(0), 2 * field(1), field(2) + 1, field(3) + 1, start + _ANMF_HEADER, end)
    if frame.x + frame.width > width or frame.y + frame.height > height:
        raise _failed(f"the animated WebP's first frame ({frame.width}×{frame.height} at "
                      f"{frame.x},{frame.y}) lies outside its {width}×{height} canvas: the file is damaged")
    return frame


def _features(data: bytes | memoryview) -> object:
    features = ffi.new("WebPBitstreamFeatures*")
    status = lib.WebPGetFeatures(ffi.from_buffer("uint8_t[]", data), len(data), features)
    if status != lib.VP8_STATUS_OK:
        raise _failed(f"the WebP headers cannot be read (libwebp status {status})")
    return features


def read_layout(data: bytes) -> WebPLayout:
    """The bitstream's features, read from its headers. Raises OcrError(decode_failed)."""
    features = _features(data)
    chunks = _chunks(data)
    width, height, animated = features.width, features.height, bool(features.has_animation)
    exif = next((data[start:end] for fourcc, start, end in chunks if fourcc == b"EXIF"), None)
    return WebPLayout(
        width=width,
        height=height,
        alpha=bool(features.has_alpha),
        animated=animated,
        lossless=features.format == _LOSSLESS,
        exif=exif,
        first_frame=_first_frame(data, chunks, width, height) if animated else None,
    )


def _decode_into(bitstream: bytes | memoryview, target: np.ndarray) -> None:
    """Decode a still bitstream into ``target`` (H×W×3 BGR or H×W×4 BGRA, rows may be a view's)."""
    height, width, channels = target.shape
    features = _features(bitstream)
    if (features.width, features.height) != (width, height):
        raise _failed(f"the WebP bitstream is {features.width}×{features.height}, its frame "
                      f"{width}×{height}: the file is damaged")
    config = ffi.new("WebPDecoderConfig*")
    if not lib.WebPInitDecoderConfig(config):
        raise OcrError(ErrorCode.INTERNAL, "libwebp: decoder version mismatch")
    config.output.colorspace = lib.MODE_BGRA if channels == 4 else lib.MODE_BGR
    config.output.is_external_memory = 1
    stride = target.strides[0]
    # From the view's first pixel to its last, rows of a wider canvas in between; the caller
    # holds the array while libwebp writes.
    config.output.u.RGBA.rgba = ffi.cast("uint8_t *", target.ctypes.data)
    config.output.u.RGBA.size = stride * (height - 1) + width * channels
    config.output.u.RGBA.stride = stride
    status = lib.WebPDecode(ffi.from_buffer("uint8_t[]", bitstream), len(bitstream), config)
    lib.WebPFreeDecBuffer(ffi.addressof(config, "output"))
    if status != lib.VP8_STATUS_OK:
        raise _failed(f"the WebP data cannot be decoded (libwebp status {status}): "
                      "the file is damaged or truncated")


def decode(data: bytes, layout: WebPLayout) -> np.ndarray:
    """The picture as stored: H×W×3 BGR, or H×W×4 BGRA when it has alpha or is an animation
    (whose canvas is transparent around its first frame)."""
    frame = layout.first_frame
    if frame is None:
        pixels = np.empty((layout.height, layout.width, 4 if layout.alpha else 3), dtype=np.uint8)
        _decode_into(data, pixels)
        return pixels
    canvas = np.zeros((layout.height, layout.width, 4), dtype=np.uint8)
    region = canvas[frame.y:frame.y + frame.height, frame.x:frame.x + frame.width]
    _decode_into(memoryview(data)[frame.start:frame.end], region)
    return canvas
