"""Decoding: every supported format and pixel mode, and hostile input refused with the right code."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont, ImageOps

from ocr_core import Engine, RecognizeOptions
from ocr_core.errors import ErrorCode, OcrError
from ocr_core.image import decode_image, sniff_format
from ocr_core.jpeg import MAX_SCANS
from ocr_core.pixels import choose_background
from tests import crafted
from tests.support import CHECKOUT, FONT, png_header_only, render_text

LIMITS = {"max_bytes": 20 * 1024 * 1024, "max_pixels": 40_000_000}


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


@pytest.fixture(scope="module")
def line_image() -> Image.Image:
    return Image.open(io.BytesIO(render_text(["Invoice 2026"]))).convert("RGB")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "TIFF", "WEBP"])
def test_every_supported_format_decodes_to_bgr(line_image: Image.Image, fmt: str) -> None:
    decoded = decode_image(encode(line_image, fmt), **LIMITS)
    assert decoded.format == fmt
    assert decoded.bgr.shape == (line_image.height, line_image.width, 3)
    assert decoded.bgr.dtype == np.uint8


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "I;16", "CMYK", "1"])
def test_pixel_modes_become_black_text_on_white(engine: Engine, line_image: Image.Image, mode: str) -> None:
    if mode == "I;16":
        gray = np.asarray(line_image.convert("L"), dtype=np.uint16) * 257
        image = Image.fromarray(gray).convert("I;16")
    elif mode in ("RGBA", "LA"):
        # Black text on a fully transparent background: dropping alpha would give black on black.
        alpha = 255 - np.asarray(line_image.convert("L"))
        rgba = np.zeros((*alpha.shape, 4), dtype=np.uint8)
        rgba[..., 3] = alpha
        image = Image.fromarray(rgba, "RGBA").convert(mode)
    else:
        image = line_image.convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    result = engine.recognize(encode(image, fmt), RecognizeOptions(mode="line"))
    assert result.text == "Invoice 2026"


def _on_transparent(lines: list[tuple[str, tuple[int, int, int, int]]]) -> Image.Image:
    font = ImageFont.truetype(str(FONT), 40)
    image = Image.new("RGBA", (900, 80 * len(lines) + 40), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    for i, (text, colour) in enumerate(lines):
        draw.text((40, 20 + 80 * i), text, font=font, fill=colour)
    return image


TRANSPARENT = {
    "dark": [("Invoice 2026 total", (0, 0, 0, 255))],
    "light": [("Dark mode settings", (255, 255, 255, 255))],  # a dark-mode UI, a white logo
    "yellow": [("Warning label 7", (250, 220, 40, 255))],
    "mixed": [("White heading here", (255, 255, 255, 255)), ("Black body line 42", (0, 0, 0, 255))],
}


TRANSPARENT_FORMATS = {"PNG": ("PNG", {}), "WEBP": ("WEBP", {"lossless": True}),
                       "WEBP-lossy": ("WEBP", {"quality": 80})}


@pytest.mark.parametrize("fmt", sorted(TRANSPARENT_FORMATS))
@pytest.mark.parametrize("case", sorted(TRANSPARENT))
def test_text_on_transparency_reads_whatever_its_colour(engine: Engine, case: str, fmt: str) -> None:
    """Issue 15: light text on transparency used to be composited over white and vanish."""
    fmt, params = TRANSPARENT_FORMATS[fmt]
    data = encode(_on_transparent(TRANSPARENT[case]), fmt, **params)
    assert engine.recognize(data).text.splitlines() == [text for text, _ in TRANSPARENT[case]]


def test_the_background_is_the_grey_farthest_from_what_is_drawn() -> None:
    def background(colours: list[int], alpha: int = 255) -> int | None:
        bgra = np.zeros((4, 100, 4), dtype=np.uint8)
        for i, grey in enumerate(colours):  # one row each, over a transparent rest
            bgra[i, :50, :3] = grey
            bgra[i, :50, 3] = alpha
        return choose_background(4, 100, lambda y0, y1: bgra[y0:y1])

    assert background([0]) == 255 and background([30, 60]) == 255
    assert background([255]) == 0 and background([220, 190]) == 0
    assert background([0, 255]) == 128  # both drawn: the midpoint keeps both legible
    assert background([0], alpha=1) == 255  # faint ink still decides by its colour
    opaque = np.full((3, 5, 4), 255, dtype=np.uint8)
    assert choose_background(3, 5, lambda y0, y1: opaque[y0:y1]) is None
    nothing = np.zeros((3, 5, 4), dtype=np.uint8)
    assert choose_background(3, 5, lambda y0, y1: nothing[y0:y1]) == 255


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_every_exif_orientation_matches_pillows_reading(fmt: str) -> None:
    """Orientation is applied while converting, through a view of the result: all eight match Pillow."""
    stored = Image.fromarray(np.random.default_rng(5).integers(0, 256, (37, 53, 3), dtype=np.uint8))
    params = {"JPEG": {"quality": 100, "subsampling": 0}, "WEBP": {"lossless": True}}.get(fmt, {})
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        data = encode(stored, fmt, exif=exif, **params)
        want = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data)).convert("RGB")))[:, :, ::-1]
        got = decode_image(data, **LIMITS).bgr
        assert got.shape == want.shape and got.flags["C_CONTIGUOUS"], orientation
        assert np.abs(got.astype(int) - want).max() <= (2 if fmt == "JPEG" else 0), orientation


def test_exif_orientation_is_applied(engine: Engine, line_image: Image.Image) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: rotate 90° clockwise to view
    stored = line_image.transpose(Image.Transpose.ROTATE_90)
    result = engine.recognize(encode(stored, "JPEG", exif=exif, quality=95))
    assert (result.width, result.height) == line_image.size
    assert result.text == "Invoice 2026"


def test_sniffing_ignores_everything_but_the_magic_bytes() -> None:
    assert sniff_format(b"\x89PNG\r\n\x1a\n...") == "PNG"
    assert sniff_format(b"RIFF\0\0\0\0WEBPVP8 ") == "WEBP"
    assert sniff_format(b"RIFF\0\0\0\0WAVEfmt ") is None
    assert sniff_format(b"%PDF-1.7") is None
    assert sniff_format(b"GIF89a") is None


def _truncated(fmt: str) -> bytes:
    noise = np.random.default_rng(1).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), fmt)
    return data[: len(data) // 2]


HOSTILE = {
    "empty": (b"", ErrorCode.BAD_REQUEST),
    "random": (np.random.default_rng(7).bytes(4096), ErrorCode.UNSUPPORTED_MEDIA_TYPE),
    "text": (b"hello, this is not an image\n" * 20, ErrorCode.UNSUPPORTED_MEDIA_TYPE),
    # A PDF is a document now (tests/test_documents.py); this one has no page tree.
    "pdf": (b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n", ErrorCode.DECODE_FAILED),
    "gif": (encode(Image.new("P", (20, 20)), "GIF"), ErrorCode.UNSUPPORTED_MEDIA_TYPE),
    "truncated_png": (_truncated("PNG"), ErrorCode.DECODE_FAILED),
    "truncated_jpeg": (_truncated("JPEG"), ErrorCode.DECODE_FAILED),
    "png_magic_only": (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, ErrorCode.DECODE_FAILED),
    "bomb_30000x30000": (png_header_only(30000, 30000), ErrorCode.IMAGE_TOO_LARGE),
    "strip_100000x1": (encode(Image.new("L", (100000, 1), 255), "PNG"), ErrorCode.IMAGE_TOO_LARGE),
    **crafted.refused(),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("mode", ["page", "line"])
def test_hostile_input_gets_its_code_quickly(engine: Engine, name: str, mode: str) -> None:
    data, code = HOSTILE[name]
    started = time.monotonic()
    with pytest.raises(OcrError) as caught:
        engine.recognize(data, RecognizeOptions(mode=mode))
    # A bound for hangs, not a speed test: every one of these is refused in milliseconds.
    assert time.monotonic() - started < 2.0
    assert caught.value.code is code
    assert caught.value.message


def test_byte_limit_is_checked_before_anything_else() -> None:
    with pytest.raises(OcrError) as caught:
        decode_image(b"\x89PNG" + b"\0" * 2000, max_bytes=1000, max_pixels=10**6)
    assert caught.value.code is ErrorCode.PAYLOAD_TOO_LARGE


def test_pixel_limit_is_configurable(line_image: Image.Image) -> None:
    data = encode(line_image, "PNG")
    with pytest.raises(OcrError) as caught:
        decode_image(data, max_bytes=10**7, max_pixels=line_image.width * line_image.height - 1)
    assert caught.value.code is ErrorCode.IMAGE_TOO_LARGE


@pytest.mark.parametrize("mode", ["page", "line"])
def test_a_one_pixel_image_is_an_empty_success(engine: Engine, mode: str) -> None:
    result = engine.recognize(encode(Image.new("RGB", (1, 1), "white"), "PNG"), RecognizeOptions(mode=mode))
    assert result.lines == ()
    assert result.to_dict()["text"] == ""


def test_cli_reports_each_file_and_writes_nothing(tmp_path: Path) -> None:
    """The CLI keeps going past bad files, exits 1, and leaves no file in cwd, TMPDIR or HOME."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "good.png").write_bytes(render_text(["Hello 42"]))
    for name in ("random", "truncated_png", "bomb_30000x30000", "pdf", "empty"):
        (inputs / f"{name}.bin").write_bytes(HOSTILE[name][0])
    work = tmp_path / "work"
    work.mkdir()
    files = ["good.png", "random.bin", "truncated_png.bin", "bomb_30000x30000.bin", "pdf.bin", "empty.bin",
             "missing.png"]
    env = {**os.environ, "TMPDIR": str(work), "HOME": str(work), "PYTHONPATH": str(CHECKOUT),
           "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "ocr_core", "--jsonl", *[str(inputs / f) for f in files]],
        cwd=work, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["file"] for r in records] == [str(inputs / f) for f in files]
    assert records[0]["ok"] is True and records[0]["text"] == "Hello 42"
    codes = [r["error"]["code"] for r in records[1:]]
    assert codes == ["unsupported_media_type", "decode_failed", "image_too_large", "decode_failed",
                     "bad_request", "bad_request"]
    assert list(work.iterdir()) == []


