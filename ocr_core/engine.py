"""The engine: decode → detect → crop → classify → recognise → order, with per-stage timings.

An Engine is built once (``Engine.load``) and is immutable afterwards: every call keeps its state
in local variables, so one engine serves many threads at once. The detector and classifier
models are loaded on first use, once, under a lock: a line-mode caller (a CGI hit, say) never
pays for a detector it does not run. Which runtime runs them is ``config.backend``, resolved once
(``ocr_core.backends``); the stages do not know it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np

from . import __version__
from .backends import RuntimeInfo, loader, resolve
from .classify import OrientationClassifier
from .config import EngineConfig, RecognizeOptions
from .deadline import Deadline
from .detect import Detector
from .errors import ErrorCode, OcrError
from .image import MAX_SIDE, decode_image, load_decoders
from .layout import add_margin, crop_quad, detection_margin
from .packs import PackSpec, check_installed, installed_packs, pack_spec
from .reading_order import arrange
from .recognize import Recognizer, load_charset, text_band
from .result import OcrResult, TextLine, Timings

if TYPE_CHECKING:
    from .handover import HandoverEngine

T = TypeVar("T")


class _Once(Generic[T]):
    """A value built by the first caller that needs it; later callers get the same object."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._build()
                value = self._value
        return value

    @property
    def built(self) -> bool:
        return self._value is not None


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


