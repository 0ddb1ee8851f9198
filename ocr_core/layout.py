"""Page geometry: the margin added before detection, and rectified line crops."""

from __future__ import annotations

import cv2
import numpy as np


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
