"""One error vocabulary for every surface: Python exceptions, CGI statuses and C codes."""

from __future__ import annotations

import enum
from typing import Any


class ErrorCode(enum.StrEnum):
    """Stable error codes.

    The string value is the JSON/CGI code, ``http_status`` the CGI status and ``number``
    the C enum value in ``crnnocr.h`` (``OCR_E_<NAME>``); none of them may change once
    released. 0 is reserved for success in C.
    """

    def __new__(cls, value: str, number: int, http_status: int, summary: str) -> ErrorCode:
        member = str.__new__(cls, value)
        member._value_ = value
        member.number = number
        member.http_status = http_status
        member.summary = summary
        return member

    number: int
    http_status: int
    summary: str

    BAD_REQUEST = ("bad_request", 1, 400, "the request or an argument is invalid")
    METHOD_NOT_ALLOWED = ("method_not_allowed", 2, 405, "the HTTP method is not allowed")
    LENGTH_REQUIRED = ("length_required", 3, 411, "the request has no Content-Length")
    PAYLOAD_TOO_LARGE = ("payload_too_large", 4, 413, "the input is larger than the byte limit")
    IMAGE_TOO_LARGE = ("image_too_large", 5, 413, "the image has more pixels than the limit")
    UNSUPPORTED_MEDIA_TYPE = (
        "unsupported_media_type", 6, 415, "the input is not an image format that is supported",
    )
    DECODE_FAILED = ("decode_failed", 7, 422, "the image is damaged or cannot be decoded")
    MODEL_UNAVAILABLE = (
        "model_unavailable", 8, 503, "the model files or the engine's runtime are missing or corrupt",
    )
    TIMEOUT = ("timeout", 9, 503, "the request took longer than the time limit")
    INTERNAL = ("internal", 10, 500, "an internal error occurred")
    BUSY = ("busy", 11, 503, "the server is at its limit of concurrent work; retry later")
    TOO_MANY_REGIONS = ("too_many_regions", 12, 422, "the page has more text regions than the limit")
    TOO_MANY_PAGES = ("too_many_pages", 13, 413, "the document has more pages than the limit")
    DOCUMENT_ENCRYPTED = ("document_encrypted", 14, 422, "the document is encrypted")
    NOT_FOUND = ("not_found", 15, 404, "no such job")
    JOBS_UNAVAILABLE = (
        "jobs_unavailable", 16, 503, "asynchronous jobs need the worker pool, and none is running",
    )

    @classmethod
    def from_number(cls, number: int) -> ErrorCode:
        for code in cls:
            if code.number == number:
                return code
        raise ValueError(f"no error code numbered {number}")


class OcrError(Exception):
    """The one exception type the core raises on purpose; ``code`` says which failure.

    ``message`` is for whoever sent the input: it says what happened in the caller's terms and
    never shows the inside (no file paths, memory addresses or runtime source locations), so every
    surface may hand it to a client as it is. ``detail``, when there is one, is for the operator:
    the path, the runtime's own words; adapters write it to their log, never to a client.
    """

    def __init__(self, code: ErrorCode, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"

    def log_line(self) -> str:
        """One line for an operator's log: code, message and detail, newlines folded."""
        text = f"{self}" + (f" [{self.detail}]" if self.detail else "")
        return " ".join(text.split())

    def to_dict(self) -> dict[str, Any]:
        """The error object documented for the CGI: ``{"ok": false, "error": {...}}``."""
        return {"ok": False, "error": {"code": self.code.value, "message": self.message}}


def client_error(exc: BaseException) -> OcrError:
    """Any exception as the OcrError a client may be shown: the one place that decides it.

    An OcrError is already safe (see its docstring) and passes as it is. Anything else is a bug or
    a fault of the machine, whose text may hold paths, addresses or a runtime's source locations:
    the client gets a fixed message, and the exception's type and text become the detail for the
    operator's log."""
    if isinstance(exc, OcrError):
        return exc
    if isinstance(exc, MemoryError):
        return OcrError(ErrorCode.INTERNAL, "out of memory", "MemoryError")
    return OcrError(
        ErrorCode.INTERNAL, "internal error; the detail is in the operator's log",
        f"{type(exc).__name__}: {exc}",
    )
