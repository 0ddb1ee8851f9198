"""CGI-level settings from the environment (the engine's own ``CRNNOCR_*`` live in ocr_core.config).

``CRNNOCR_TIMEOUT_S``    wall-clock limit per request in seconds (default 20; 0 disables it).
``CRNNOCR_CORS_ORIGINS`` origins allowed to call from a browser, comma or space separated, or ``*``;
                         empty (the default) sends no CORS headers at all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ocr_core.errors import ErrorCode, OcrError

DEFAULT_TIMEOUT_S = 20.0
# Room for multipart part headers and boundaries, or JSON syntax and a data: URL prefix.
ENVELOPE_BYTES = 64 * 1024


@dataclass(frozen=True)
class CgiSettings:
    timeout_s: float = DEFAULT_TIMEOUT_S
    cors_origins: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CgiSettings:
        environ = os.environ if environ is None else environ
        raw_timeout = environ.get("CRNNOCR_TIMEOUT_S", "").strip()
        try:
            timeout_s = float(raw_timeout) if raw_timeout else DEFAULT_TIMEOUT_S
        except ValueError:
            raise OcrError(ErrorCode.INTERNAL, f"CRNNOCR_TIMEOUT_S={raw_timeout!r} is not a number") from None
        if not timeout_s >= 0:  # also rejects NaN
            raise OcrError(ErrorCode.INTERNAL, "CRNNOCR_TIMEOUT_S must be 0 (off) or more")
        origins = environ.get("CRNNOCR_CORS_ORIGINS", "").replace(",", " ").split()
        return cls(timeout_s=timeout_s, cors_origins=frozenset(origins))

    def allowed_origin(self, origin: str | None) -> str | None:
        """The value for Access-Control-Allow-Origin, or None when this origin gets no CORS."""
        if not origin or not self.cors_origins:
            return None
        if "*" in self.cors_origins:
            return "*"
        return origin if origin in self.cors_origins else None


def max_body_bytes(media_type: str, max_image_bytes: int) -> int:
    """Largest request body worth reading for an image cap of ``max_image_bytes``.

    Raw bodies are the image itself; multipart adds an envelope; JSON carries base64 (4/3 the
    size). Anything larger is refused with 413 before a byte of it is read.
    """
    if media_type == "application/json":
        return 4 * -(-max_image_bytes // 3) + ENVELOPE_BYTES
    if media_type == "multipart/form-data":
        return max_image_bytes + ENVELOPE_BYTES
    return max_image_bytes
