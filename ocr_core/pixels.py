"""Decoded pixels of any mode to the pipeline's array: contiguous uint8 BGR, upright and opaque.

Everything here works a strip of rows at a time and writes straight into the final array, through
a view of it that undoes the EXIF orientation. A decode therefore holds the decoder's own buffer
plus the 3 bytes a pixel of the result, never a third full-size copy (issue 11: peak memory
follows the pixels, at most 8 bytes each).

Transparent pixels are composited over the background that contrasts most with what is drawn:
black text on a transparent PNG is put on white, white text (a dark-mode screenshot, a logo) on
black, and a picture that draws both on the mid-grey between them, where both stay legible.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image

# Pixels per strip: a few MB of temporaries, however wide the image.
STRIP_PIXELS = 1 << 18
# The share of what is drawn (alpha-weighted) that may lie beyond the background choice's
# reference points: outliers such as an anti-aliased halo or a small icon do not decide it.
BACKGROUND_QUANTILE = 0.05

Rows = Callable[[int, int], np.ndarray]
"""rows(y0, y1): rows y0..y1 of the stored image as a (y1-y0)×width×channels uint8 array."""

# Pillow's bytes per pixel by mode (everything not listed uses 4).
_PILLOW_PIXEL_SIZE = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_INTEGER_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def pillow_bytes(image: Image.Image) -> int:
    """What Pillow's decoded copy of ``image`` occupies."""
    return image.width * image.height * _PILLOW_PIXEL_SIZE.get(image.mode, 4)


def _stored_view(final: np.ndarray, orientation: int) -> np.ndarray:
    """The view of the upright ``final`` array in which pixels sit where the file stores them."""
    views = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, 1),
        7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
        8: lambda a: np.rot90(a, -1),
    }
    return views[orientation](final)


def fill(height: int, width: int, orientation: int, rows: Rows) -> np.ndarray:
    """The upright BGR image whose stored rows ``rows`` gives as BGR, EXIF ``orientation`` 1..8."""
    shape = (height, width, 3) if orientation <= 4 else (width, height, 3)
    final = np.empty(shape, dtype=np.uint8)
    stored = _stored_view(final, orientation)
    step = max(1, STRIP_PIXELS // max(width, 1))
    for y0 in range(0, height, step):
        y1 = min(height, y0 + step)
        stored[y0:y1] = rows(y0, y1)
    return final


def choose_background(height: int, width: int, bgra_rows: Rows) -> int | None:
    """The grey level to composite on, or None when every pixel is opaque.

    Built from the alpha-weighted luminance of what is drawn: with its darkest and lightest
    parts (the 5% quantiles) as reference, the background is whichever of white, black or the
    midpoint between them lies farthest from both.
    """
    histogram = np.zeros(256, dtype=np.float64)
    transparent = False
    step = max(1, STRIP_PIXELS // max(width, 1))
    for y0 in range(0, height, step):
        strip = bgra_rows(y0, min(height, y0 + step))
        alpha = strip[:, :, 3]
        if not transparent and alpha.min() < 255:
            transparent = True
        luminance = cv2.cvtColor(np.ascontiguousarray(strip), cv2.COLOR_BGRA2GRAY)
        histogram += np.bincount(luminance.ravel(), weights=alpha.ravel(), minlength=256)
    if not transparent:
        return None
    total = histogram.sum()
    if total == 0:  # nothing drawn at all
        return 255
    cumulative = np.cumsum(histogram) / total
    dark = int(np.searchsorted(cumulative, BACKGROUND_QUANTILE))
    light = int(np.searchsorted(cumulative, 1.0 - BACKGROUND_QUANTILE))
    candidates = (255, 0, (dark + light + 1) // 2)
    return max(candidates, key=lambda grey: min(abs(grey - dark), abs(grey - light)))


def composite(bgra: np.ndarray, background: int) -> np.ndarray:
    """BGRA rows over a uniform grey ``background``, rounded to the nearest level."""
    alpha = bgra[:, :, 3:4].astype(np.uint16)
    mixed = bgra[:, :, :3] * alpha + np.uint16(background) * (255 - alpha) + 127
    return (mixed // 255).astype(np.uint8)


def from_bgra(height: int, width: int, orientation: int, bgra_rows: Rows) -> np.ndarray:
    """Upright opaque BGR from BGRA rows, composited over ``choose_background``'s grey."""
    background = choose_background(height, width, bgra_rows)
    if background is None:
        return fill(height, width, orientation, lambda y0, y1: bgra_rows(y0, y1)[:, :, :3])
    return fill(height, width, orientation, lambda y0, y1: composite(bgra_rows(y0, y1), background))


def from_pillow(image: Image.Image, orientation: int) -> np.ndarray:
    """Upright opaque BGR from a loaded Pillow image of any mode (16-bit, float, palette, CMYK...)."""
    width, height = image.size
    mode = image.mode

    def strip(y0: int, y1: int) -> Image.Image:
        return image.crop((0, y0, width, y1))

    if mode in _ALPHA_MODES or (mode in ("P", "L", "RGB", "1") and "transparency" in image.info):
        def bgra(y0: int, y1: int) -> np.ndarray:
            return cv2.cvtColor(np.asarray(strip(y0, y1).convert("RGBA")), cv2.COLOR_RGBA2BGRA)

        return from_bgra(height, width, orientation, bgra)
    if mode in _INTEGER_MODES or mode == "F":
        levels = _gray_levels(image, strip)

        def bgr(y0: int, y1: int) -> np.ndarray:
            return cv2.cvtColor(levels(np.asarray(strip(y0, y1))), cv2.COLOR_GRAY2BGR)
    elif mode == "L":
        def bgr(y0: int, y1: int) -> np.ndarray:
            return cv2.cvtColor(np.asarray(strip(y0, y1)), cv2.COLOR_GRAY2BGR)
    else:
        def bgr(y0: int, y1: int) -> np.ndarray:
            part = strip(y0, y1)
            rgb = part if part.mode == "RGB" else part.convert("RGB")
            return cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2BGR)

    return fill(height, width, orientation, bgr)


Strip = Callable[[int, int], Image.Image]


def _gray_levels(image: Image.Image, strip: Strip) -> Callable[[np.ndarray], np.ndarray]:
    """8-bit levels for 16-bit, 32-bit and float grey: the top byte when the values use more than
    8 bits (a 16-bit scan), the values themselves when they do not (8-bit data in a wide mode)."""
    if image.mode == "F":
        return lambda values: np.nan_to_num(values).clip(0, 255).astype(np.uint8)
    step = max(1, STRIP_PIXELS // max(image.width, 1))
    top = max(int(np.asarray(strip(y0, min(image.height, y0 + step))).max(initial=0))
              for y0 in range(0, image.height, step))
    shift = 8 if top > 255 else 0
    return lambda values: (values >> shift).clip(0, 255).astype(np.uint8)