def test_a_scan_bomb_is_refused_before_libjpeg_runs() -> None:
    """Every scan is a pass over the image: more than MAX_SCANS is refused from the markers alone
    (a file of exactly MAX_SCANS legal scans still decodes)."""
    assert decode_image(crafted.progressive_jpeg(640, 480, MAX_SCANS), **LIMITS).width == 640
    started = time.monotonic()
    with pytest.raises(OcrError) as caught:
        decode_image(crafted.progressive_jpeg(640, 480, MAX_SCANS + 1), **LIMITS)
    assert caught.value.code is ErrorCode.DECODE_FAILED and "scans" in caught.value.message
    assert time.monotonic() - started < 0.5


def test_jpeg_junk_before_its_end_marker_is_tolerated(line_image: Image.Image) -> None:
    """Strict decoding refuses data that ends early, not the stray bytes some cameras leave
    after the last scan (libjpeg's "extraneous bytes before marker 0xd9")."""
    data = encode(line_image, "JPEG")
    assert decode_image(data[:-2] + b"\x00\x17" + data[-2:], **LIMITS).bgr.shape[:2] == line_image.size[::-1]


def test_damaged_files_write_nothing_to_stderr(tmp_path: Path) -> None:
    """libtiff prints its errors to fd 2 from C, Pillow logs and warns: none of it may reach a
    server's error log. Checked at the file descriptor, in a fresh process."""
    files = []
    for name in ("tiff_damaged_deflate", "jpeg_data_ends_before_eoi", "truncated_png", "tiff_header_bomb"):
        files.append(tmp_path / name)
        files[-1].write_bytes(HOSTILE[name][0])
    code = ("import sys; from ocr_core.image import decode_image; from ocr_core.errors import OcrError\n"
            "for path in sys.argv[1:]:\n"
            "    try: decode_image(open(path, 'rb').read(), max_bytes=1 << 24, max_pixels=40_000_000)\n"
            "    except OcrError as exc: print(exc.code.value)\n")
    done = subprocess.run([sys.executable, "-c", code, *map(str, files)], capture_output=True, text=True,
                          cwd=CHECKOUT, timeout=60)
    assert done.stdout.split() == ["decode_failed", "decode_failed", "decode_failed", "image_too_large"]
    assert done.stderr == ""


