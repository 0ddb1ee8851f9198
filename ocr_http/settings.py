"""HTTP-level settings from the environment (the engine's own ``CRNNOCR_*`` live in ocr_core.config).

``CRNNOCR_TIMEOUT_S``     wall-clock limit per request in seconds (default 20; 0 disables it).
``CRNNOCR_CORS_ORIGINS``  origins allowed to call from a browser, comma or space separated, or ``*``;
                          empty (the default) sends no CORS headers at all.
``CRNNOCR_RETRY_AFTER_S`` the ``Retry-After`` of a ``503 busy`` (default 1).
``CRNNOCR_CGI_SLOTS``     recognitions the CGI runs at once (default 2 × the cores it may use; 0: no
                          cap); past it a hit answers ``503 busy`` at once.
``CRNNOCR_CGI_SLOT_DIR``  where the CGI's slot files are (default ``$TMPDIR/crnnocr-cgi-slots-UID``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ocr_core.errors import ErrorCode, OcrError
from ocr_core.process import available_cores

DEFAULT_TIMEOUT_S = 20.0
DEFAULT_RETRY_AFTER_S = 1
SLOTS_PER_CORE = 2
# Room for multipart part headers and boundaries, or JSON syntax and a data: URL prefix.
ENVELOPE_BYTES = 64 * 1024


def _misconfigured(message: str) -> OcrError:
    return OcrError(ErrorCode.INTERNAL, f"the server is misconfigured: {message}")


def _number(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise _misconfigured(f"{name}={raw!r} is not a number") from None
    if not value >= 0:  # also rejects NaN
        raise _misconfigured(f"{name} must be 0 or more")
    return value


def _count(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()):
        raise _misconfigured(f"{name}={raw!r} is not a count (0 or more)")
    return int(raw)


@dataclass(frozen=True)
class CgiSettings:
    timeout_s: float = DEFAULT_TIMEOUT_S
    cors_origins: frozenset[str] = frozenset()
    retry_after_s: int = DEFAULT_RETRY_AFTER_S
    cgi_slots: int = 0
    cgi_slot_dir: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CgiSettings:
        environ = os.environ if environ is None else environ
        origins = environ.get("CRNNOCR_CORS_ORIGINS", "").replace(",", " ").split()
        tmp = environ.get("TMPDIR") or "/tmp"
        return cls(
            timeout_s=_number(environ, "CRNNOCR_TIMEOUT_S", DEFAULT_TIMEOUT_S),
            cors_origins=frozenset(origins),
            retry_after_s=_count(environ, "CRNNOCR_RETRY_AFTER_S", DEFAULT_RETRY_AFTER_S),
            cgi_slots=_count(environ, "CRNNOCR_CGI_SLOTS", SLOTS_PER_CORE * available_cores()),
            cgi_slot_dir=environ.get("CRNNOCR_CGI_SLOT_DIR", "").strip()
            or os.path.join(tmp, f"crnnocr-cgi-slots-{os.getuid()}"),
        )

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
