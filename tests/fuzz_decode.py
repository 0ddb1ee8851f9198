"""Mutation fuzz of ``ocr_core.image.decode_image``: every input must decode or fail with a clear code.

    python -m tests.fuzz_decode [--seconds S] [--seed N] [--save DIR]

Seeds are small images rendered here in every format and pixel mode the decoder meets (baseline,
progressive, grey and CMYK JPEG; 8/16-bit, palette, alpha and bilevel PNG; raw, LZW, deflate,
PackBits, JPEG and tiled TIFF; lossy, lossless and animated WebP; 24-bit, palette and RLE BMP).
Each case mutates one of them (bit flips, byte runs, truncation, insertion, deletion, duplication,
boundary values, splices) from a fixed seed, so a run is repeatable. A case passes when the decode
gives a uint8 BGR image or raises OcrError with an input-error code, within ``CASE_SECONDS``.
Anything else (another exception type, a slow case) is a finding; ``--save`` keeps the inputs.

The summary (JSON, stdout) holds the counts, the findings, the slowest case and the peak RSS.
The suite runs this in a subprocess for ~15 s and asserts its stderr is empty too (decoders
writing warnings to file descriptor 2 are findings); ``make fuzz`` runs it for minutes.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ocr_core.errors import ErrorCode, OcrError
from ocr_core.image import decode_image

# Limits small enough that a mutated header's huge size is refused rather than decoded slowly.
LIMITS = {"max_bytes": 1 << 20, "max_pixels": 4_000_000}
INPUT_ERRORS = {ErrorCode.DECODE_FAILED, ErrorCode.IMAGE_TOO_LARGE, ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                ErrorCode.BAD_REQUEST}
# Generous: every seed decodes in milliseconds; a case this slow means a decoder runs away.
CASE_SECONDS = 2.0


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def seeds() -> dict[str, bytes]:
    """Small valid files of every kind the decoder handles."""
    rgb = Image.new("RGB", (61, 37), "white")
    draw = ImageDraw.Draw(rgb)
    draw.text((3, 10), "Fuzz 42", fill="black")
    draw.rectangle((40, 5, 58, 30), fill=(200, 40, 40))
    rgba = rgb.copy()
    rgba.putalpha(Image.fromarray((np.asarray(rgb.convert("L")) < 128).astype(np.uint8) * 255))
    gray16 = Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)
    exif = Image.Exif()
    exif[0x0112] = 6
    out = {
        "jpeg_baseline": _encode(rgb, "JPEG", quality=80, exif=exif),
        "jpeg_progressive": _encode(rgb, "JPEG", quality=80, progressive=True),
        "jpeg_444_restart": _encode(rgb, "JPEG", subsampling=0, restart_marker_blocks=1),
        "jpeg_gray": _encode(rgb.convert("L"), "JPEG"),
        "jpeg_cmyk": _encode(rgb.convert("CMYK"), "JPEG"),
        "png_rgb": _encode(rgb, "PNG"),
        "png_rgba": _encode(rgba, "PNG"),
        "png_palette_trns": _encode(rgba.convert("P"), "PNG", transparency=0),
        "png_gray16": _encode(gray16, "PNG"),
        "png_bilevel": _encode(rgb.convert("1"), "PNG"),
        "png_exif": _encode(rgb, "PNG", exif=exif),
        "bmp_rgb": _encode(rgb, "BMP"),
        "bmp_palette": _encode(rgb.convert("P"), "BMP"),
        "bmp_rgba": _encode(rgba, "BMP"),
        "webp_lossy": _encode(rgb, "WEBP", quality=70),
        "webp_lossless_alpha": _encode(rgba, "WEBP", lossless=True),
        "webp_lossy_alpha": _encode(rgba, "WEBP", quality=70),
        "webp_animated": _encode(rgb, "WEBP", save_all=True, append_images=[rgba], duration=100),
    }
    for compression in ("raw", "tiff_lzw", "tiff_adobe_deflate", "packbits", "jpeg"):
        out[f"tiff_{compression}"] = _encode(rgb, "TIFF", compression=compression)
    out["tiff_tiled"] = _encode(rgb, "TIFF", compression="tiff_lzw", tile=(16, 16))
    out["tiff_gray16"] = _encode(gray16, "TIFF", compression="tiff_adobe_deflate")
    out["tiff_rgba"] = _encode(rgba, "TIFF", compression="tiff_lzw")
    out["bmp_rle8"] = _bmp_rle8(rgb.convert("L"))
    return out


def _bmp_rle8(gray: Image.Image) -> bytes:
    """An 8-bit RLE-compressed BMP (Pillow writes none): one run per pixel, rows bottom-up."""
    width, height = gray.size
    pixels = np.asarray(gray)
    body = bytearray()
    for row in pixels[::-1]:
        for value in row:
            body += bytes((1, int(value)))
        body += b"\x00\x00"
    body += b"\x00\x01"
    palette = b"".join(bytes((i, i, i, 0)) for i in range(256))
    offset = 14 + 40 + len(palette)
    header = b"BM" + (offset + len(body)).to_bytes(4, "little") + b"\0\0\0\0" + offset.to_bytes(4, "little")
    info = (40).to_bytes(4, "little") + width.to_bytes(4, "little") + height.to_bytes(4, "little")
    info += (1).to_bytes(2, "little") + (8).to_bytes(2, "little") + (1).to_bytes(4, "little")
    info += len(body).to_bytes(4, "little") + bytes(8) + (256).to_bytes(4, "little") + bytes(4)
    return header + info + palette + bytes(body)


_BOUNDARY = (b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff", b"\x00\x00", b"\x7f\xff\xff\xff",
             b"\xff\xff\xff\xff", b"\x00\x01\x00\x00", b"\xff\xd9", b"\xff\xda", b"IDAT", b"IEND")


def mutate(rng: np.random.Generator, data: bytes, others: list[bytes]) -> bytes:
    """One to three random edits of ``data``."""
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        if not out:
            break
        kind = int(rng.integers(0, 8))
        at = int(rng.integers(0, len(out)))
        if kind == 0:  # flip bits
            for _ in range(int(rng.integers(1, 9))):
                i = int(rng.integers(0, len(out)))
                out[i] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1:  # random run
            out[at:at + int(rng.integers(1, 16))] = rng.bytes(int(rng.integers(1, 16)))
        elif kind == 2:  # truncate
            del out[at:]
        elif kind == 3:  # insert
            out[at:at] = rng.bytes(int(rng.integers(1, 64)))
        elif kind == 4:  # delete a range
            del out[at:at + int(rng.integers(1, 64))]
        elif kind == 5:  # duplicate a range
            size = int(rng.integers(1, 256))
            out[at:at] = out[at:at + size] * int(rng.integers(1, 8))
        elif kind == 6:  # boundary value over a header field
            value = _BOUNDARY[int(rng.integers(0, len(_BOUNDARY)))]
            out[at:at + len(value)] = value
        else:  # splice the tail of another seed
            other = others[int(rng.integers(0, len(others)))]
            out[at:] = other[int(rng.integers(0, len(other))):]
    return bytes(out)


def _peak_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run(seconds: float, seed: int, save: Path | None = None, min_cases: int = 0) -> dict:
    """Fuzz for ``seconds`` (and at least ``min_cases`` cases); the summary as a dict."""
    corpus = seeds()
    names = sorted(corpus)
    values = [corpus[n] for n in names]
    for name in names:  # every seed itself must decode
        decode_image(corpus[name], **LIMITS)
    rss_before = _peak_rss_kb()
    rng = np.random.default_rng(seed)
    outcomes: Counter[str] = Counter()
    findings: list[dict] = []
    slowest = (0.0, "")
    started = time.monotonic()
    cases = 0
    while time.monotonic() - started < seconds or cases < min_cases:
        name = names[int(rng.integers(0, len(names)))]
        data = mutate(rng, corpus[name], values)
        cases += 1
        case_start = time.perf_counter()
        problem = None
        try:
            decoded = decode_image(data, **LIMITS)
            bgr = decoded.bgr
            if bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3 or not bgr.flags["C_CONTIGUOUS"]:
                problem = f"bad array {bgr.dtype} {bgr.shape}"
            outcomes["decoded"] += 1
        except OcrError as exc:
            outcomes[exc.code.value] += 1
            if exc.code not in INPUT_ERRORS or not exc.message or " at 0x" in exc.message:
                problem = f"{exc.code.value}: {exc.message}"
        except Exception as exc:  # the finding this fuzz exists for
            problem = f"{type(exc).__name__}: {exc}"
            outcomes["exception"] += 1
        elapsed = time.perf_counter() - case_start
        slowest = max(slowest, (elapsed, f"case {cases} ({name})"))
        if elapsed > CASE_SECONDS:
            problem = problem or f"took {elapsed:.1f} s"
        if problem is not None:
            finding = {"case": cases, "seed_image": name, "problem": problem[:300]}
            if save is not None:
                save.mkdir(parents=True, exist_ok=True)
                path = save / f"case-{seed}-{cases}-{name}.bin"
                path.write_bytes(data)
                finding["input"] = str(path)
            findings.append(finding)
    return {
        "seed": seed,
        "cases": cases,
        "seconds": round(time.monotonic() - started, 1),
        "outcomes": dict(outcomes),
        "findings": findings,
        "slowest_case_s": round(slowest[0], 3),
        "slowest_case": slowest[1],
        "peak_rss_growth_kb": _peak_rss_kb() - rss_before,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--min-cases", type=int, default=0)
    parser.add_argument("--save", type=Path, help="directory for the inputs of findings")
    args = parser.parse_args(argv)
    summary = run(args.seconds, args.seed, args.save, args.min_cases)
    print(json.dumps(summary, indent=1))
    return 1 if summary["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
