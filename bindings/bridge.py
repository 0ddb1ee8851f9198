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
from dataclasses import replace

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
        from ocr_core.config import DEFAULT_DPI
        from ocr_core.errors import client_error
        from ocr_core.handover import HandoverEngine, load_for_host
        from ocr_core.result import DocumentResult, Page, TextLine, Word

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


def _c_array(count: int, ctype: str):
    """Zeroed C memory for ``count`` items of ``ctype`` (NULL for none)."""
    if count == 0:
        return ffi.NULL
    memory = lib.bridge_calloc(count, ffi.sizeof(ctype))
    if memory == ffi.NULL:
        raise MemoryError
    return ffi.cast(f"{ctype} *", memory)


def _c_result(result: OcrResult | DocumentResult):
    """Copies a result into a C ``ocr_result`` that only capi.c frees. Each count is set as soon as
    its array exists, so a failure half-way leaves a result ocr_result_free can release."""
    memory = lib.bridge_calloc(1, ffi.sizeof("ocr_result"))
    if memory == ffi.NULL:
        raise MemoryError
    c_result = ffi.cast("ocr_result *", memory)
    try:
        document = json.dumps(result.to_dict(), ensure_ascii=False, separators=(",", ":"))
        c_result.text = _c_string(result.text)
        c_result.json = _c_string(document)
        c_result.model = _c_string(result.model)
        c_result.document = isinstance(result, DocumentResult)
        c_result.dpi = getattr(result, "dpi", None) or 0
        pages = result.pages
        c_result.pages = _c_array(len(pages), "struct ocr_page")
        c_result.page_count = len(pages)
        lines = [line for page in pages for line in page.lines]
        c_result.lines = _c_array(len(lines), "struct ocr_line")
        c_result.line_count = len(lines)
        first = 0
        for c_page, page in zip(c_result.pages[0:len(pages)], pages, strict=True):
            c_page.number, c_page.width, c_page.height = page.number, page.width, page.height
            c_page.first_line, c_page.line_count = first, len(page.lines)
            c_page.text = _c_string(page.text)
            first += len(page.lines)
        for i, line in enumerate(lines):
            c_line = c_result.lines[i]
            c_line.text = _c_string(line.text)
            c_line.score = line.score
            c_line.box = [v for point in line.box for v in point]
            c_line.block, c_line.row = line.block, line.row
            c_line.words = _c_array(len(line.words), "struct ocr_word")
            c_line.word_count = len(line.words)
            for j, word in enumerate(line.words):
                c_word = c_line.words[j]
                c_word.text = _c_string(word.text)
                c_word.score = word.score
                c_word.box = [v for point in word.box for v in point]
    except BaseException:
        lib.ocr_result_free(c_result)
        raise
    return c_result


def _box(values) -> tuple:
    return tuple((float(values[k]), float(values[k + 1])) for k in range(0, 8, 2))


def _py_result(c_result) -> OcrResult | DocumentResult:
    """The Python result a C ``ocr_result`` was copied from, as the renderers read it (the fields
    are exact copies: scores and boxes kept as double)."""
    text = ffi.string
    pages = []
    for p in range(c_result.page_count):
        c_page = c_result.pages[p]
        lines = []
        for i in range(c_page.first_line, c_page.first_line + c_page.line_count):
            c_line = c_result.lines[i]
            words = tuple(
                Word(text(c_word.text).decode("utf-8"), c_word.score, _box(c_word.box))
                for c_word in (c_line.words[j] for j in range(c_line.word_count))
            )
            lines.append(TextLine(text(c_line.text).decode("utf-8"), c_line.score, _box(c_line.box),
                                  c_line.block, c_line.row, words))
        pages.append(Page(c_page.number, c_page.width, c_page.height, tuple(lines)))
    model = text(c_result.model).decode("utf-8")
    if c_result.document:
        return DocumentResult(pages=tuple(pages), format="", page_count=len(pages), dpi=c_result.dpi or None,
                              model=model)
    page = pages[0]
    return OcrResult(page.lines, page.width, page.height, model)


def _optional_str(value) -> str | None:
    return os.fsdecode(ffi.string(value)) if value != ffi.NULL else None


@_guarded
def bridge_recognize(data, size, out_text):
    engine = get_engine()
    result = engine.recognize(_input(engine, data, size), RecognizeOptions())
    out_text[0] = _c_string(result.text)


@_guarded
def bridge_render(c_result, fmt, out_text):
    from ocr_core.formats import render

    names = {2: "hocr", 3: "alto", 4: "tsv"}
    out_text[0] = _c_string(render(_py_result(c_result), names[fmt]))


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
        max_pages=options.max_pages or None,
    )
    defaults = RecognizeOptions(
        mode="line" if options.mode == 1 else "page",
        use_cls=bool(options.use_cls),
        min_score=None if options.min_score < 0 else float(options.min_score),
        dpi=options.dpi or DEFAULT_DPI,
        pages=_optional_str(options.pages),
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
def bridge_engine_recognize(engine_id, data, size, mode, use_cls, min_score, pages, out):
    entry = _engines.get(engine_id)
    if entry is None:
        raise OcrError(ErrorCode.BAD_REQUEST, "ocr_engine_recognize: unknown or freed engine")
    engine, defaults = entry
    options = replace(
        defaults,
        mode=defaults.mode if mode < 0 else ("line" if mode == 1 else "page"),
        use_cls=defaults.use_cls if use_cls < 0 else bool(use_cls),
        min_score=defaults.min_score if min_score < 0 else float(min_score),
        pages=defaults.pages if pages == ffi.NULL else ffi.string(pages).decode("utf-8", "replace"),
    )
    out[0] = _c_result(engine.recognize(_input(engine, data, size), options))
