"""Hostile images made here, byte by byte where no encoder would write them.

- ``progressive_jpeg(width, height, scans)``: a grey progressive JPEG of up to 127 scans, each a
  legal step of the progression (so strict decoding accepts it), holding a blank picture in a few
  KB: the shape of a scan bomb, where every scan costs a pass over the whole image.
- ``repeated_scan_jpeg``: a real encoder's progressive JPEG with its last scan repeated, the
  scan bomb of issue 11.
- ``BOMBS``/``bombs(side)``: for each accepted format, a tiny file that decodes to ``side``×``side`` pixels
  (a decompression bomb within the pixel limit), and ``header_bombs``: files whose headers claim
  more pixels than any limit.
- ``refused()``: issue 11's hostile classes with the code each must get.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ocr_core.errors import ErrorCode
from tests.support import FONT


class _Bits:
    """An entropy-coded segment: bits MSB first, 1-padded, with 0xFF bytes stuffed."""

    def __init__(self) -> None:
        self.bits: list[int] = []

    def put(self, value: int, count: int) -> None:
        self.bits.extend((value >> (count - 1 - i)) & 1 for i in range(count))

    def zeros(self, count: int) -> None:
        self.bits.extend([0] * count)

    def segment(self) -> bytes:
        bits = self.bits + [1] * (-len(self.bits) % 8)
        packed = np.packbits(np.array(bits, dtype=np.uint8)).tobytes()
        return packed.replace(b"\xff", b"\xff\x00")


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def _eob_runs(bits: _Bits, blocks: int) -> None:
    """End-of-band runs covering ``blocks`` blocks: symbol EOBn (code n, 4 bits) + n extra bits."""
    while blocks:
        run = min(blocks, 32767)
        n = run.bit_length() - 1
        bits.put(n, 4)
        bits.put(run - (1 << n), n)
        blocks -= run


def progressive_jpeg(width: int, height: int, scans: int) -> bytes:
    """A blank grey progressive JPEG with ``scans`` scans (1..127): DC, then each AC coefficient's
    first pass, then each one's refinement."""
    if not 1 <= scans <= 127:
        raise ValueError("scans must be within 1..127")
    blocks = -(-width // 8) * -(-height // 8)
    dc_table = bytes([0x00, 1] + [0] * 15) + bytes([0x00])  # one code, "0": difference 0
    ac_table = bytes([0x10] + [0, 0, 0, 15] + [0] * 12) + bytes(n << 4 for n in range(15))  # EOB0..EOB14
    head = b"\xff\xd8"
    head += _segment(0xDB, b"\x00" + bytes([1] * 64))
    head += _segment(0xC2, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
    head += _segment(0xC4, dc_table + ac_table)
    dc = _Bits()
    dc.zeros(blocks)
    parts = [head, _segment(0xDA, b"\x01\x01\x00\x00\x00\x00"), dc.segment()]
    bands = [(k, 0x01) for k in range(1, 64)] + [(k, 0x10) for k in range(1, 64)]  # (band, Ah/Al)
    for band, approximation in bands[:scans - 1]:
        ac = _Bits()
        _eob_runs(ac, blocks)
        parts += [_segment(0xDA, bytes([1, 1, 0x00, band, band, approximation])), ac.segment()]
    return b"".join(parts) + b"\xff\xd9"


def repeated_scan_jpeg(width: int, height: int, repeats: int) -> bytes:
    """Pillow's progressive JPEG of a blank page with its last scan repeated ``repeats`` times."""
    out = io.BytesIO()
    Image.new("L", (width, height), 255).save(out, "JPEG", progressive=True)
    data = out.getvalue()
    last, end = data.rindex(b"\xff\xda"), len(data) - 2
    return data[:end] + data[last:end] * repeats + data[end:]


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_rgba16(width: int, height: int) -> bytes:
    """A 16-bit RGBA PNG of one transparent colour: issue 11's 322 KB file that peaked at 858 MB."""
    row = b"\x00" + b"\x00\x00\x00\x00\x00\x00\x00\x00" * width
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0)
    chunks = _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def bmp_rle8(width: int, height: int) -> bytes:
    """An 8-bit RLE BMP of one grey level: runs of 255 pixels, two bytes each."""
    row = (b"\xff\x80" * (width // 255)) + (bytes([width % 255, 0x80]) if width % 255 else b"") + b"\x00\x00"
    body = row * height + b"\x00\x01"
    palette = b"".join(bytes((i, i, i, 0)) for i in range(256))
    offset = 14 + 40 + len(palette)
    header = b"BM" + struct.pack("<I4xI", offset + len(body), offset)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(body), 2835, 2835, 256, 0)
    return header + info + palette + body


def _blank(side: int, mode: str = "RGB", colour: str | tuple[int, ...] = "white") -> Image.Image:
    return Image.new(mode, (side, side), colour)


# One builder per accepted format and decoder path: side -> a small file of side×side pixels.
BOMBS: dict[str, Callable[[int], bytes]] = {
    "png_rgba16": lambda side: png_rgba16(side, side),
    "jpeg_baseline": lambda side: _encode(_blank(side), "JPEG", quality=50),
    "jpeg_progressive_444": lambda side: _encode(_blank(side), "JPEG", quality=50, progressive=True,
                                                 subsampling=0),
    "tiff_deflate_one_strip": lambda side: _encode(_blank(side), "TIFF", compression="tiff_adobe_deflate"),
    "webp_lossless": lambda side: _encode(_blank(side), "WEBP", lossless=True),
    "webp_lossless_alpha": lambda side: _encode(_blank(side, "RGBA", (0, 0, 0, 0)), "WEBP", lossless=True),
    "webp_animated": lambda side: _encode(_blank(side), "WEBP", lossless=True, save_all=True,
                                          append_images=[_blank(side, colour="black")], duration=100),
    "bmp_rle8": lambda side: bmp_rle8(side, side),
}


def bombs(side: int) -> dict[str, bytes]:
    """Small files that decode to side×side pixels, one per accepted format and decoder path."""
    return {name: build(side) for name, build in BOMBS.items()}


def header_bombs() -> dict[str, bytes]:
    """Headers that claim more pixels than the limits allow; the data behind them is a few bytes."""
    png = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
    png += _png_chunk(b"IDAT", zlib.compress(b"")) + _png_chunk(b"IEND", b"")
    jpeg = _encode(Image.new("L", (8, 8)), "JPEG")
    sof = jpeg.index(b"\xff\xc0")
    jpeg = jpeg[:sof + 5] + struct.pack(">HH", 60000, 60000) + jpeg[sof + 9:]
    tiff = bytearray(_encode(Image.new("L", (8, 8)), "TIFF"))
    for tag in (256, 257):  # ImageWidth, ImageLength: LONG values in the first IFD
        at = tiff.index(struct.pack("<HHI", tag, 4, 1))
        tiff[at + 8:at + 12] = struct.pack("<I", 60000)
    webp = b"RIFF" + struct.pack("<I", 4 + 18 + 8 + 2) + b"WEBP" + b"VP8X" + struct.pack("<I", 10) + \
        b"\x10\x00\x00\x00" + (16383 - 1).to_bytes(3, "little") + (16383 - 1).to_bytes(3, "little") + \
        b"ALPH" + struct.pack("<I", 2) + b"\x00\x00"
    bmp = bytearray(bmp_rle8(8, 8))
    bmp[18:26] = struct.pack("<ii", 30000, 30000)
    return {"png": png, "jpeg": jpeg, "tiff": bytes(tiff), "webp": bytes(webp), "bmp": bytes(bmp)}


def jpeg_ending_early(side: int = 6000) -> bytes:
    """Issue 11's 691-byte JPEG: a side×side header, a few bytes of scan data, then EOI."""
    data = _encode(Image.new("RGB", (side, side), "white"), "JPEG", quality=50)
    scan = data.index(b"\xff\xda")
    return data[:scan + 2 + int.from_bytes(data[scan + 2:scan + 4], "big") + 100] + b"\xff\xd9"


def damaged_tiff() -> bytes:
    """A deflate TIFF of noise with 64 bytes of its compressed data zeroed."""
    noise = np.random.default_rng(3).integers(0, 255, (120, 200, 3), dtype=np.uint8)
    data = bytearray(_encode(Image.fromarray(noise), "TIFF", compression="tiff_adobe_deflate"))
    data[len(data) // 3:len(data) // 3 + 64] = bytes(64)
    return bytes(data)


def refused() -> dict[str, tuple[bytes, ErrorCode]]:
    """Issue 11's classes, each with the code it must be refused with before it costs: scan bombs,
    data that ends early, a damaged TIFF, and headers that claim too many pixels in every format."""
    return {
        "jpeg_last_scan_2000_times": (repeated_scan_jpeg(2000, 2000, 2000), ErrorCode.DECODE_FAILED),
        "jpeg_127_legal_scans": (progressive_jpeg(3000, 3000, 127), ErrorCode.DECODE_FAILED),
        "jpeg_data_ends_before_eoi": (jpeg_ending_early(), ErrorCode.DECODE_FAILED),
        "tiff_damaged_deflate": (damaged_tiff(), ErrorCode.DECODE_FAILED),
        **{f"{fmt}_header_bomb": (bomb, ErrorCode.IMAGE_TOO_LARGE) for fmt, bomb in header_bombs().items()},
    }


# Decoded peaks above 8 B/px by design (see ocr_core.image): libjpeg holds 6 B/px of coefficients
# for a progressive JPEG without chroma subsampling while it writes the 3 B/px result.
BYTES_PER_PIXEL_EXCEPTIONS = {"jpeg_progressive_444": 9}


def text_page(side: int) -> bytes:
    """A grey-level PNG page of big text: large crops for the recogniser."""
    image = Image.new("L", (side, side), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(FONT), side // 25)
    for i in range(8):
        draw.text((side // 20, side // 20 + i * side // 9), f"Line {i} of a large page", font=font, fill=0)
    return _encode(image, "PNG")


def memory_workload(folder: Path, side: int) -> tuple[list[Path], list[Path]]:
    """(large files, reference files) for a whole-process memory check: every bomb within the
    8 B/px rule plus a large text page, and as many small pages that fill the detector's full input
    (ONNX Runtime's arena settles over the first few runs of a shape, a fixed cost the reference
    must pay too). The process's peak on the first minus its peak on the second is what the
    large images cost."""
    large = []
    for name, data in {**bombs(side), "text_page.png": text_page(side)}.items():
        if name not in BYTES_PER_PIXEL_EXCEPTIONS:
            large.append(folder / name)
            large[-1].write_bytes(data)
    references = []
    for i in range(len(large) - 1):
        references.append(folder / f"reference-{i}.png")
        Image.new("RGB", (1200, 1200), ("white", "black", "grey")[i % 3]).save(references[-1])
    references.append(folder / "reference-text.png")
    references[-1].write_bytes(text_page(1200))
    return large, references
