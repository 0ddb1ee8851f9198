"""The pipeline on images rendered here from Debian fonts: text, boxes, order, threads, options."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from ocr_core import Engine, EngineConfig, RecognizeOptions
from ocr_core.detect import channel_medians
from ocr_core.errors import ErrorCode, OcrError
from ocr_core.layout import detection_margin
from ocr_core.packs import installed_packs
from ocr_core.process import available_cores
from tests.support import FONT, render_text

PAGE_LINES = ["Order 1187 shipped", "Total due: 42.50 EUR", "Thank you, Alice"]


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def tight_line(text: str, height: int = 40) -> bytes:
    """A line cropped to its ink with no margin, like the SROIE crops: edge glyphs touch the border."""
    font = ImageFont.truetype(str(FONT), height)
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("L", (right - left, bottom - top), 255)
    ImageDraw.Draw(image).text((-left, -top), text, font=font, fill=0)
    return png(image)


def test_line_mode_reads_a_rendered_line(engine: Engine) -> None:
    result = engine.recognize(render_text(["Invoice 2026-11 total 318.40"]), RecognizeOptions(mode="line"))
    assert result.text == "Invoice 2026-11 total 318.40"
    assert len(result.lines) == 1
    assert result.lines[0].box == ((0.0, 0.0), (result.width, 0.0), (result.width, result.height),
                                   (0.0, result.height))


def test_page_mode_reads_lines_in_order_with_boxes_in_bounds(engine: Engine) -> None:
    result = engine.recognize(render_text(PAGE_LINES))
    assert result.text.splitlines() == PAGE_LINES
    for line in result.lines:
        assert 0.9 < line.score <= 1.0
        xs, ys = zip(*line.box, strict=True)
        assert 0 <= min(xs) <= max(xs) <= result.width
        assert 0 <= min(ys) <= max(ys) <= result.height
    tops = [line.box[0][1] for line in result.lines]
    assert tops == sorted(tops)


@pytest.mark.parametrize("text", ["WELCOME", "Total 9.99", "Kuala Lumpur"])
def test_tight_single_line_in_page_mode_keeps_edge_characters(engine: Engine, text: str) -> None:
    assert engine.recognize(tight_line(text)).text == text


def test_detector_never_upscales_a_thin_line(engine: Engine) -> None:
    detector = engine._detector.get()
    height, width = 40, 900
    margin = detection_margin(height, width)
    blank = np.full((height + 2 * margin, width + 2 * margin, 3), 255, np.uint8)
    tensor, scale = detector._prepare(blank, 960)
    assert scale == 1.0
    assert tensor.shape[2] <= height + 2 * margin + 31


def test_result_dict_is_the_documented_schema(engine: Engine) -> None:
    doc = engine.recognize(render_text(PAGE_LINES)).to_dict()
    assert set(doc) == {"ok", "text", "lines", "image", "model", "timing_ms"}
    assert doc["ok"] is True and doc["model"] == engine.pack
    assert set(doc["image"]) == {"width", "height"}
    assert set(doc["timing_ms"]) == {"decode", "detect", "classify", "recognize", "total"}
    line = doc["lines"][0]
    assert set(line) == {"text", "score", "box", "block", "row"}
    assert len(line["box"]) == 4 and all(len(p) == 2 for p in line["box"])


def test_min_score_drops_lines(engine: Engine) -> None:
    image = render_text(PAGE_LINES)
    assert engine.recognize(image, RecognizeOptions(min_score=1.0)).lines == ()
    assert len(engine.recognize(image, RecognizeOptions(min_score=0.0)).lines) == len(PAGE_LINES)


def test_classifier_turns_upside_down_lines(engine: Engine) -> None:
    upright = Image.open(io.BytesIO(render_text(["Upside down receipt"])))
    flipped = png(upright.rotate(180))
    assert engine.recognize(flipped, RecognizeOptions(use_cls=True)).text == "Upside down receipt"
    assert engine.recognize(flipped, RecognizeOptions(use_cls=True)).timings.classify > 0


def test_blank_page_is_an_empty_success(engine: Engine) -> None:
    result = engine.recognize(png(Image.new("RGB", (640, 480), "white")))
    assert result.lines == () and result.text == ""


def test_first_calls_from_many_threads_load_the_detector_once() -> None:
    fresh = Engine.load(EngineConfig.from_env(threads=1))
    start = threading.Barrier(4)

    def call(_: int) -> str:
        start.wait()
        return fresh.recognize(render_text(["Race at start"])).text

    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(call, range(4))) == {"Race at start"}


@pytest.mark.parametrize("pack", installed_packs(EngineConfig().model_dir) or ["(none installed)"])
def test_every_installed_pack_reads_a_line(pack: str) -> None:
    if pack == "(none installed)":
        pytest.skip("SKIPPED LOUDLY: no model pack installed; run `make models-all`")
    engine = Engine.load(EngineConfig.from_env(pack=pack, threads=1))
    assert engine.recognize(tight_line("Hello world 2026"), RecognizeOptions(mode="line")).text == \
        "Hello world 2026"
    # PP-OCRv4 drops most spaces in English; compare the characters.
    assert engine.recognize(render_text(PAGE_LINES)).text.replace(" ", "").splitlines() == \
        [line.replace(" ", "") for line in PAGE_LINES]


def test_bad_options_are_bad_requests() -> None:
    with pytest.raises(OcrError) as caught:
        RecognizeOptions(mode="column")  # type: ignore[arg-type]
    assert caught.value.code is ErrorCode.BAD_REQUEST
    with pytest.raises(OcrError):
        RecognizeOptions(min_score=1.5)
    with pytest.raises(OcrError):
        EngineConfig.from_env({"CRNNOCR_THREADS": "many"})
    assert EngineConfig.from_env({"CRNNOCR_MAX_BYTES": "1000", "CRNNOCR_PACK": "ppocr-v4"}).max_bytes == 1000


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 2, 3), (3, 5, 3), (64, 97, 3)])
def test_channel_medians_equal_numpy_median(shape: tuple[int, int, int]) -> None:
    """The detector pads with the page's median colour, read off histograms; it must be exact."""
    rng = np.random.default_rng(sum(shape))
    for image in (
        rng.integers(0, 256, size=shape, dtype=np.uint8),
        rng.integers(100, 103, size=shape, dtype=np.uint8),  # many ties, even and odd counts
    ):
        expected = np.median(image.reshape(-1, 3), axis=0).astype(np.float32)
        assert np.array_equal(channel_medians(image), expected)


def test_all_cores_means_the_cores_this_process_may_use() -> None:
    """threads=0 resolves to the affinity mask's physical cores (a cpuset of one core -> 1 thread)."""
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
        "from ocr_core.process import available_cores; print(available_cores())"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "1"
    assert 1 <= available_cores() <= len(os.sched_getaffinity(0))
