"""Page geometry: the margin added before detection, rectified line crops and their frames."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .median import median


def detection_margin(height: int, width: int) -> int:
    """Margin added around an image before detection.

    DB detectors lose characters that touch the image border; tight crops of a single line are
    the worst case, so the margin grows with the image's short side, within 16..64 px.
    """
    return int(min(64, max(16, min(height, width) // 2)))


def add_margin(bgr: np.ndarray, margin: int) -> np.ndarray:
    """Pad with the border's median colour, so the margin reads as background."""
    border = np.concatenate([bgr[0], bgr[-1], bgr[:, 0], bgr[:, -1]])
    colour = [int(c) for c in median(border, axis=0)]
    return cv2.copyMakeBorder(bgr, margin, margin, margin, margin, cv2.BORDER_CONSTANT, value=colour)


@dataclass(frozen=True)
class CropFrame:
    """How a line crop relates to the page: the quadrilateral warped to an upright ``width`` ×
    ``height`` rectangle by ``matrix`` (page → rectangle), then turned a quarter counter-clockwise
    when ``turned`` (tall text is laid flat for the recogniser)."""

    width: int
    height: int
    matrix: np.ndarray
    turned: bool

    @classmethod
    def rows(cls, top: int, bottom: int, width: int) -> CropFrame:
        """The frame of an image's rows ``[top, bottom)`` read as they are (line mode)."""
        return cls(width, bottom - top, np.array([[1.0, 0, 0], [0, 1, -top], [0, 0, 1]]), False)

    def warp(self, bgr: np.ndarray) -> np.ndarray:
        crop = cv2.warpPerspective(bgr, self.matrix, (self.width, self.height), flags=cv2.INTER_CUBIC,
                                   borderMode=cv2.BORDER_REPLICATE)
        return np.ascontiguousarray(np.rot90(crop)) if self.turned else crop

    @property
    def reading_width(self) -> int:
        """Width of the crop as the recogniser reads it (after the turn)."""
        return self.height if self.turned else self.width

    @property
    def reading_height(self) -> int:
        return self.width if self.turned else self.height

    def spans_to_page(self, spans: np.ndarray) -> np.ndarray:
        """Page quadrilaterals (N×4×2, in the corner order of the line's own quad), each covering
        the crop's full height between ``x0`` and ``x1`` of a row of ``spans`` (N×2), measured
        along the text as the recogniser reads it."""
        x0, x1 = spans[:, 0], spans[:, 1]
        if self.turned:
            # rot90 sends the rectangle's (x, y) to (y, width - x): a span of the turned crop
            # is a band of the rectangle's rows.
            zero, full = np.zeros_like(x0), np.full_like(x0, self.width)
            corners = [(zero, x0), (full, x0), (full, x1), (zero, x1)]
        else:
            zero, full = np.zeros_like(x0), np.full_like(x0, self.height)
            corners = [(x0, zero), (x1, zero), (x1, full), (x0, full)]
        points = np.stack([np.stack(corner, axis=-1) for corner in corners], axis=1).astype(np.float64)
        page = cv2.perspectiveTransform(points.reshape(1, -1, 2), np.linalg.inv(self.matrix))
        return page.reshape(-1, 4, 2)


def crop_frame(quad: np.ndarray) -> CropFrame:
    """The frame that rectifies ``quad``: its longer sides set the size; tall crops are turned."""
    tl, tr, br, bl = quad.astype(np.float32)
    width = round(float(max(np.linalg.norm(tr - tl), np.linalg.norm(br - bl))))
    height = round(float(max(np.linalg.norm(bl - tl), np.linalg.norm(br - tr))))
    width, height = max(width, 1), max(height, 1)
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    return CropFrame(width, height, matrix, height >= 1.5 * width)

