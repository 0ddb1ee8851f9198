"""HTTP responses and their CGI (RFC 3875) wire form."""

from __future__ import annotations

import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from ocr_core.errors import OcrError

Header = tuple[str, str]

# Sent with every response: results are per-upload and must never be cached or sniffed.
BASE_HEADERS: tuple[Header, ...] = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
)
JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Response:
    """A complete response. ``headers`` excludes the base headers and Content-Length."""

    status: int
    body: bytes = b""
    headers: tuple[Header, ...] = ()

    def with_headers(self, *extra: Header) -> Response:
        return Response(self.status, self.body, self.headers + extra)

    def to_cgi(self, *, include_body: bool = True) -> bytes:
        """The CGI output: a ``Status:`` line, headers, a blank line, then the body.

        For HEAD the body is left out but Content-Length still describes it, as HTTP allows.
        """
        lines = [f"Status: {self.status} {HTTPStatus(self.status).phrase}"]
        lines += [f"{name}: {value}" for name, value in (*self.headers, *BASE_HEADERS)]
        if self.status != HTTPStatus.NO_CONTENT:
            lines.append(f"Content-Length: {len(self.body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head + self.body if include_body else head


def json_response(status: int, payload: dict[str, Any], *headers: Header) -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(status, body, (("Content-Type", JSON_TYPE), *headers))


def text_response(text: str) -> Response:
    return Response(HTTPStatus.OK, text.encode("utf-8"), (("Content-Type", TEXT_TYPE),))


def error_response(error: OcrError, *headers: Header) -> Response:
    """The documented error shape ``{"ok": false, "error": {"code", "message"}}``."""
    return json_response(error.code.http_status, error.to_dict(), *headers)