def test_mutation_fuzz_finds_nothing() -> None:
    """Mutated files of every kind (tests/fuzz_decode.py, fixed seed, ~15 s): each decodes or fails
    with an input-error code, quickly, and nothing reaches stderr. `make fuzz` runs it for minutes."""
    done = subprocess.run([sys.executable, "-m", "tests.fuzz_decode", "--seconds", "15", "--seed", "2026"],
                          capture_output=True, text=True, cwd=CHECKOUT, timeout=300)
    summary = json.loads(done.stdout)
    print({k: summary[k] for k in ("cases", "outcomes", "slowest_case_s", "peak_rss_growth_kb")})
    assert summary["findings"] == [] and done.returncode == 0
    assert done.stderr == ""
    assert summary["cases"] > 1000 and summary["outcomes"].get("decoded", 0) > 100
    assert summary["peak_rss_growth_kb"] < 200 * 1024  # 4 Mpx pixel cap: 8 B/px is 32 MB


def test_cli_refuses_each_hostile_class_quickly_and_quietly(tmp_path: Path) -> None:
    """Issue 11's classes (crafted.refused) in one CLI process: the documented code for each, exit
    status 1, nothing on stderr (no libtiff or libjpeg warning), and a bound on the whole run's time."""
    paths = []
    refused = crafted.refused()
    for name in refused:
        paths.append(tmp_path / f"{name}.bin")
        paths[-1].write_bytes(refused[name][0])
    env = {**os.environ, "PYTHONPATH": str(CHECKOUT), "CRNNOCR_THREADS": "1"}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "ocr_core", "--jsonl", *map(str, paths)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert done.returncode == 1 and done.stderr == ""
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["error"]["code"] for r in records] == [code.value for _data, code in refused.values()]
    assert all(r["error"]["message"] and not re.search(r"0x[0-9a-fA-F]{6,}|/\w", r["error"]["message"])
               for r in records)
    assert elapsed < 30  # a cold CLI is ~1 s; a scan bomb decoded would take minutes
