"""The worker pool's settings, from ``CRNNOCR_POOL_*`` (and ``CRNNOCR_CACHE_MB``) in its environment.

``CRNNOCR_POOL_WORKERS``      worker processes (default: the physical cores the pool may use)
``CRNNOCR_POOL_QUEUE``        connections waiting for a worker before ``503 busy`` (default 4 × workers)
``CRNNOCR_POOL_MAX_REQUESTS`` a worker is replaced after this many requests (default 1000; 0: never)
``CRNNOCR_POOL_MAX_RSS_MB``   ... or once its resident memory passes this (default 768; 0: never)
``CRNNOCR_CACHE_MB``          result cache shared by the workers (default 64; 0: no cache)

Asynchronous jobs (``ocr_http.jobs``), run by job runners beside the workers:

``CRNNOCR_JOB_DIR``           the job store: database, inputs, results (default: RUN_DIR/jobs)
``CRNNOCR_JOB_RUNNERS``       job runner processes (default 1; 0: no jobs, ``async=1`` is refused)
``CRNNOCR_JOB_QUEUE``         jobs queued or running before a submission is ``503 busy`` (default 64)
``CRNNOCR_JOB_MB``            input and result bytes the store holds before ``503 busy`` (default 2048)
``CRNNOCR_JOB_TTL_S``         a finished job, input and result, is deleted after this (default 86400)
``CRNNOCR_JOB_TIMEOUT_S``     a job running longer fails with ``timeout`` (default 1800; 0: no limit)
``CRNNOCR_JOB_ATTEMPTS``      runs of a job whose runner died before it fails (default 3)
``CRNNOCR_JOB_LEASE_S``       a running job whose runner is silent this long is run again (default 30)

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
MAX_JOB_RUNNERS = 16


class SettingsError(Exception):
    """A setting the pool cannot run with; the message names it."""


def _count(environ: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) < minimum:
        raise SettingsError(f"{name}={raw!r} is not a whole number ≥ {minimum}")
    return int(raw)


def _seconds(environ: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number of seconds") from None
    if not minimum <= value < float("inf"):  # also rejects NaN
        raise SettingsError(f"{name}={raw!r} must be at least {minimum:g}")
    return value


@dataclass(frozen=True)
class JobSettings:
    """Bounds of the job store and how its runners run (``ocr_http.jobs``, ``ocr_http.job_runner``)."""

    directory: Path | None = None  # None: RUN_DIR/jobs
    runners: int = 1
    max_queued: int = 64
    max_bytes: int = 2048 * MIB
    ttl_s: float = 86400.0
    timeout_s: float = 1800.0
    attempts: int = 3
    lease_s: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> JobSettings:
        directory = environ.get("CRNNOCR_JOB_DIR", "").strip()
        if directory and not directory.startswith("/"):
            raise SettingsError(f"CRNNOCR_JOB_DIR={directory!r} is not an absolute path")
        runners = _count(environ, "CRNNOCR_JOB_RUNNERS", 1)
        if runners > MAX_JOB_RUNNERS:
            raise SettingsError(f"CRNNOCR_JOB_RUNNERS={runners}: at most {MAX_JOB_RUNNERS}")
        return cls(
            directory=Path(directory) if directory else None,
            runners=runners,
            max_queued=_count(environ, "CRNNOCR_JOB_QUEUE", 64, minimum=1),
            max_bytes=_count(environ, "CRNNOCR_JOB_MB", 2048, minimum=1) * MIB,
            ttl_s=_seconds(environ, "CRNNOCR_JOB_TTL_S", 86400.0, minimum=1.0),
            timeout_s=_seconds(environ, "CRNNOCR_JOB_TIMEOUT_S", 1800.0),
            attempts=_count(environ, "CRNNOCR_JOB_ATTEMPTS", 3, minimum=1),
            lease_s=_seconds(environ, "CRNNOCR_JOB_LEASE_S", 30.0, minimum=1.0),
        )

    def store_dir(self, run_dir: Path) -> Path:
        return self.directory or run_dir / "jobs"


@dataclass(frozen=True)
class PoolSettings:
    workers: int
    queue_max: int
    max_requests: int
    max_rss_bytes: int
    cache_bytes: int
    http: CgiSettings
    jobs: JobSettings = JobSettings()

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
            jobs=JobSettings.from_env(environ),
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
