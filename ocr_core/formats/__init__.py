"""Output formats of a result, each a function of the result alone (no HTTP, no C).

``render(result, fmt)`` for ``fmt`` in ``FORMATS``: ``json`` (the schema of ``to_dict``), ``text``
(as a person reads it; pages separated by a form feed), ``hocr`` (hOCR 1.2), ``alto`` (ALTO v4)
and ``tsv`` (Tesseract's 12-column TSV). ``MEDIA_TYPES`` gives each one's Content-Type.
A result is anything with ``pages`` (number, width, height, lines with words) and ``model``:
an ``OcrResult`` (one page) or a ``DocumentResult``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..errors import ErrorCode, OcrError
from ..result import Page

FORMATS = ("json", "text", "hocr", "alto", "tsv")
MEDIA_TYPES = {
    "json": "application/json; charset=utf-8",
    "text": "text/plain; charset=utf-8",
    # The type hOCR files are registered with in shared-mime-info; browsers download it.
    "hocr": "text/vnd.hocr+html; charset=utf-8",
    "alto": "application/xml; charset=utf-8",
    "tsv": "text/tab-separated-values; charset=utf-8",
}


class Result(Protocol):
    @property
    def pages(self) -> Sequence[Page]: ...

    @property
    def model(self) -> str: ...

    @property
    def text(self) -> str: ...

    def to_dict(self, *, words: bool = False) -> dict[str, Any]: ...


def check_format(fmt: str) -> str:
    """``fmt`` lower-cased when it is one of ``FORMATS``; OcrError(bad_request) otherwise."""
    name = fmt.strip().lower()
    if name not in FORMATS:
        raise OcrError(ErrorCode.BAD_REQUEST, f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return name


def render(result: Result, fmt: str, *, words: bool = False) -> str:
    """The result in ``fmt``; ``words`` adds each line's words to the JSON (other formats have them)."""
    name = check_format(fmt)
    if name == "json":
        return json.dumps(result.to_dict(words=words), ensure_ascii=False, separators=(",", ":"))
    if name == "text":
        return result.text
    return _RENDERERS[name]()(result)


def _hocr() -> Callable[[Result], str]:
    from .hocr import render_hocr

    return render_hocr


def _alto() -> Callable[[Result], str]:
    from .alto import render_alto

    return render_alto


def _tsv() -> Callable[[Result], str]:
    from .tsv import render_tsv

    return render_tsv


_RENDERERS = {"hocr": _hocr, "alto": _alto, "tsv": _tsv}
