"""Issue 15: a tall line image in line mode (text a third of its height) lost letters.

Shrunk whole to the recogniser's 48 px, the letters of a 122 px high image with 40 px text were
16 px tall, and "frequentissime" read "frequenissime". The recogniser now cuts a crop down to its
text's band first (``recognize.text_band``), so the text fills the model's height as in training.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from ocr_core import Engine, RecognizeOptions
from ocr_core.recognize import TEXT_MARGIN_RATIO, text_band
from tests.support import FONT

DEJAVU = FONT.parent
NOTO = "/usr/share/fonts/opentype/noto"
FONTS = {
    "sans": str(FONT),
    "serif": str(DEJAVU / "DejaVuSerif.ttf"),
    "bold": str(DEJAVU / "DejaVuSans-Bold.ttf"),
    "noto-serif": f"{NOTO}/NotoSerifCJK-Regular.ttc",
    "noto-sans": f"{NOTO}/NotoSansCJK-Regular.ttc",
}


def tall_line(text: str, font: str, height: int, fill: float, top: float) -> bytes:
    """``text`` in a JPEG ``height`` px high, its font size ``fill`` × the height, the text's top
    ``top`` of the way down the free space; dark grey on off-white, as a scan or a photo."""
    face = ImageFont.truetype(font, round(height * fill))
    width = round(face.getlength(text)) + 2 * face.size // 3
    image = Image.new("L", (width, height), 245)
    ascent, descent = face.getmetrics()
    y = round((height - ascent - descent) * top)
    ImageDraw.Draw(image).text((face.size // 3, y), text, font=face, fill=30)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


# (text, font, image height, font size / height, where the text sits): the line and its
# kind, text from a third of the height (the lost letters) to most of it (must stay right).
CASES = [
    ("frequentissime", "sans", 122, 0.33, 0.5),
    ("frequentissime", "serif", 122, 0.33, 0.2),
    ("necessitudine", "sans", 160, 0.3, 0.5),
    ("fortissimum voluptatem", "serif", 160, 0.3, 0.8),
    ("multitudinem consuetudinem", "noto-sans", 122, 0.3, 0.3),
    ("humanitatis perspicuitas", "noto-serif", 160, 0.3, 0.6),
    ("sapientissime", "bold", 96, 0.3, 0.5),
    ("quemadmodum reipublicae", "sans", 122, 0.6, 0.5),
    ("exquisitissimis", "serif", 96, 0.8, 0.5),
]


@pytest.mark.parametrize(("text", "font", "height", "fill", "top"), CASES,
                         ids=[f"{c[1]}-{c[2]}px-{c[3]}" for c in CASES])
def test_a_tall_line_image_reads_every_letter(engine: Engine, text: str, font: str, height: int,
                                              fill: float, top: float) -> None:
    data = tall_line(text, FONTS[font], height, fill, top)
    assert engine.recognize(data, RecognizeOptions(mode="line")).text == text


def test_text_band_cuts_only_the_background_beyond_its_margin() -> None:
    crop = np.full((120, 300, 3), 250, dtype=np.uint8)
    crop[40:80, 20:280] = 10  # 40 px of "text"
    crop[5, 5] = 240  # noise far below the ink's contrast is not text
    keep = int(np.ceil(TEXT_MARGIN_RATIO * 40))
    band = text_band(crop)
    assert band.shape == (40 + 2 * keep, 300, 3)
    assert np.shares_memory(band, crop)  # a view: a page-sized line image is not copied

    tight = crop[30:90]  # already within the margin: unchanged
    assert text_band(tight).shape == tight.shape
    light_on_dark = 255 - crop[:, :, 0]
    assert text_band(light_on_dark).shape == (40 + 2 * keep, 300)
    blank = np.full((64, 200), 255, dtype=np.uint8)
    assert text_band(blank).shape == blank.shape
