"""One HTTP request → one Response. Never raises: every failure becomes a JSON error response.

Every gateway (the CGI, the pool's FastCGI workers) answers through ``respond``, so a request
gets the same status, headers and body whichever way it came in. What differs between gateways
is passed in as ``Services``: the CGI's concurrency slots, the pool's result cache, metrics and
status.

Cheap paths (GET/HEAD health, OPTIONS, 405, 411, 413) import neither the multipart parser nor
the OCR stack; only a POST that carries an acceptable body reaches ``ocr_core.engine``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Protocol

from ocr_core.config import EngineConfig
from ocr_core.deadline import Deadline
from ocr_core.errors import ErrorCode, OcrError, client_error
from ocr_core.result import DocumentResult, Timings

from .response import Header, Response, error_response, json_response, text_response
from .settings import CgiSettings, max_body_bytes

if TYPE_CHECKING:
    from ocr_core.config import RecognizeOptions

    from .jobs import JobStore
    from .request import Query

ALLOWED_METHODS = "GET, HEAD, POST, DELETE, OPTIONS"
PREFLIGHT_MAX_AGE_S = 600
METRICS_PATH = "/metrics"
LOG_PREFIX = "crnnocr"


class RequestBody(Protocol):
    """The request body as a gateway delivers it; read at most once."""

    def read_exactly(self, length: int) -> bytes:
        """``length`` bytes (the request's Content-Length); 400 if the body ends sooner."""
        ...

    def read_unsized(self, cap: int) -> bytes:
        """A body sent without a length (chunked): all of it, refused with 413 as soon as more
        than ``cap`` bytes have arrived; 411 from a gateway that cannot tell where it ends."""
        ...


class Observer(Protocol):
    """Where a gateway counts what happened (the pool's metrics); the CGI counts nothing."""

    def request(self, label: str, status: int, seconds: float) -> None: ...

    def recognised(self, timings: Timings) -> None: ...

    def cache_lookup(self, hit: bool) -> None: ...


class ResultStore(Protocol):
    """Results of earlier recognitions, by image and everything that changes the result."""

    def lookup(self, image: bytes, config: EngineConfig, options: RecognizeOptions) -> dict[str, Any] | None:
        ...

    def store(self, image: bytes, config: EngineConfig, options: RecognizeOptions,
              result: dict[str, Any]) -> None:
        ...


class _NoObserver:
    def request(self, label: str, status: int, seconds: float) -> None:
        pass

    def recognised(self, timings: Timings) -> None:
        pass

    def cache_lookup(self, hit: bool) -> None:
        pass


@dataclass(frozen=True)
class Services:
    """What a gateway adds around the application; the defaults add nothing.

    ``recognition_slot`` is entered around the engine's work (the CGI's concurrency cap raises
    ``busy`` from it); ``pool_status`` adds a ``pool`` object to the health document;
    ``metrics`` answers ``GET …/metrics``; ``jobs`` is the pool's job store (``async=1``,
    ``job=ID``: ``ocr_http.job_api``), which the CGI alone does not have.
    """

    recognition_slot: Callable[[], AbstractContextManager[object]] = nullcontext
    cache: ResultStore | None = None
    observer: Observer = field(default_factory=_NoObserver)
    pool_status: Callable[[], dict[str, Any]] | None = None
    metrics: Callable[[], Response] | None = None
    jobs: JobStore | None = None


NO_SERVICES = Services()


def log(message: str) -> None:
    """One line to stderr, which the web server (or the pool's journal) files in its error log."""
    sys.stderr.write(f"{LOG_PREFIX}: " + " ".join(message.split()) + "\n")
    sys.stderr.flush()


def cors_headers(environ: Mapping[str, str], settings: CgiSettings) -> tuple[Header, ...]:
    """Headers that let an allowed browser origin read the response; none when CORS is off."""
    if not settings.cors_origins:
        return ()
    origin = settings.allowed_origin(environ.get("HTTP_ORIGIN"))
    allow = (("Access-Control-Allow-Origin", origin),) if origin else ()
    return (*allow, ("Vary", "Origin"))


def error_reply(error: OcrError, environ: Mapping[str, str], settings: CgiSettings) -> Response:
    """The JSON error response for ``error``, as every gateway sends it (``busy`` says when to retry)."""
    extra: tuple[Header, ...] = ()
    if error.code is ErrorCode.BUSY:
        extra = (("Retry-After", str(settings.retry_after_s)),)
    return error_response(error, *extra).with_headers(*cors_headers(environ, settings))


@dataclass
class _Outcome:
    """What the request turned out to be, for the observer (filled in as it becomes known)."""

    label: str = "other"


def respond(environ: Mapping[str, str], body: RequestBody, settings: CgiSettings,
            services: Services = NO_SERVICES, deadline: Deadline | None = None) -> Response:
    """Dispatch on the method; map OcrError to its status and anything else to 500 ``internal``.

    ``deadline``, started when the request arrived, bounds the recognition (default: the engine's
    ``timeout_s`` from when it starts)."""
    started = time.perf_counter()
    outcome = _Outcome()
    try:
        method = environ.get("REQUEST_METHOD", "").upper()
        if method in ("GET", "HEAD") and environ.get("PATH_INFO", "") == METRICS_PATH:
            outcome.label = "metrics"
            response = metrics(services)
        elif method == "DELETE" or (method in ("GET", "HEAD") and "job=" in environ.get("QUERY_STRING", "")):
            outcome.label = "job"
            response = job(environ, method, services)
        elif method in ("GET", "HEAD"):
            outcome.label = "health"
            response = health(settings, services)
        elif method == "POST":
            outcome.label = "post"
            response = recognise(environ, body, services, outcome, deadline)
        elif method == "OPTIONS":
            outcome.label = "preflight"
            response = preflight(cors_headers(environ, settings))
        else:
            raise OcrError(ErrorCode.METHOD_NOT_ALLOWED, f"method {method or '(none)'} is not allowed")
        response = response.with_headers(*cors_headers(environ, settings))
    except Exception as exc:  # the client gets the safe message; the server's problems go to the log
        error = client_error(exc)
        # busy is the server working as designed: nothing for the operator.
        if (error.code.http_status >= 500 and error.code is not ErrorCode.BUSY) or error.detail:
            log(error.log_line())
        response = error_reply(error, environ, settings)
        if error.code is ErrorCode.METHOD_NOT_ALLOWED:
            response = response.with_headers(("Allow", ALLOWED_METHODS))
    services.observer.request(outcome.label, response.status, time.perf_counter() - started)
    return response


def engine_config(**overrides: object) -> EngineConfig:
    """The engine's configuration from the environment; a bad CRNNOCR_* value is the server's fault."""
    try:
        return EngineConfig.from_env(**overrides)
    except OcrError as exc:
        raise OcrError(ErrorCode.INTERNAL, f"the server is misconfigured: {exc.message}") from None


def preflight(cors: tuple[Header, ...]) -> Response:
    headers: tuple[Header, ...] = (("Allow", ALLOWED_METHODS),)
    if any(name == "Access-Control-Allow-Origin" for name, _ in cors):
        headers += (
            ("Access-Control-Allow-Methods", ALLOWED_METHODS),
            ("Access-Control-Allow-Headers", "Content-Type"),
            ("Access-Control-Max-Age", str(PREFLIGHT_MAX_AGE_S)),
        )
    return Response(HTTPStatus.NO_CONTENT, b"", headers)


def metrics(services: Services) -> Response:
    if services.metrics is None:
        raise OcrError(ErrorCode.NOT_FOUND, "metrics are served by the worker pool, and none answered")
    return services.metrics()


def health(settings: CgiSettings, services: Services) -> Response:
    """Version, default pack, installed packs, the state of its models and limits, without
    loading any model (``ocr_core.integrity.check_pack``); the pool's state when a pool answers."""
    from importlib.metadata import PackageNotFoundError, version

    from ocr_core import __version__
    from ocr_core.backends import plan
    from ocr_core.integrity import check_pack
    from ocr_core.packs import installed_packs, pack_spec

    config = engine_config()
    packs = installed_packs(config.model_dir)
    if config.pack not in packs:
        raise OcrError(
            ErrorCode.MODEL_UNAVAILABLE,
            f"model pack {config.pack!r} is not installed (installed: {', '.join(packs) or 'none'})",
        )
    runtime = plan(config.backend)
    models = check_pack(config.model_dir, pack_spec(config.model_dir, config.pack), runtime)
    try:
        onnxruntime = version("onnxruntime")
    except PackageNotFoundError:
        onnxruntime = None
    doc: dict[str, Any] = {
        "ok": True,
        "version": __version__,
        "model": config.pack,
        "packs_installed": packs,
        "onnxruntime": onnxruntime,
        "backend": runtime.to_dict(),
        "models": models,
        "limits": {
            "max_bytes": config.max_bytes,
            "max_pixels": config.max_pixels,
            "det_max_side": config.det_max_side,
            "max_pages": config.max_pages,
            "max_regions": config.max_regions,
            "timeout_s": settings.timeout_s,
        },
    }
    if services.pool_status is not None:
        doc["pool"] = services.pool_status()
    return json_response(HTTPStatus.OK, doc)


def job(environ: Mapping[str, str], method: str, services: Services) -> Response:
    """``GET …?job=ID`` (the job's state, its result once done) or ``DELETE …?job=ID``."""
    from . import job_api
    from .request import parse_query

    query = parse_query(environ.get("QUERY_STRING", ""))
    if not query.job:
        raise OcrError(ErrorCode.BAD_REQUEST, "DELETE needs the job to delete: ?job=ID")
    if services.jobs is None:
        raise job_api.unavailable(in_pool=services.pool_status is not None)
    if method == "DELETE":
        return job_api.delete(services.jobs, query)
    return job_api.status(services.jobs, query)


def _read_body(environ: Mapping[str, str], body: RequestBody, cap: int) -> bytes:
    """The body, its size checked before reading when it is declared, while reading when not."""
    raw_length = environ.get("CONTENT_LENGTH", "").strip()
    if not raw_length:
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            return body.read_unsized(cap)
        raise OcrError(ErrorCode.LENGTH_REQUIRED, "POST needs a Content-Length or a chunked body")
    if not (raw_length.isascii() and raw_length.isdigit()):
        raise OcrError(ErrorCode.BAD_REQUEST, f"Content-Length {raw_length!r} is not a byte count")
    length = int(raw_length)
    if length > cap:
        raise OcrError(ErrorCode.PAYLOAD_TOO_LARGE, f"the body has {length} bytes; the limit is {cap}")
    return body.read_exactly(length)


def recognise(environ: Mapping[str, str], body: RequestBody, services: Services,
              outcome: _Outcome, deadline: Deadline | None = None) -> Response:
    """Check the length before reading, read the body, unwrap, recognise (or find it cached)."""
    config = engine_config()
    content_type = environ.get("CONTENT_TYPE", "")
    cap = max_body_bytes(content_type.partition(";")[0].strip().lower(), config.max_bytes)
    raw = _read_body(environ, body, cap)

    from .request import image_from_body, parse_query

    query = parse_query(environ.get("QUERY_STRING", ""))
    outcome.label = query.options.mode
    if query.run_async and services.jobs is None:
        from .job_api import unavailable

        raise unavailable(in_pool=services.pool_status is not None)
    image = image_from_body(content_type, raw, config.max_bytes)
    del raw

    if query.pack is not None and query.pack != config.pack:
        from ocr_core.packs import installed_packs

        packs = installed_packs(config.model_dir)
        if query.pack not in packs:
            raise OcrError(
                ErrorCode.BAD_REQUEST, f"pack {query.pack!r} is not installed; installed: {', '.join(packs)}",
            )
        config = engine_config(pack=query.pack)
    if query.run_async and services.jobs is not None:
        from .job_api import submit

        outcome.label = "submit"
        return submit(environ, services.jobs, image)

    # The cache holds the JSON document of a call: it answers JSON (without words) and text.
    cache = services.cache if query.format in ("json", "text") and not query.words else None
    if cache is not None:
        looked_up = time.perf_counter()
        cached = cache.lookup(image, config, query.options)
        services.observer.cache_lookup(cached is not None)
        if cached is not None:
            # The stored timings were another call's: this one decoded and recognised nothing.
            timings = Timings(total=(time.perf_counter() - looked_up) * 1000.0).to_dict()
            doc = {**cached, "timing_ms": timings, "cached": True}
            if query.format == "text":
                return text_response(doc["text"])
            numbers = [page["number"] for page in doc.get("pages", ())]
            with services.recognition_slot() if query.preview else nullcontext():
                previews = previews_for(query, numbers, image, config, deadline)
            return json_response(HTTPStatus.OK, with_previews(doc, previews))
    # The slot before the OCR stack's import: a hit refused as busy costs no memory.
    with services.recognition_slot():
        from ocr_core.engine import get_engine

        result = get_engine(config).recognize(image, query.options, deadline=deadline)
        # Rendering the pages again is the same kind of work, in the same slot.
        numbers = [page.number for page in result.pages] if isinstance(result, DocumentResult) else []
        previews = previews_for(query, numbers, image, config, deadline)
    services.observer.recognised(result.timings)
    if query.format not in ("json", "text"):
        from ocr_core.formats import MEDIA_TYPES

        return Response(HTTPStatus.OK, result.render(query.format).encode("utf-8"),
                        (("Content-Type", MEDIA_TYPES[query.format]),))
    doc = result.to_dict(words=query.words)
    if cache is not None:
        cache.store(image, config, query.options, doc)
    if query.format == "text":
        return text_response(doc["text"])
    return json_response(HTTPStatus.OK, with_previews(doc, previews))


def previews_for(query: Query, numbers: list[int], image: bytes, config: EngineConfig,
              deadline: Deadline | None) -> list[dict[str, Any]]:
    """A preview of each page ``numbers`` names when the call asked for previews in JSON and sent
    a document (``ocr_core.previews``); none otherwise: a single image's is the client's own file."""
    if not (query.preview and query.format == "json" and numbers):
        return []
    from ocr_core.previews import page_previews

    deadline = deadline or Deadline.start(config.timeout_s)
    previews = page_previews(image, numbers, dpi=query.options.dpi, max_bytes=config.max_bytes,
                             max_pixels=config.max_pixels, deadline=deadline)
    return [preview.to_dict() for preview in previews]


def with_previews(doc: dict[str, Any], previews: list[dict[str, Any]]) -> dict[str, Any]:
    """``doc`` with each page's preview in the page (``doc`` itself when there are none)."""
    if not previews:
        return doc
    return {**doc, "pages": [{**page, "preview": preview}
                             for page, preview in zip(doc["pages"], previews, strict=True)]}
