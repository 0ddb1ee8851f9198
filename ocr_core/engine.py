"""The engine: decode → detect → crop → classify → recognise → order → words, with per-stage
timings; a document (``ocr_core.pages``) goes through it page by page.

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
from contextlib import closing
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
from .layout import CropFrame, add_margin, crop_frame, detection_margin
from .packs import PackSpec, check_installed, installed_packs, pack_spec
from .pages import PageSelection, open_document, select_pages
from .reading_order import arrange
from .recognize import Recognizer, load_charset, text_rows
from .result import DocumentResult, OcrResult, Page, TextLine, Timings
from .words import place_words

if TYPE_CHECKING:
    from .handover import HandoverEngine

T = TypeVar("T")
# Called with (pages done, pages to read) as a call goes; a job runner's progress and cancel point.
Progress = Callable[[int, int], None]


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


def _check_between_pages(deadline: Deadline, done: int, total: int) -> None:
    """After page ``done`` of ``total``: stop with OcrError(timeout) once the deadline has passed."""
    deadline.check(f"a document, after {done} of {total} pages (select fewer pages)")


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
                "max_pages": self.config.max_pages,
                "max_regions": self.config.max_regions,
                "timeout_s": self.config.timeout_s,
            },
        }

    def recognize(
        self, data: bytes, options: RecognizeOptions | None = None, *, deadline: Deadline | None = None,
        progress: Progress | None = None,
    ) -> OcrResult | DocumentResult:
        """Recognise the text in an encoded image (an ``OcrResult``) or document (a PDF or a
        multi-page TIFF: a ``DocumentResult``, read page by page).

        The call stops with OcrError(timeout) at ``deadline``: by default ``config.timeout_s``
        from now; a gateway passes its own, started when the request arrived. A document is
        checked between its pages too. Raises OcrError for bad input (see
        ``ocr_core.image.decode_image``, ``ocr_core.pages``), for a page with more than
        ``config.max_regions`` text regions (too_many_regions) and for a pack that lacks a stage
        the options ask for. ``progress(pages_done, pages_total)`` is called once the pages to
        read are known and after each page (an image is one page); what it raises stops the call.
        """
        options = options or RecognizeOptions()
        deadline = deadline or Deadline.start(self.config.timeout_s)
        started = time.perf_counter()
        data = bytes(data)
        selection = PageSelection.parse(options.pages) if options.pages is not None else None
        source = open_document(
            data, dpi=options.dpi, max_bytes=self.config.max_bytes, max_pixels=self.config.max_pixels
        )
        if source is None:
            if selection is not None:
                selection.resolve(1)  # an image is page 1 of 1
            image = decode_image(data, max_bytes=self.config.max_bytes, max_pixels=self.config.max_pixels)
            decode_ms = _ms(started)
            deadline.check("decoding")
            if progress:
                progress(0, 1)
            lines, stages = self._read_page(image.bgr, options, deadline)
            if progress:
                progress(1, 1)
            timings = Timings(decode_ms, *stages, _ms(started))
            return OcrResult(lines, image.width, image.height, self.pack, timings)
        with closing(source):
            numbers = select_pages(source, selection, self.config.max_pages)
            if progress:
                progress(0, len(numbers))
            pages = []
            decode_ms, spent = _ms(started), [0.0, 0.0, 0.0]
            step = time.perf_counter()
            for number, bgr in source.render(numbers):
                decode_ms += _ms(step)
                lines, stages = self._read_page(bgr, options, deadline)
                pages.append(Page(number, bgr.shape[1], bgr.shape[0], lines))
                del bgr  # the next page is decoded while nothing holds this one
                spent = [a + b for a, b in zip(spent, stages, strict=True)]
                if progress:
                    progress(len(pages), len(numbers))
                if len(pages) < len(numbers):
                    _check_between_pages(deadline, len(pages), len(numbers))
                step = time.perf_counter()
        return DocumentResult(
            pages=tuple(pages), format=source.format, page_count=source.page_count, dpi=source.dpi,
            model=self.pack, timings=Timings(decode_ms, *spent, _ms(started)),
        )

    def _read_page(self, bgr: np.ndarray, options: RecognizeOptions,
                   deadline: Deadline) -> tuple[tuple[TextLine, ...], list[float]]:
        """The lines of one page in reading order, and the milliseconds of detect, classify and
        recognise."""
        h, w = bgr.shape[:2]
        detect_ms = 0.0
        if options.mode == "line":
            quads = [np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)]
            # Read from the rows that hold the text, so a tall image's text fills the model's
            # height; its words are placed in those rows.
            top, bottom = text_rows(bgr)
            frames = [CropFrame.rows(top, bottom, w)]
            crops = [bgr[top:bottom]]
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
            frames = [crop_frame(q) for q in quads]
            crops = [frame.warp(bgr) for frame in frames]
            detect_ms = _ms(step)
            deadline.check("text detection")

        classify_ms = 0.0
        flags = [False] * len(crops)
        if options.use_cls and crops:
            step = time.perf_counter()
            flags = self._classifier.get().upside_down(crops, deadline)
            crops = [
                np.ascontiguousarray(c[::-1, ::-1]) if flipped else c
                for c, flipped in zip(crops, flags, strict=True)
            ]
            classify_ms = _ms(step)

        step = time.perf_counter()
        readings = self._recognizer.recognize(crops, deadline) if crops else []
        recognize_ms = _ms(step)

        kept = [k for k, reading in enumerate(readings)
                if reading.text.strip() and reading.score >= options.score_threshold]
        # Ordered once the lines are read, so that boxes holding no text do not shape the layout.
        lines = []
        for place in arrange([quads[k] for k in kept]):
            k = kept[place.index]
            reading = readings[k]
            box = tuple((float(x), float(y)) for x, y in quads[k])
            words = place_words(reading, crops[k], frames[k], bool(flags[k]))
            lines.append(TextLine(reading.text.strip(), reading.score, box, place.block, place.row, words))
        return tuple(lines), [detect_ms, classify_ms, recognize_ms]


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
