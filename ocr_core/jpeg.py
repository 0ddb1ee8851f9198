"""JPEG: the structure read from the markers before a pixel is decoded, then a strict decode.

The marker walk is the one a decoder does: length-prefixed segments, and after each start of scan
(SOS) entropy-coded data in which 0xFF is only ever followed by a stuffed 0x00 or a restart marker
(RST0-7). It stops at the first end of image (EOI), as a decoder does (an MPO file's later
pictures are not read). From it come the frame size and sampling, whether the decoder must hold
every DCT coefficient (progressive or multi-scan files), the EXIF orientation, and the scan count:
each scan is a pass over the whole coefficient buffer, so a file that repeats a scan thousands of
times costs a minute of CPU from 250 KB. Such files are refused before decoding, as
``djpeg -maxscans`` does.

The decode is libjpeg-turbo's through simplejpeg, straight into a BGR array, with libjpeg's
warnings as errors: data that ends early is refused instead of coming back padded with grey.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import simplejpeg

from .errors import ErrorCode, OcrError

# libjpeg's default progressive script has 10 scans (6 for grey); mozjpeg, jpegli and Photoshop
# stay within a few dozen, and a sequential file has one per component. Ten times what encoders
# write still bounds the decode to a few seconds at the pixel limit.
MAX_SCANS = 100

_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # not DHT, JPG, DAC
_PROGRESSIVE = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RST0-7, SOI: no length field
_EOI, _SOS, _APP1 = 0xD9, 0xDA, 0xE1
# The end of entropy-coded data: 0xFF followed by anything but a stuffed zero, a restart marker or
# a fill byte (the last of a run of 0xFF is the marker's).
_MARKER_AFTER_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
# libjpeg's one harmless warning that strict decoding turns into an error: junk after the last
# scan, before EOI (common from some cameras and editors). Everything has been decoded by then.
_JUNK_BEFORE_EOI = re.compile(r"extraneous bytes before marker 0xd9", re.IGNORECASE)
_TRUNCATED = "the JPEG data ends early (no end-of-image marker): the file is truncated"
# Bytes of one stored DCT coefficient block (64 × int16).
_BLOCK_BYTES = 128


@dataclass(frozen=True)
class JpegLayout:
    width: int
    height: int
    sampling: tuple[tuple[int, int], ...]  # (horizontal, vertical) factor of each component
    progressive: bool
    scans: int
    exif: bytes | None  # the APP1 Exif payload, for the orientation

    @property
    def whole_coefficients(self) -> bool:
        """libjpeg keeps every coefficient of the image in memory for these (a full-image buffer)."""
        return self.progressive or self.scans > 1

    def coefficient_bytes(self) -> int:
        """The size of that buffer: every component's blocks, padded to whole MCUs."""
        h_max = max(h for h, _ in self.sampling)
        v_max = max(v for _, v in self.sampling)
        mcus_x = -(-self.width // (8 * h_max))
        mcus_y = -(-self.height // (8 * v_max))
        return sum(mcus_x * h * mcus_y * v for h, v in self.sampling) * _BLOCK_BYTES


def _failed(message: str) -> OcrError:
    return OcrError(ErrorCode.DECODE_FAILED, message)


def read_layout(data: bytes, max_scans: int = MAX_SCANS) -> JpegLayout:
    """Walk the markers of a JPEG (``data`` starts with SOI). Raises OcrError(decode_failed)."""
    frame: tuple[int, int, tuple[tuple[int, int], ...], bool] | None = None
    exif = None
    scans = 0
    pos, end = 2, len(data)
    while True:
        if pos + 2 > end:
            raise _failed(_TRUNCATED)
        if data[pos] != 0xFF:  # junk between segments: a decoder skips it to the next marker
            pos = data.find(b"\xff", pos)
            pos = end if pos < 0 else pos
            continue
        while pos + 1 < end and data[pos + 1] == 0xFF:  # fill bytes before a marker
            pos += 1
        if pos + 1 >= end:
            raise _failed(_TRUNCATED)
        marker = data[pos + 1]
        pos += 2
        if marker == _EOI:
            break
        if marker in _STANDALONE or marker == 0x00:
            continue
        if pos + 2 > end:
            raise _failed(_TRUNCATED)
        length = int.from_bytes(data[pos:pos + 2], "big")
        if length < 2 or pos + length > end:
            raise _failed(f"the JPEG's marker 0xFF{marker:02X} segment runs past the end of the data "
                          "or has a bad length: the file is damaged or truncated")
        segment = data[pos + 2:pos + length]
        pos += length
        if marker in _SOF and frame is None:
            frame = _frame(segment, marker)
        elif marker == _APP1 and exif is None and segment.startswith(b"Exif\x00\x00"):
            exif = segment
        elif marker == _SOS:
            if frame is None:
                raise _failed("the JPEG has a scan before its frame header (SOF): the file is damaged")
            scans += 1
            if scans > max_scans:
                raise _failed(
                    f"the JPEG has more than {max_scans} scans (progressive passes); encoders write at "
                    "most a few dozen, and each one costs a pass over the whole image, so it is refused"
                )
            found = _MARKER_AFTER_SCAN.search(data, pos)
            pos = found.start() if found else end
    if frame is None or scans == 0:
        raise _failed("the JPEG has no frame header or no scan: the file is damaged")
    width, height, sampling, progressive = frame
    return JpegLayout(width, height, sampling, progressive, scans, exif)


def _frame(segment: bytes, marker: int) -> tuple[int, int, tuple[tuple[int, int], ...], bool]:
    if len(segment) < 6:
        raise _failed("the JPEG's frame header (SOF) is too short: the file is damaged")
    height = int.from_bytes(segment[1:3], "big")
    width = int.from_bytes(segment[3:5], "big")
    count = segment[5]
    if not 1 <= count <= 4 or len(segment) < 6 + 3 * count:
        raise _failed(f"the JPEG's frame header declares {count} components: the file is damaged")
    sampling = tuple((segment[7 + 3 * i] >> 4, segment[7 + 3 * i] & 15) for i in range(count))
    if any(not (1 <= h <= 4 and 1 <= v <= 4) for h, v in sampling):
        raise _failed("the JPEG's frame header has a sampling factor outside 1..4: the file is damaged")
    if width == 0 or height == 0:
        raise _failed(f"the JPEG's frame header gives a size of {width}×{height} (a size set later, by a "
                      "DNL marker, is not supported)")
    return width, height, sampling, marker in _PROGRESSIVE


def decode(data: bytes, layout: JpegLayout) -> np.ndarray:
    """The pixels as stored: H×W×3 BGR, or H×W×4 CMYK (Adobe's inverted convention) for a
    four-component file. Raises ValueError (from libjpeg-turbo) for damaged data."""
    colorspace = "CMYK" if len(layout.sampling) == 4 else "BGR"
    try:
        return simplejpeg.decode_jpeg(data, colorspace=colorspace, strict=True)
    except ValueError as exc:
        if not _JUNK_BEFORE_EOI.search(str(exc)):
            raise
    # Strict decoding stopped at the first warning, junk before EOI: no other warning came before
    # it and nothing is decoded after it, so a lenient decode gives exactly the whole image.
    return simplejpeg.decode_jpeg(data, colorspace=colorspace, strict=False)