class Engine:
    """OCR over one model pack. Build with ``Engine.load``; call ``recognize`` from any thread."""

    def __init__(self, config: EngineConfig, spec: PackSpec) -> None:
        self.config = config
        self.spec = spec
        self.backend = resolve(config.backend)
        # Importing the runtime holds the GIL, so it comes first. The first decode would then
        # spend ~7 ms (CLI) to ~9 ms (libcrnnocr) importing PIL's plugins; the runtime releases
        # the GIL while it loads the model, so they load meanwhile.
        self._load_model = loader(self.backend)
        decoders = threading.Thread(target=load_decoders, name="crnnocr-load-decoders")
        decoders.start()
        try:
            rec_model = self._load_model(config.model_dir, spec, "rec", config.threads)
        finally:
            decoders.join()
        self.runtime: RuntimeInfo = rec_model.runtime
        self._recognizer = Recognizer(rec_model, spec, load_charset(rec_model, spec, config.model_dir))
        self._detector = _Once(self._build_detector)
        self._classifier = _Once(self._build_classifier)

    @classmethod
    def load(cls, config: EngineConfig | None = None) -> Engine:
        """Load the pack named by ``config`` (default: ``EngineConfig.from_env()``).

        Raises OcrError(model_unavailable) when the pack is unknown, missing or corrupt.
        """
        config = config or EngineConfig.from_env()
        spec = pack_spec(config.model_dir, config.pack)
        check_installed(config.model_dir, spec)
        return cls(config, spec)

    @property
    def pack(self) -> str:
        return self.spec.name

    def _build_detector(self) -> Detector:
        if self.spec.det is None:
            raise OcrError(ErrorCode.BAD_REQUEST, f"pack {self.pack!r} has no detector: use line mode")
        # Run once per page, with the largest activations: a runtime that would hold them between
        # pages gives them back, so a page's peak memory is one stage's, not both stages' sum.
        model = self._load_model(self.config.model_dir, self.spec, "det", self.config.threads,
                                 keep_working_memory=False)
        return Detector(model, self.spec.det)

    def _build_classifier(self) -> OrientationClassifier:
        if self.spec.cls is None:
            raise OcrError(ErrorCode.BAD_REQUEST, f"pack {self.pack!r} has no orientation classifier")
        model = self._load_model(self.config.model_dir, self.spec, "cls", self.config.threads)
        return OrientationClassifier(model, self.spec.cls)

    def load_stages_like(self, other: Engine) -> None:
        """Load now the stages that are loaded on first use and that ``other`` has loaded."""
        if other._detector.built:
            self._detector.get()
        if other._classifier.built:
            self._classifier.get()

    def info(self) -> dict[str, Any]:
        """What a health check reports: versions, the pack, the runtime that runs it, the limits."""
        return {
            "version": __version__,
            "model": self.pack,
            "packs_installed": installed_packs(self.config.model_dir),
            "backend": self.runtime.to_dict(),
            "limits": {
                "max_bytes": self.config.max_bytes,
                "max_pixels": self.config.max_pixels,
                "max_side": MAX_SIDE,
                "det_max_side": self.config.det_max_side,
                "max_regions": self.config.max_regions,
                "timeout_s": self.config.timeout_s,
            },
        }

    def recognize(
        self, data: bytes, options: RecognizeOptions | None = None, *, deadline: Deadline | None = None
    ) -> OcrResult:
        """Recognise the text in an encoded image.

        The call stops with OcrError(timeout) at ``deadline``: by default ``config.timeout_s``
        from now; a gateway passes its own, started when the request arrived. Raises OcrError
        for bad input (see ``ocr_core.image.decode_image``), for a page with more than
        ``config.max_regions`` text regions (too_many_regions) and for a pack that lacks a stage
        the options ask for.
        """
        options = options or RecognizeOptions()
        deadline = deadline or Deadline.start(self.config.timeout_s)
        started = time.perf_counter()
        image = decode_image(bytes(data), max_bytes=self.config.max_bytes, max_pixels=self.config.max_pixels)
        decode_ms = _ms(started)
        deadline.check("decoding")
        bgr = image.bgr
        h, w = bgr.shape[:2]

        detect_ms = 0.0
        if options.mode == "line":
            quads = [np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)]
            crops = [text_band(bgr)]
        else:
            step = time.perf_counter()
            margin = detection_margin(h, w)
            found = self._detector.get().detect(
                add_margin(bgr, margin), self.config.det_max_side,
                max_regions=self.config.max_regions, deadline=deadline,
            )
            quads = []
            for quad, _score in found:
                quad = quad - margin
                quad[:, 0] = quad[:, 0].clip(0, w)
                quad[:, 1] = quad[:, 1].clip(0, h)
                quads.append(quad)
            crops = [crop_quad(bgr, q) for q in quads]
            detect_ms = _ms(step)
            deadline.check("text detection")

        classify_ms = 0.0
        if options.use_cls and crops:
            step = time.perf_counter()
            flags = self._classifier.get().upside_down(crops, deadline)
            crops = [
                np.ascontiguousarray(c[::-1, ::-1]) if flipped else c
                for c, flipped in zip(crops, flags, strict=True)
            ]
            classify_ms = _ms(step)

        step = time.perf_counter()
        texts = self._recognizer.recognize(crops, deadline) if crops else []
        recognize_ms = _ms(step)

        kept = [(quad, text.strip(), score) for quad, (text, score) in zip(quads, texts, strict=True)
                if text.strip() and score >= options.score_threshold]
        # Ordered once the lines are read, so that boxes holding no text do not shape the layout.
        lines = []
        for place in arrange([quad for quad, _text, _score in kept]):
            quad, text, score = kept[place.index]
            box = tuple((float(x), float(y)) for x, y in quad)
            lines.append(TextLine(text=text, score=score, box=box, block=place.block, row=place.row))
        timings = Timings(decode_ms, detect_ms, classify_ms, recognize_ms, _ms(started))
        return OcrResult(lines=tuple(lines), width=w, height=h, model=self.pack, timings=timings)


_cached: tuple[EngineConfig, Engine | HandoverEngine] | None = None
_cache_lock = threading.Lock()


def get_engine(config: EngineConfig | None = None) -> Engine | HandoverEngine:
    """The process's one cached engine, (re)built when asked for a different configuration.

    In a long-lived host whose ``auto`` takes OpenVINO it starts on ONNX Runtime and hands over
    after its first call (``ocr_core.handover``).
    """
    from .handover import load_for_host

    global _cached
    config = config or EngineConfig.from_env()
    with _cache_lock:
        if _cached is None or _cached[0] != config:
            _cached = (config, load_for_host(config))
        return _cached[1]
