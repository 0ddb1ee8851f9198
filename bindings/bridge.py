"""The Python side of libcrnnocr: cffi runs this file once, as the embedding init code.

capi.c has started the interpreter inside the runtime's venv before cffi imports anything. This
code puts the runtime on ``sys.path``, imports ocr_core and defines the ``bridge_*`` functions
that capi.c calls. Rules that keep the host process safe:

- no exception leaves a bridge function: each one reports failures through
  ``lib.bridge_set_error_detail`` (code, safe message and the operator's detail, for the calling
  thread; ``ocr_core.errors.client_error`` decides what is safe) and returns 1, "the bridge ran";
- every string or result handed to C is allocated by capi.c's helpers (C ``malloc``), never by
  ``ffi.new``, whose memory Python would free behind the caller's back;
- an import failure is kept, not raised, so each call can say what is wrong and what to do.
"""

from __future__ import annotations

import itertools
import json
import os
import site
import sys
import threading

from _crnnocr_cffi import ffi, lib

_HOME = os.fsdecode(ffi.string(lib.bridge_runtime_home()))
_VENV = os.fsdecode(ffi.string(lib.bridge_runtime_venv()))
_RAN = 1

# As in crnnocr.h; used only when ocr_core (and its ErrorCode) could not be imported.
_E_MODEL_UNAVAILABLE = 8


def _add_runtime_paths() -> None:
    """Venv first (already there unless the host started Python), then ocr_core's home."""
    site_packages = os.path.join(
        _VENV, "lib", f"python{sys.version_info.major}.{sys.version_info.minor}", "site-packages"
    )
    if os.path.isdir(site_packages):
        site.addsitedir(site_packages)
    if _HOME not in sys.path:
        sys.path.insert(0, _HOME)


_add_runtime_paths()
try:
    # The host owns this process: its environment is left as it was once the modules are loaded.
    from ocr_core.process import while_native_libraries_load

    with while_native_libraries_load():
        from ocr_core import (
            Engine,
            EngineConfig,
            ErrorCode,
            OcrError,
            OcrResult,
            RecognizeOptions,
            get_engine,
        )
        from ocr_core.errors import client_error
        from ocr_core.handover import HandoverEngine, load_for_host

    _IMPORT_ERROR = None
except Exception as exc:  # any import failure becomes the error of every call
    _IMPORT_ERROR = (
        "libcrnnocr: the OCR engine cannot be imported. Reinstall (make install), or set CRNNOCR_HOME "
        "to a directory holding ocr_core and CRNNOCR_VENV to a venv with requirements.txt installed",
        f"ocr_core from {_HOME} with {_VENV}: {type(exc).__name__}: {exc}",
    )

# Engines created from C, by the id their C handle holds; dict operations are atomic under the GIL.
_engines: dict[int, tuple[Engine | HandoverEngine, RecognizeOptions]] = {}
_engine_ids = itertools.count(1)
_engines_lock = threading.Lock()


def _set_error(code: int, message: str, detail: str | None = None) -> None:
    lib.bridge_set_error_detail(
        code, message.encode("utf-8", "replace"), (detail or "").encode("utf-8", "replace")
    )


def _guarded(function):
    """Runs a bridge function so that every failure becomes a (code, message) for C."""

    def run(*args):
        try:
            if _IMPORT_ERROR is not None:
                _set_error(_E_MODEL_UNAVAILABLE, *_IMPORT_ERROR)
            else:
                function(*args)
        except BaseException as exc:  # nothing may cross into C, not even SystemExit
            error = client_error(exc)
            _set_error(error.code.number, error.message, error.detail)
        return _RAN

    return ffi.def_extern(name=function.__name__)(run)


def _input(engine: Engine | HandoverEngine, data, size: int) -> bytes:
    """The caller's bytes, copied (C owns them); refused before copying when over the limit."""
    if size > engine.config.max_bytes:
        raise OcrError(
            ErrorCode.PAYLOAD_TOO_LARGE, f"the input is {size} bytes; the limit is {engine.config.max_bytes}"
        )
    return ffi.buffer(data, size)[:]


def _c_string(text: str):
    raw = text.encode("utf-8")
    copy = lib.bridge_strdup(raw, len(raw))
    if copy == ffi.NULL:
        raise MemoryError
    return copy


def _c_result(result: OcrResult):
    """Copies an OcrResult into a C ``ocr_result`` that only capi.c frees."""
    text = result.text.encode("utf-8")
    document = json.dumps(result.to_dict(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    c_result = lib.bridge_result_new(
        len(result.lines), text, len(text), document, len(document), result.width, result.height
    )
    if c_result == ffi.NULL:
        raise MemoryError
    try:
        for i, line in enumerate(result.lines):
            line_text = line.text.encode("utf-8")
            box = [float(v) for point in line.box for v in point]
            if lib.bridge_result_set_line(c_result, i, line_text, len(line_text), line.score, box) != 0:
                raise MemoryError
    except BaseException:
        lib.ocr_result_free(c_result)
        raise
    return c_result


def _optional_str(value) -> str | None:
    return os.fsdecode(ffi.string(value)) if value != ffi.NULL else None


@_guarded
def bridge_recognize(data, size, out_text):
    engine = get_engine()
    result = engine.recognize(_input(engine, data, size), RecognizeOptions())
    out_text[0] = _c_string(result.text)


@_guarded
def bridge_engine_new(options, out_id):
    if options.threads < -1:
        raise OcrError(ErrorCode.BAD_REQUEST, "threads must be -1 (default), 0 (all cores) or more")
    if options.mode not in (0, 1):
        raise OcrError(ErrorCode.BAD_REQUEST, "mode must be OCR_MODE_PAGE or OCR_MODE_LINE")
    if options.timeout_ms < -1:
        raise OcrError(ErrorCode.BAD_REQUEST, "timeout_ms must be -1 (default), 0 (no limit) or more")
    config = EngineConfig.from_env(
        model_dir=_optional_str(options.model_dir),
        pack=_optional_str(options.pack),
        threads=options.threads if options.threads >= 0 else None,
        max_bytes=options.max_bytes or None,
        max_pixels=options.max_pixels or None,
        det_max_side=options.det_max_side or None,
        backend=_optional_str(options.backend),
        timeout_s=options.timeout_ms / 1000 if options.timeout_ms >= 0 else None,
    )
    defaults = RecognizeOptions(
        mode="line" if options.mode == 1 else "page",
        use_cls=bool(options.use_cls),
        min_score=None if options.min_score < 0 else float(options.min_score),
    )
    engine = load_for_host(config)
    with _engines_lock:
        engine_id = next(_engine_ids)
        _engines[engine_id] = (engine, defaults)
    out_id[0] = engine_id


@_guarded
def bridge_engine_free(engine_id):
    _engines.pop(engine_id, None)


@_guarded
def bridge_engine_recognize(engine_id, data, size, mode, use_cls, min_score, out):
    entry = _engines.get(engine_id)
    if entry is None:
        raise OcrError(ErrorCode.BAD_REQUEST, "ocr_engine_recognize: unknown or freed engine")
    engine, defaults = entry
    options = RecognizeOptions(
        mode=defaults.mode if mode < 0 else ("line" if mode == 1 else "page"),
        use_cls=defaults.use_cls if use_cls < 0 else bool(use_cls),
        min_score=defaults.min_score if min_score < 0 else float(min_score),
    )
    out[0] = _c_result(engine.recognize(_input(engine, data, size), options))
