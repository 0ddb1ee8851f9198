"""Decoding: every supported format and pixel mode, and hostile input refused with the right code."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ocr_core import Engine, RecognizeOptions
from ocr_core.errors import ErrorCode, OcrError
from ocr_core.image import decode_image, sniff_format
from tests.support import CHECKOUT, png_header_only, render_text

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
