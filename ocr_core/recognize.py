"""CTC line recogniser (CRNN family): text-line crops in, (text, confidence) out.

Crops are resized to the model's height keeping their aspect ratio, grouped into batches of
similar width (so little of each batch is padding), run, and decoded greedily: the best class per
time step, repeats collapsed, blanks removed. The confidence is the mean probability of the
characters kept. Each character also keeps where it was read: the run of time steps that emitted
it, in pixels of the crop as given (the model's stride and the resize undone), from which
``ocr_core.words`` places the words. A whole image read as one line is first cut down to its text
(``text_rows``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .backends import InferenceModel
from .deadline import NO_DEADLINE, Deadline
from .errors import ErrorCode, OcrError
from .median import median
from .packs import PackSpec

# Widest input fed to the recogniser, in multiples of its height. Longer lines are squeezed:
# beyond this a line is either not text or costs more than it can be worth.
MAX_WIDTH_RATIO = 80
# Upper bound on input pixels per batch. Every crop of a batch is padded to the widest one, so
# small batches waste less; below about two lines, per-run overhead wins. Measured on the sroie
# receipts (2 threads): recognition 48×640 px per batch ~565 ms vs 48×2560 ~610-660 ms, CER
# 0.0728 -> 0.0729; funsd forms 0.1440 -> 0.1431.
MAX_BATCH_PIXELS = 48 * 640
# Padding after the widest crop of a batch, in multiples of the input height. CTC needs a few
# time steps after the last glyph to emit it cleanly; PP-OCR was trained on padded inputs.
# Measured on ../shared/eval line crops: SROIE CER 0.0165 -> 0.0141, synth zh 0.0262 -> 0.0253.
TRAILING_PAD_RATIO = 0.5
# Background kept above and below a line image's text, in multiples of the text's height. An
# image with more (122 px high, its letters 40 px tall) is cut down to it before the resize, so the
# text fills the model's height as in the crops PP-OCR was trained on, instead of being shrunk to a
# third of it and losing letters ("frequentissime" read "frequenissime"). Rendered tall lines read
# the same with 0.15..0.5. Detected crops are not cut: the detector already fits them to the text.
TEXT_MARGIN_RATIO = 0.3
# A row holds text when some pixel differs from the background by this share of the largest
# difference in the crop: JPEG noise and faint anti-aliasing stay below it.
INK_SHARE = 0.25
# Pixels per strip when scanning a crop's rows: a line-mode image may be a whole page, and a
# full-size int16 copy of it would break decoding's 8 bytes a pixel.
_STRIP_PIXELS = 1 << 18


def load_charset(model: InferenceModel, spec: PackSpec, model_dir: Path) -> tuple[str, ...]:
    """The class labels: index 0 is the CTC blank (""), then the charset, then " " if appended."""
    rec = spec.rec
    if rec.charset_key is not None:
        meta = model.metadata
        if rec.charset_key not in meta:
            raise OcrError(
                ErrorCode.MODEL_UNAVAILABLE,
                f"recogniser of pack {spec.name!r} has no metadata key {rec.charset_key!r}",
            )
        chars = meta[rec.charset_key].splitlines()
    else:
        path = spec.path(model_dir, "charset")
        try:
            chars = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise OcrError(ErrorCode.MODEL_UNAVAILABLE, f"the charset of pack {spec.name!r} cannot be read",
                           f"{path}: {exc}") from None
    labels = ("", *chars, *((" ",) if rec.append_space else ()))
    classes = model.output_dim
    if classes is not None and classes != len(labels):
        raise OcrError(
            ErrorCode.MODEL_UNAVAILABLE,
            f"pack {spec.name!r}: the charset gives {len(labels)} classes but the model outputs {classes}",
        )
    return labels


@dataclass(frozen=True)
class Reading:
    """One crop's text, its confidence, and per character of ``text``: its probability and the
    span ``[x0, x1)`` of crop pixels whose time steps emitted it (CTC emits a character somewhere
    inside its glyph, not across it)."""

    text: str
    score: float
    probs: np.ndarray
    x0: np.ndarray
    x1: np.ndarray


_NOTHING = Reading("", 0.0, np.zeros(0), np.zeros(0), np.zeros(0))


def text_rows(crop: np.ndarray) -> tuple[int, int]:
    """The rows ``[top, bottom)`` of ``crop`` that hold its text and ``TEXT_MARGIN_RATIO`` × the
    text's height of background above and below it; all rows when there is no more (or nothing
    drawn)."""
    height, width = crop.shape[:2]
    pixels = crop.reshape(height, width, -1)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = median(border, axis=0).astype(np.int16)
    deviation = np.empty(height, dtype=np.int16)
    step = max(1, _STRIP_PIXELS // max(width, 1))
    for y0 in range(0, height, step):
        strip = np.abs(pixels[y0:y0 + step].astype(np.int16) - background)
        deviation[y0:y0 + step] = strip.reshape(len(strip), -1).max(axis=1)
    rows = np.flatnonzero(deviation > INK_SHARE * deviation.max())
    if rows.size == 0:
        return 0, height
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    keep = math.ceil(TEXT_MARGIN_RATIO * (bottom - top))
    return max(0, top - keep), min(height, bottom + keep)


def text_band(crop: np.ndarray) -> np.ndarray:
    """``crop`` cut to its ``text_rows``: a view."""
    top, bottom = text_rows(crop)
    return crop[top:bottom]


class Recognizer:
    """Immutable after construction; ``recognize`` may run in many threads at once."""

    def __init__(self, model: InferenceModel, spec: PackSpec, labels: Sequence[str]) -> None:
        self._model = model
        self._spec = spec.rec
        self._labels = tuple(labels)

    def _resize(self, crop: np.ndarray, width: int) -> np.ndarray:
        rec = self._spec
        if rec.channels == 1 and crop.ndim == 3:
            crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
        interpolation = cv2.INTER_AREA if crop.shape[0] > rec.height else cv2.INTER_LINEAR
        resized = cv2.resize(crop, (width, rec.height), interpolation=interpolation)
        if resized.ndim == 2:
            resized = resized[:, :, None]
        return resized

    def _target_width(self, crop: np.ndarray) -> int:
        h, w = crop.shape[:2]
        height = self._spec.height
        return max(4, min(math.ceil(height * w / max(h, 1)), height * MAX_WIDTH_RATIO))

    def _run_batch(self, crops: Sequence[np.ndarray], widths: Sequence[int]) -> list[Reading]:
        rec = self._spec
        needed = max(max(widths) + int(rec.height * TRAILING_PAD_RATIO), rec.min_width)
        batch_width = self._model.fit(needed, 1)  # the runtime may prefer a little more padding
        batch = np.zeros((len(crops), rec.channels, rec.height, batch_width), dtype=np.float32)
        for i, (crop, width) in enumerate(zip(crops, widths, strict=True)):
            pixels = self._resize(crop, width).astype(np.float32)
            pixels = (pixels * (1.0 / 255.0) - rec.mean) / rec.std
            batch[i, :, :, :width] = pixels.transpose(2, 0, 1)
        probs = self._model.run(batch)
        # Pixels of input per time step, then of each crop per pixel of its resized width.
        stride = batch_width / probs.shape[1]
        return [self._decode(p, stride * crop.shape[1] / width, crop.shape[1])
                for p, crop, width in zip(probs, crops, widths, strict=True)]

    def _decode(self, probs: np.ndarray, step_px: float, crop_width: int) -> Reading:
        best = probs.argmax(axis=1)
        # Runs of one class: a character is emitted by a run that is not blank (class 0).
        starts = np.flatnonzero(np.diff(best, prepend=-1))
        starts = starts[best[starts] != 0]
        if starts.size == 0:
            return _NOTHING
        ends = np.flatnonzero(np.diff(best, append=-1))
        ends = ends[best[ends] != 0] + 1
        indices = best[starts]
        char_probs = probs[starts, indices]
        text = "".join(self._labels[i] for i in indices)
        x0 = np.minimum(starts * step_px, crop_width)
        x1 = np.minimum(ends * step_px, crop_width)
        return Reading(text, float(char_probs.mean()), char_probs, x0, x1)

    def recognize(self, crops: Sequence[np.ndarray], deadline: Deadline = NO_DEADLINE) -> list[Reading]:
        """The reading of each crop (BGR or gray uint8), in the order given.

        ``deadline`` is checked before each batch (OcrError(timeout) once it has passed)."""
        widths = [self._target_width(c) for c in crops]
        order = sorted(range(len(crops)), key=widths.__getitem__)
        results: list[Reading] = [_NOTHING] * len(crops)
        start = 0
        while start < len(order):
            end = start + 1
            while end < len(order) and (end - start + 1) * max(widths[order[end]], self._spec.min_width) * \
                    self._spec.height <= MAX_BATCH_PIXELS:
                end += 1
            chunk = order[start:end]
            deadline.check("line recognition")
            decoded = self._run_batch([crops[i] for i in chunk], [widths[i] for i in chunk])
            for i, result in zip(chunk, decoded, strict=True):
                results[i] = result
            start = end
        return results
