"""0/180° line orientation classifier: flags crops that are upside down so they can be turned."""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from .backends import InferenceModel
from .deadline import NO_DEADLINE, Deadline
from .packs import ClsSpec

BATCH = 8


class OrientationClassifier:
    """Immutable after construction; ``upside_down`` may run in many threads at once."""

    def __init__(self, model: InferenceModel, spec: ClsSpec, threshold: float = 0.9) -> None:
        self._model = model
        self._spec = spec
        self._flipped_index = spec.labels.index(180)
        self._threshold = threshold

    def _prepare(self, crop: np.ndarray) -> np.ndarray:
        h, w = crop.shape[:2]
        spec = self._spec
        width = min(spec.width, max(1, math.ceil(spec.height * w / max(h, 1))))
        resized = cv2.resize(crop, (width, spec.height)).astype(np.float32)
        tensor = np.zeros((3, spec.height, spec.width), dtype=np.float32)
        tensor[:, :, :width] = ((resized / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)
        return tensor

    def upside_down(self, crops: Sequence[np.ndarray], deadline: Deadline = NO_DEADLINE) -> list[bool]:
        """For each crop, whether the model is confident it is rotated by 180°; ``deadline`` is
        checked before each batch."""
        flags: list[bool] = []
        for start in range(0, len(crops), BATCH):
            deadline.check("line orientation")
            batch = np.stack([self._prepare(c) for c in crops[start:start + BATCH]])
            probs = self._model.run(batch)
            flags.extend(
                bool(p.argmax() == self._flipped_index and p[self._flipped_index] >= self._threshold)
                for p in probs
            )
        return flags
