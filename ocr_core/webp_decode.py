"""WebP through libwebp (the ``webp`` package's bindings), decoded straight into a numpy array.

Pillow reads every WebP through libwebp's animation decoder and copies its canvas twice (12 bytes
a pixel before any conversion). Here a still picture is decoded by ``WebPDecode`` into an array
of ours: 3 bytes a pixel, 4 with alpha, plus libwebp's own 4-byte ARGB buffer while a lossless
bitstream decodes. Only an animation's first frame needs the animation decoder, whose two canvases
cost 8 bytes a pixel.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from webp._webp import ffi, lib

from .errors import ErrorCode, OcrError

_LOSSLESS = 2  # WebPBitstreamFeatures.format


@dataclass(frozen=True)
class WebPLayout:
    width: int
    height: int
    alpha: bool
    animated: bool
    lossless: bool
    exif: bytes | None

    def decode_bytes(self) -> int:
        """Peak memory of ``decode`` or ``first_frame``, before any conversion of ours."""
        pixels = self.width * self.height
        if self.animated:
            return 8 * pixels
        output = (4 if self.alpha else 3) * pixels
        return output + (4 * pixels if self.lossless else pixels if self.alpha else 0)


def _riff_chunk(data: bytes, fourcc: bytes) -> bytes | None:
    pos = 12
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4:pos + 8], "little")
        if data[pos:pos + 4] == fourcc:
            return data[pos + 8:pos + 8 + size]
        pos += 8 + size + (size & 1)
    return None


def read_layout(data: bytes) -> WebPLayout:
    """The bitstream's features, read from its headers. Raises OcrError(decode_failed)."""
    features = ffi.new("WebPBitstreamFeatures*")
    status = lib.WebPGetFeatures(ffi.from_buffer("uint8_t[]", data), len(data), features)
    if status != lib.VP8_STATUS_OK:
        raise OcrError(ErrorCode.DECODE_FAILED, f"the WebP headers cannot be read (libwebp status {status})")
    return WebPLayout(
        width=features.width,
        height=features.height,
        alpha=bool(features.has_alpha),
        animated=bool(features.has_animation),
        lossless=features.format == _LOSSLESS,
        exif=_riff_chunk(data, b"EXIF"),
    )


def decode(data: bytes, layout: WebPLayout) -> np.ndarray:
    """A still picture as stored: H×W×3 BGR, or H×W×4 BGRA when it has alpha."""
    channels = 4 if layout.alpha else 3
    pixels = np.empty((layout.height, layout.width, channels), dtype=np.uint8)
    config = ffi.new("WebPDecoderConfig*")
    if not lib.WebPInitDecoderConfig(config):
        raise OcrError(ErrorCode.INTERNAL, "libwebp: decoder version mismatch")
    config.output.colorspace = lib.MODE_BGRA if layout.alpha else lib.MODE_BGR
    config.output.is_external_memory = 1
    output = ffi.from_buffer("uint8_t[]", pixels, require_writable=True)
    config.output.u.RGBA.rgba = output
    config.output.u.RGBA.size = pixels.size
    config.output.u.RGBA.stride = layout.width * channels
    status = lib.WebPDecode(ffi.from_buffer("uint8_t[]", data), len(data), config)
    lib.WebPFreeDecBuffer(ffi.addressof(config, "output"))
    if status != lib.VP8_STATUS_OK:
        raise OcrError(ErrorCode.DECODE_FAILED, f"the WebP data cannot be decoded (libwebp status {status}): "
                       "the file is damaged or truncated")
    return pixels


@contextlib.contextmanager
def first_frame(data: bytes, layout: WebPLayout) -> Iterator[np.ndarray]:
    """An animation's first frame, H×W×4 BGRA, valid inside the ``with`` block only (it is
    libwebp's canvas, freed on exit)."""
    source = ffi.from_buffer("uint8_t[]", data)
    webp_data = ffi.new("WebPData*")
    webp_data.bytes = source
    webp_data.size = len(data)
    options = ffi.new("WebPAnimDecoderOptions*")
    if not lib.WebPAnimDecoderOptionsInit(options):
        raise OcrError(ErrorCode.INTERNAL, "libwebp: animation decoder version mismatch")
    options.color_mode = lib.MODE_BGRA
    options.use_threads = 0
    decoder = lib.WebPAnimDecoderNew(webp_data, options)
    if decoder == ffi.NULL:
        raise OcrError(ErrorCode.DECODE_FAILED, "the animated WebP cannot be decoded: the file is damaged")
    try:
        info = ffi.new("WebPAnimInfo*")
        if not lib.WebPAnimDecoderGetInfo(decoder, info) or \
                (info.canvas_width, info.canvas_height) != (layout.width, layout.height):
            raise OcrError(ErrorCode.DECODE_FAILED, "the animated WebP's canvas size is inconsistent")
        canvas = ffi.new("uint8_t**")
        timestamp = ffi.new("int*")
        if not lib.WebPAnimDecoderGetNext(decoder, canvas, timestamp):
            raise OcrError(ErrorCode.DECODE_FAILED,
                           "the animated WebP's first frame cannot be decoded: the file is damaged")
        shape = (layout.height, layout.width, 4)
        yield np.frombuffer(ffi.buffer(canvas[0], shape[0] * shape[1] * 4), dtype=np.uint8).reshape(shape)
    finally:
        lib.WebPAnimDecoderDelete(decoder)
