"""Page geometry: margins before detection, reading order of lines, and rectified line crops."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

# Reading order. A column split needs both sides to look like columns of text: at least this
# many lines each, at least this share of the region's width each, and lines that fill most
# of their column. Item/price columns on a receipt and key/value pairs on a form fail that test
# and stay in row order, which is how they are read.
COLUMN_MIN_LINES = 3
COLUMN_MIN_SHARE = 0.25
COLUMN_MIN_FILL = 0.5


def detection_margin(height: int, width: int) -> int:
    """Margin added around an image before detection.

    DB detectors lose characters that touch the image border; tight crops of a single line are
    the worst case, so the margin grows with the image's short side, within 16..64 px.
    """
    return int(min(64, max(16, min(height, width) // 2)))


def add_margin(bgr: np.ndarray, margin: int) -> np.ndarray:
    """Pad with the border's median colour, so the margin reads as background."""
    border = np.concatenate([bgr[0], bgr[-1], bgr[:, 0], bgr[:, -1]])
    colour = [int(c) for c in np.median(border, axis=0)]
    return cv2.copyMakeBorder(bgr, margin, margin, margin, margin, cv2.BORDER_CONSTANT, value=colour)


def _gaps(lows: np.ndarray, highs: np.ndarray) -> list[tuple[float, float]]:
    """Empty intervals between the union of [low, high] intervals, as (start, end)."""
    order = np.argsort(lows)
    gaps = []
    reach = highs[order[0]]
    for i in order[1:]:
        if lows[i] > reach:
            gaps.append((float(reach), float(lows[i])))
        reach = max(reach, highs[i])
    return gaps


def _rows(bounds: np.ndarray, idx: list[int]) -> list[int]:
    """Group boxes into visual rows (vertical overlap of half the smaller height), left to right."""
    rows: list[list[int]] = []
    for i in sorted(idx, key=lambda j: (bounds[j, 1] + bounds[j, 3]) / 2):
        y0, y1 = bounds[i, 1], bounds[i, 3]
        for row in reversed(rows[-3:]):
            r0 = np.median(bounds[row, 1])
            r1 = np.median(bounds[row, 3])
            overlap = min(y1, r1) - max(y0, r0)
            if overlap >= 0.5 * min(y1 - y0, r1 - r0):
                row.append(i)
                break
        else:
            rows.append([i])
    return [i for row in rows for i in sorted(row, key=lambda j: bounds[j, 0])]


def _is_column(bounds: np.ndarray, idx: list[int], region_width: float) -> bool:
    if len(idx) < COLUMN_MIN_LINES:
        return False
    x0, x1 = bounds[idx, 0].min(), bounds[idx, 2].max()
    width = x1 - x0
    if width < COLUMN_MIN_SHARE * region_width:
        return False
    return float(np.median(bounds[idx, 2] - bounds[idx, 0])) >= COLUMN_MIN_FILL * width


def _column_split(bounds: np.ndarray, idx: list[int]) -> tuple[list[int], list[int]] | None:
    """The widest vertical gutter that leaves a column of text on each side, if any."""
    sub = bounds[idx]
    region_width = float(sub[:, 2].max() - sub[:, 0].min())
    for start, end in sorted(_gaps(sub[:, 0], sub[:, 2]), key=lambda g: g[0] - g[1]):
        cut = (start + end) / 2
        left = [i for i in idx if bounds[i, 2] <= cut]
        right = [i for i in idx if bounds[i, 0] >= cut]
        if _is_column(bounds, left, region_width) and _is_column(bounds, right, region_width):
            return left, right
    return None


def _ordered(bounds: np.ndarray, idx: list[int]) -> list[int]:
    """Rows, unless the region holds columns of text: then each column in turn.

    Columns may sit below a full-width heading, so a horizontal cut is made where it lets a
    column split appear beneath or above it; row order is kept everywhere else, which is how
    receipts and forms are read.
    """
    if len(idx) < 2 * COLUMN_MIN_LINES:
        return _rows(bounds, idx)
    split = _column_split(bounds, idx)
    if split is not None:
        return _ordered(bounds, split[0]) + _ordered(bounds, split[1])
    sub = bounds[idx]
    for start, end in sorted(_gaps(sub[:, 1], sub[:, 3]), key=lambda g: g[0] - g[1]):
        cut = (start + end) / 2
        top = [i for i in idx if bounds[i, 3] <= cut]
        bottom = [i for i in idx if bounds[i, 1] >= cut]
        if _column_split(bounds, top) is not None or _column_split(bounds, bottom) is not None:
            return _ordered(bounds, top) + _ordered(bounds, bottom)
    return _rows(bounds, idx)


def reading_order(quads: Sequence[np.ndarray]) -> list[int]:
    """Indices of ``quads`` in reading order: columns of text one after the other, each top to
    bottom; within a row, left to right."""
    if not quads:
        return []
    # Upright bounds of slanted lines overlap the next line's: undo the page's skew first.
    deskewed = _deskewed(np.asarray(quads, dtype=np.float64))
    bounds = np.column_stack([deskewed[:, :, 0].min(axis=1), deskewed[:, :, 1].min(axis=1),
                              deskewed[:, :, 0].max(axis=1), deskewed[:, :, 1].max(axis=1)])
    # Shrink boxes vertically a little: detector boxes of neighbouring lines overlap slightly,
    # which would hide the gaps between rows.
    heights = bounds[:, 3] - bounds[:, 1]
    bounds[:, 1] += heights * 0.15
    bounds[:, 3] -= heights * 0.15
    return _ordered(bounds, list(range(len(quads))))


def _deskewed(quads: np.ndarray) -> np.ndarray:
    """Quads (N×4×2, clockwise from top-left) rotated by minus the page's skew.

    The skew is the median slant of the top edges of wide boxes (lines of text rather than
    words), so a photographed page tilted by a few degrees is ordered like a flat scan.
    """
    top = quads[:, 1] - quads[:, 0]
    side = np.linalg.norm(quads[:, 3] - quads[:, 0], axis=1)
    wide = np.linalg.norm(top, axis=1) > 2 * side
    if not wide.any():
        return quads
    angle = float(np.median(np.arctan2(top[wide, 1], top[wide, 0])))
    cos, sin = np.cos(-angle), np.sin(-angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    return quads @ rotation.T


def crop_quad(bgr: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The quadrilateral's content warped to an upright rectangle; tall crops are turned to lie flat."""
    tl, tr, br, bl = quad.astype(np.float32)
    width = round(float(max(np.linalg.norm(tr - tl), np.linalg.norm(br - bl))))
    height = round(float(max(np.linalg.norm(bl - tl), np.linalg.norm(br - tr))))
    width, height = max(width, 1), max(height, 1)
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    crop = cv2.warpPerspective(
        bgr, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    if height >= 1.5 * width:
        crop = np.ascontiguousarray(np.rot90(crop))
    return crop
