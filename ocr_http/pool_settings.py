"""The worker pool's settings, from ``CRNNOCR_POOL_*`` (and ``CRNNOCR_CACHE_MB``) in its environment.

``CRNNOCR_POOL_WORKERS``      worker processes (default: the physical cores the pool may use)
``CRNNOCR_POOL_QUEUE``        connections waiting for a worker before ``503 busy`` (default 4 × workers)
``CRNNOCR_POOL_MAX_REQUESTS`` a worker is replaced after this many requests (default 1000; 0: never)
``CRNNOCR_POOL_MAX_RSS_MB``   ... or once its resident memory passes this (default 768; 0: never)
``CRNNOCR_CACHE_MB``          result cache shared by the workers (default 64; 0: no cache)

Each worker runs ``CRNNOCR_THREADS`` ONNX Runtime threads (1 unless set). The per-request limit
is the CGI's ``CRNNOCR_TIMEOUT_S``. Stdlib only: the supervisor reads these.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ocr_core.process import available_cores

from .pool_status import MAX_WORKERS
from .settings import CgiSettings

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MIB = 1024 * 1024


class SettingsError(Exception):
    """A setting the pool cannot run with; the message names it."""


def _count(environ: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) < minimum:
        raise SettingsError(f"{name}={raw!r} is not a whole number ≥ {minimum}")
    return int(raw)


@dataclass(frozen=True)
class PoolSettings:
    workers: int
    queue_max: int
    max_requests: int
    max_rss_bytes: int
    cache_bytes: int
    http: CgiSettings

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> PoolSettings:
        workers = _count(environ, "CRNNOCR_POOL_WORKERS", available_cores(), minimum=1)
        if workers > MAX_WORKERS // 2:  # room for a full second generation during a reload
            raise SettingsError(f"CRNNOCR_POOL_WORKERS={workers}: at most {MAX_WORKERS // 2}")
        try:
            http = CgiSettings.from_env(environ)
        except Exception as exc:  # OcrError from a bad CRNNOCR_TIMEOUT_S and the like
            raise SettingsError(str(getattr(exc, "message", exc))) from None
        return cls(
            workers=workers,
            queue_max=_count(environ, "CRNNOCR_POOL_QUEUE", 4 * workers),
            max_requests=_count(environ, "CRNNOCR_POOL_MAX_REQUESTS", 1000),
            max_rss_bytes=_count(environ, "CRNNOCR_POOL_MAX_RSS_MB", 768) * MIB,
            cache_bytes=_count(environ, "CRNNOCR_CACHE_MB", 64) * MIB,
            http=http,
        )


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (``#`` comments, blank lines, optional ``export``, one pair of quotes
    around a value): the subset of a systemd ``EnvironmentFile`` that shells read the same way."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read the environment file {path}: {exc}") from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not ENV_NAME.fullmatch(key):
            raise SettingsError(f"{path}:{number}: expected KEY=VALUE")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values
