"""One CGI request → one Response. Never raises: every failure becomes a JSON error response.

Cheap paths (GET/HEAD health, OPTIONS, 405, 411, 413) import neither the multipart parser nor
the OCR stack; only a POST that carries an acceptable body reaches ``ocr_core.engine``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from http import HTTPStatus

from ocr_core.config import EngineConfig
from ocr_core.deadline import Deadline
from ocr_core.errors import ErrorCode, OcrError, client_error

from .response import Header, Response, error_response, json_response, text_response
from .settings import CgiSettings, max_body_bytes

ALLOWED_METHODS = "GET, HEAD, POST, OPTIONS"
PREFLIGHT_MAX_AGE_S = 600

BodyReader = Callable[[int], bytes]


def log(message: str) -> None:
    """One line to stderr, which the web server files in its error log."""
    sys.stderr.write("crnnocr.cgi: " + " ".join(message.split()) + "\n")
    sys.stderr.flush()


def cors_headers(environ: Mapping[str, str], settings: CgiSettings) -> tuple[Header, ...]:
    """Headers that let an allowed browser origin read the response; none when CORS is off."""
    if not settings.cors_origins:
        return ()
    origin = settings.allowed_origin(environ.get("HTTP_ORIGIN"))
    allow = (("Access-Control-Allow-Origin", origin),) if origin else ()
    return (*allow, ("Vary", "Origin"))


def respond(environ: Mapping[str, str], read_body: BodyReader, settings: CgiSettings,
            deadline: Deadline | None = None) -> Response:
    """Dispatch on the method; map OcrError to its status and anything else to 500 ``internal``.

    ``deadline``, started when the request arrived, bounds the recognition (default: the engine's
    ``timeout_s`` from when it starts)."""
    cors = cors_headers(environ, settings)
    try:
        method = environ.get("REQUEST_METHOD", "").upper()
        if method in ("GET", "HEAD"):
            response = health(settings)
        elif method == "POST":
            response = recognise(environ, read_body, deadline)
        elif method == "OPTIONS":
            response = preflight(cors)
        else:
            response = error_response(
                OcrError(ErrorCode.METHOD_NOT_ALLOWED, f"method {method or '(none)'} is not allowed"),
                ("Allow", ALLOWED_METHODS),
            )
    except Exception as exc:  # the client gets the safe message; the server's problems go to the log
        error = client_error(exc)
        if error.code.http_status >= 500 or error.detail:
            log(error.log_line())
        response = error_response(error)
    return response.with_headers(*cors)


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


def health(settings: CgiSettings) -> Response:
    """Version, default pack, installed packs, the state of its models and limits, without
    loading any model (``ocr_core.integrity.check_pack``)."""
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
    return json_response(HTTPStatus.OK, {
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
    })


def recognise(environ: Mapping[str, str], read_body: BodyReader,
              deadline: Deadline | None = None) -> Response:
    """Check the length before reading, read exactly CONTENT_LENGTH bytes, unwrap, recognise, and
    answer in the format asked for."""
    config = engine_config()
    raw_length = environ.get("CONTENT_LENGTH", "").strip()
    if not raw_length:
        raise OcrError(ErrorCode.LENGTH_REQUIRED, "POST needs a Content-Length; chunked bodies are refused")
    if not (raw_length.isascii() and raw_length.isdigit()):
        raise OcrError(ErrorCode.BAD_REQUEST, f"Content-Length {raw_length!r} is not a byte count")
    length = int(raw_length)
    content_type = environ.get("CONTENT_TYPE", "")
    cap = max_body_bytes(content_type.partition(";")[0].strip().lower(), config.max_bytes)
    if length > cap:
        raise OcrError(ErrorCode.PAYLOAD_TOO_LARGE, f"the body has {length} bytes; the limit is {cap}")

    from .request import image_from_body, parse_query

    query = parse_query(environ.get("QUERY_STRING", ""))
    image = image_from_body(content_type, read_body(length), config.max_bytes)

    from ocr_core.engine import get_engine

    if query.pack is not None and query.pack != config.pack:
        from ocr_core.packs import installed_packs

        packs = installed_packs(config.model_dir)
        if query.pack not in packs:
            raise OcrError(
                ErrorCode.BAD_REQUEST, f"pack {query.pack!r} is not installed; installed: {', '.join(packs)}",
            )
        config = engine_config(pack=query.pack)
    engine = get_engine(config)
    result = engine.recognize(image, query.options, deadline=deadline)
    if query.format == "json":
        return json_response(HTTPStatus.OK, result.to_dict(words=query.words))
    if query.format == "text":
        return text_response(result.text)
    from ocr_core.formats import MEDIA_TYPES

    return Response(HTTPStatus.OK, result.render(query.format).encode("utf-8"),
                    (("Content-Type", MEDIA_TYPES[query.format]),))
