"""DB (differentiable binarisation) text detector: a page in, text-line quadrilaterals out.

The image is resized by ``detection_scale`` (shrunk to fit ``max_side``; a small page enlarged
towards it, a line never), padded to a multiple of 32 (or the next size the runtime prefers:
``InferenceModel.fit``), and run once. The probability map is thresholded; each connected
region becomes its minimum-area rectangle, is scored by the mean probability inside it, and is
expanded ("unclipped") by ``area * unclip_ratio / perimeter`` on every side. For a rectangle that
expansion is exact: the offset polygon's minimum-area rectangle grows by the offset on each side,
so no polygon clipping library is needed.

Every connected region is looked at (an image has at most one per few pixels of the map, and
the call's deadline is checked as they are), and a page with more regions worth reading than
the engine's limit is refused as soon as the count passes it, before a line is cropped or read.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .backends import InferenceModel
from .deadline import NO_DEADLINE, Deadline
from .errors import ErrorCode, OcrError
from .packs import DetSpec

Quad = np.ndarray  # float32 (4, 2), clockwise from top-left, in input-image pixels

# Enlargement of a small page, from least to most: under 1.1× its 10 px characters grow by less
# than a pixel, not worth a resample; 2× brings the text of a 300-500 px page to the size at which
# the model separates close lines and words, where more would only blur.
MIN_UPSCALE = 1.1
MAX_UPSCALE = 2.0
# An input whose short side is below this holds a line or two (an image under 128 px high plus
# its 64 px margins, see ``layout.detection_margin``), whose text is already as large as the
# detector needs: it is never enlarged.
PAGE_MIN_SIDE = 256


def detection_scale(height: int, width: int, max_side: int) -> float:
    """The factor a ``height``×``width`` detector input is resized by: its long side is brought
    to ``max_side``, shrinking always, enlarging only a page and only by ``MIN_UPSCALE`` to
    ``MAX_UPSCALE``."""
    scale = max_side / max(height, width)
    if scale > 1.0 and (min(height, width) < PAGE_MIN_SIDE or scale < MIN_UPSCALE):
        return 1.0
    return min(scale, MAX_UPSCALE)


@dataclass(frozen=True)
class DetectorParams:
    threshold: float = 0.3
    box_threshold: float = 0.5
    unclip_ratio: float = 1.6
    min_side: float = 3.0


def order_quad(points: np.ndarray) -> Quad:
    """Four points clockwise from top-left: the two leftmost are the left edge, each pair split by y."""
    pts = points[np.argsort(points[:, 0])]
    left, right = pts[:2], pts[2:]
    tl, bl = left[np.argsort(left[:, 1])]
    tr, br = right[np.argsort(right[:, 1])]
    return np.array([tl, tr, br, bl], dtype=np.float32)


def channel_medians(image: np.ndarray) -> np.ndarray:
    """Exact per-channel median of a uint8 image, read off its histograms (np.median sorts: ~4x slower)."""
    n = image.shape[0] * image.shape[1]
    medians = []
    for channel in range(image.shape[2]):
        at_most = cv2.calcHist([image], [channel], None, [256], [0, 256]).ravel().cumsum()
        # The value at sorted position k is the first v with more than k values <= v.
        low, high = np.searchsorted(at_most, [(n - 1) // 2, n // 2], side="right")
        medians.append((low + high) / 2.0)
    return np.array(medians, dtype=np.float32)


class Detector:
    """Immutable after construction; ``detect`` may run in many threads at once."""

    def __init__(self, model: InferenceModel, spec: DetSpec, params: DetectorParams | None = None) -> None:
        self._model = model
        self._mean = np.array(spec.mean, dtype=np.float32) * 255.0
        self._inv_std = 1.0 / (np.array(spec.std, dtype=np.float32) * 255.0)
        self._params = params or DetectorParams()

    def _prepare(self, bgr: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
        h, w = bgr.shape[:2]
        scale = detection_scale(h, w, max_side)
        rh, rw = max(1, round(h * scale)), max(1, round(w * scale))
        interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
        resized = cv2.resize(bgr, (rw, rh), interpolation=interpolation) if scale != 1.0 else bgr
        limit = -(-max_side // 32) * 32
        ph, pw = self._model.fit(rh, 32, limit), self._model.fit(rw, 32, limit)
        tensor = np.empty((1, 3, ph, pw), dtype=np.float32)
        # Plane by plane: normalising the HxWx3 array at once broadcasts over an innermost axis of
        # 3, which numpy runs ~5x slower (10 ms of a receipt).
        for channel in range(3):
            plane = tensor[0, channel, :rh, :rw]
            plane[...] = resized[:, :, channel]
            plane -= self._mean[channel]
            plane *= self._inv_std[channel]
        # The padding must look like background to the model, not like a dark frame.
        if ph > rh or pw > rw:
            edge = (channel_medians(resized) - self._mean) * self._inv_std
            tensor[0, :, rh:, :] = edge[:, None, None]
            tensor[0, :, :rh, rw:] = edge[:, None, None]
        return tensor, scale

    def detect(self, bgr: np.ndarray, max_side: int, *, max_regions: int,
               deadline: Deadline = NO_DEADLINE) -> list[tuple[Quad, float]]:
        """Quadrilaterals (in ``bgr``'s pixels) with their scores, in no particular order.

        Raises OcrError(too_many_regions) once more than ``max_regions`` are found, and
        OcrError(timeout) when ``deadline`` passes.
        """
        h, w = bgr.shape[:2]
        tensor, scale = self._prepare(bgr, max_side)
        prob = self._model.run(tensor)[0, 0]
        rh, rw = max(1, round(h * scale)), max(1, round(w * scale))
        prob = prob[:rh, :rw]
        return [(quad / scale, score) for quad, score in self._boxes(prob, max_regions, deadline)]

    def _boxes(self, prob: np.ndarray, max_regions: int, deadline: Deadline) -> list[tuple[Quad, float]]:
        p = self._params
        mask = (prob > p.threshold).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        h, w = prob.shape
        found: list[tuple[Quad, float]] = []
        for contour in contours:
            deadline.check("text detection")
            rect = cv2.minAreaRect(contour)
            if min(rect[1]) < p.min_side:
                continue
            score = self._region_score(prob, contour)
            if score < p.box_threshold:
                continue
            (cx, cy), (rw, rh), angle = rect
            offset = rw * rh * p.unclip_ratio / (2.0 * (rw + rh))
            grown = ((cx, cy), (rw + 2 * offset, rh + 2 * offset), angle)
            if min(grown[1]) < p.min_side + 2:
                continue
            quad = order_quad(cv2.boxPoints(grown))
            quad[:, 0] = np.clip(quad[:, 0], 0, w)
            quad[:, 1] = np.clip(quad[:, 1], 0, h)
            found.append((quad, score))
            if len(found) > max_regions:
                raise OcrError(
                    ErrorCode.TOO_MANY_REGIONS,
                    f"the page has more than {max_regions} text regions, the limit for one page",
                )
        return found

    @staticmethod
    def _region_score(prob: np.ndarray, contour: np.ndarray) -> float:
        """Mean probability inside the contour (its bounding box only, for speed)."""
        x, y, w, h = cv2.boundingRect(contour)
        mask = np.zeros((h, w), dtype=np.uint8)
        cv2.fillPoly(mask, [contour.reshape(-1, 2) - (x, y)], 1)
        return float(cv2.mean(prob[y:y + h, x:x + w], mask)[0])
