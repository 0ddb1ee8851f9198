"""Issue 15: small whole pages (300-500 px on a side) lost lines and fused words.

Detection used to only ever shrink, so the text of a small page stayed a few pixels tall in the
detector's map: close lines merged into one box (one of them lost) and separate words of a row
fused ("5.8" and "起" → "5.8起"). ``detect.detection_scale`` now enlarges a page towards the
detector's size, by 1.1× to 2×, and never a line-sized image.
"""

from __future__ import annotations

import pytest

from ocr_core import Engine
from ocr_core.config import EngineConfig
from ocr_core.detect import MAX_UPSCALE, MIN_UPSCALE, PAGE_MIN_SIDE, detection_scale
from ocr_core.layout import detection_margin
from tests import small_pages

MAX_SIDE = EngineConfig().det_max_side


def framed(height: int, width: int) -> tuple[int, int]:
    """The size the detector is given: the image with its margin on every side."""
    margin = detection_margin(height, width)
    return height + 2 * margin, width + 2 * margin


def test_a_small_page_is_enlarged_towards_the_detector_size_at_most_twice() -> None:
    assert detection_scale(*framed(400, 500), MAX_SIDE) == pytest.approx(MAX_SIDE / (500 + 2 * 64))
    assert detection_scale(*framed(186, 300), MAX_SIDE) == MAX_UPSCALE  # a receipt 300 px wide
    assert detection_scale(*framed(128, 128), MAX_SIDE) == MAX_UPSCALE  # the smallest "page"
    assert detection_scale(*framed(MAX_SIDE - 128, 700), MAX_SIDE) == 1.0  # already its size
    # Less than MIN_UPSCALE short of it: not worth a resample.
    assert detection_scale(*framed(round(MAX_SIDE / MIN_UPSCALE) - 127, 700), MAX_SIDE) == 1.0
    assert detection_scale(*framed(round(MAX_SIDE / MIN_UPSCALE) - 129, 700), MAX_SIDE) >= MIN_UPSCALE
    assert detection_scale(*framed(3000, 2000), MAX_SIDE) == pytest.approx(MAX_SIDE / (3000 + 128))


@pytest.mark.parametrize(("height", "width"), [(40, 300), (64, 700), (127, 500), (12, 31), (300, 60)])
def test_a_line_sized_image_is_never_enlarged(height: int, width: int) -> None:
    """A line (or a column of text) under 128 px across keeps its size: its text is already large."""
    assert min(framed(height, width)) < PAGE_MIN_SIDE
    assert detection_scale(*framed(height, width), MAX_SIDE) == 1.0


def test_a_thin_image_too_long_for_the_detector_is_still_shrunk() -> None:
    assert detection_scale(*framed(40, 9000), MAX_SIDE) == pytest.approx(MAX_SIDE / (9000 + 40))


WIDTHS = (300, 400, 500)
PAGES = {
    **{f"receipt-{w}": (lambda w=w: small_pages.receipt(w, seed=w)) for w in WIDTHS},
    **{f"menu-{w}": (lambda w=w: small_pages.menu(w, seed=w, font_px=max(11, w // 30), pitch=1.2))
       for w in WIDTHS},
    **{f"menu-zh-{w}": (lambda w=w: small_pages.menu(w, seed=w, font_px=max(12, w // 28), pitch=1.2,
                                                     chinese=True)) for w in WIDTHS},
    # Lines 1.1 × the font size apart: 1-2 px of white between two rows of CJK glyphs, which
    # merged into one box (and lost 3-13 lines of a menu) before enlarging.
    **{f"menu-zh-close-{w}": (lambda w=w: small_pages.menu(w, seed=w + 1, font_px=max(12, w // 28), pitch=1.1,
                                                           chinese=True)) for w in WIDTHS},
    **{f"price-tag-{w}": (lambda w=w: small_pages.price_tag(w, seed=w, big_px=w // 8)) for w in WIDTHS},
}


@pytest.mark.parametrize("name", list(PAGES))
def test_every_line_and_word_of_a_small_page_is_read_apart(engine: Engine, name: str) -> None:
    page = PAGES[name]()
    lost, fused = small_pages.check(page, engine.recognize(page.png).text.splitlines())
    assert (lost, fused) == ([], []), page.text
