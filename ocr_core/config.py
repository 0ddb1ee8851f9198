"""Engine configuration and per-call options, with the environment variables that set them."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Literal

from .errors import ErrorCode, OcrError

Mode = Literal["page", "line"]
# Inference runtimes; "auto" picks one per process (ocr_core.backends.resolve states the rule).
BACKENDS = ("onnxruntime", "openvino", "auto")

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_PACK = "ppocr-v6-small"

# Environment variable → EngineConfig field. Documented in the README.
ENV_VARS: Mapping[str, str] = {
    "CRNNOCR_MODEL_DIR": "model_dir",
    "CRNNOCR_PACK": "pack",
    "CRNNOCR_THREADS": "threads",
    "CRNNOCR_MAX_BYTES": "max_bytes",
    "CRNNOCR_MAX_PIXELS": "max_pixels",
    "CRNNOCR_DET_MAX_SIDE": "det_max_side",
    "CRNNOCR_BACKEND": "backend",
    "CRNNOCR_MAX_PAGES": "max_pages",
    "CRNNOCR_TIMEOUT_S": "timeout_s",
    "CRNNOCR_MAX_REGIONS": "max_regions",
}
# Text regions the detector found on the eval sets' pages: at most 121 (a FUNSD form; receipts
# 100, screenshots 76). The limit leaves eight times that; past it a page is refused before any
# line is read, since reading costs ~10 ms a region on one core.
DEFAULT_MAX_REGIONS = 1000
DEFAULT_TIMEOUT_S = 20.0
# Resolutions a PDF page may be rendered at; 200 dpi reads body text well with under half of 300 dpi's pixels.
DEFAULT_DPI = 200
MIN_DPI, MAX_DPI = 30, 1200


@dataclass(frozen=True)
class EngineConfig:
    """How an engine is built. Immutable: one engine, one configuration.

    ``threads`` is the inference runtime's thread count per call; 0 means all the physical cores
    this process may run on (``process.available_cores``), right for one caller at a time.
    Processes or threads that run side by side want 1 each. ``backend`` is one of ``BACKENDS``.

    The limits bound what one call may cost, whoever calls: ``max_bytes`` and ``max_pixels`` the
    input (each page of a document, rendered or decoded), ``max_pages`` the pages of a document
    read in one call, ``max_regions`` the text regions of a page (more: ``too_many_regions``, refused right
    after detection), ``timeout_s`` the wall-clock time of a call (then ``timeout``; 0: none).
    They are the operator's, not the caller's, which is why they live here and not in
    ``RecognizeOptions``: a CGI client sets options, and must not be able to raise its own limits.
    """

    model_dir: Path = DEFAULT_MODEL_DIR
    pack: str = DEFAULT_PACK
    threads: int = 0
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    det_max_side: int = 960
    backend: str = "auto"
    max_pages: int = 50
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_regions: int = DEFAULT_MAX_REGIONS

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_dir", Path(self.model_dir))
        if self.threads < 0:
            raise OcrError(ErrorCode.BAD_REQUEST, "threads must be 0 (all cores) or more")
        if self.max_bytes <= 0 or self.max_pixels <= 0 or self.max_pages <= 0:
            raise OcrError(ErrorCode.BAD_REQUEST, "max_bytes, max_pixels and max_pages must be positive")
        if not 32 <= self.det_max_side <= 8192:
            raise OcrError(ErrorCode.BAD_REQUEST, "det_max_side must be within 32..8192")
        if not 0 <= self.timeout_s < math.inf:  # also rejects NaN
            raise OcrError(ErrorCode.BAD_REQUEST, "timeout_s must be 0 (no limit) or a number of seconds")
        if self.max_regions <= 0:
            raise OcrError(ErrorCode.BAD_REQUEST, "max_regions must be positive")
        if self.backend not in BACKENDS:
            raise OcrError(
                ErrorCode.BAD_REQUEST, f"backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> EngineConfig:
        """Defaults, then ``CRNNOCR_*`` variables, then explicit ``overrides``."""
        environ = os.environ if environ is None else environ
        types = {f.name: f.type for f in fields(cls)}
        values: dict[str, object] = {}
        for var, name in ENV_VARS.items():
            raw = environ.get(var, "").strip()
            if not raw:
                continue
            if types[name] in ("int", "float"):
                kind = int if types[name] == "int" else float
                try:
                    values[name] = kind(raw)
                except ValueError:
                    noun = "an integer" if kind is int else "a number"
                    raise OcrError(ErrorCode.BAD_REQUEST, f"{var}={raw!r} is not {noun}") from None
            else:
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)


@dataclass(frozen=True)
class RecognizeOptions:
    """Per-call options.

    ``mode="line"`` treats the whole image as one text line (no detection);
    ``use_cls`` runs the 0/180° line classifier; lines scoring under ``min_score`` are dropped.
    ``min_score=None`` means the mode's default: 0.5 in page mode, where low scores are mostly
    spurious detections, and 0 in line mode, where the caller says there is a line and a poor
    reading of it is worth more than none.

    For documents: ``dpi`` is the resolution PDF pages are rendered at, and ``pages`` the pages
    to read, e.g. ``"1-3,7"`` or ``"5-"`` (all when None; a single image is page 1).
    """

    mode: Mode = "page"
    use_cls: bool = False
    min_score: float | None = None
    dpi: int = DEFAULT_DPI
    pages: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("page", "line"):
            raise OcrError(ErrorCode.BAD_REQUEST, f"mode must be 'page' or 'line', not {self.mode!r}")
        if self.min_score is not None and not 0.0 <= self.min_score <= 1.0:
            raise OcrError(ErrorCode.BAD_REQUEST, "min_score must be within 0..1")
        if not (isinstance(self.dpi, int) and MIN_DPI <= self.dpi <= MAX_DPI):
            raise OcrError(ErrorCode.BAD_REQUEST, f"dpi must be an integer within {MIN_DPI}..{MAX_DPI}")
        if self.pages is not None:
            from .pages import PageSelection

            PageSelection.parse(self.pages)  # refused here, before any input is read

    @property
    def score_threshold(self) -> float:
        if self.min_score is not None:
            return self.min_score
        return 0.5 if self.mode == "page" else 0.0
