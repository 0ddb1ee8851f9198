"""The pool's result cache: same image, same everything that shapes the result → the stored result.

One SQLite file in WAL mode in the pool's run directory, shared by all workers (readers never
wait for the writer; writers queue on SQLite's lock). Least recently used entries go first once
the stored results pass the byte bound. The key is a SHA-256 over the image's SHA-256 and, as
JSON: every field of the engine's configuration (so a field added to ``EngineConfig`` is in the
key without anyone remembering to add it), every field of the call's options, the pack's identity
(its manifest entry and the size and modification time of each of its files, so a model updated
in place misses), the runtime that runs it (``auto`` resolved: name, version, precision; bf16
scores differ from f32 ones) and the core's version. The output format is not in the key: JSON and text are
rendered from the same stored result.

The cache only saves time: any SQLite error turns it off for this worker, with one log line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from ocr_core import __version__
from ocr_core.backends import plan
from ocr_core.config import EngineConfig, RecognizeOptions
from ocr_core.packs import pack_spec

from .app import log

FILE_NAME = "results.sqlite"
BUSY_TIMEOUT_MS = 2000
# One result may take at most this share of the bound, so that one huge page cannot flush the rest.
MAX_ENTRY_SHARE = 8
SCHEMA = """
PRAGMA journal_mode=WAL;
CREATE TABLE IF NOT EXISTS results (
    key BLOB PRIMARY KEY, value BLOB NOT NULL, bytes INTEGER NOT NULL, used REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS results_by_use ON results(used);
CREATE TABLE IF NOT EXISTS total (bytes INTEGER NOT NULL);
INSERT INTO total SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM total);
"""


def create(run_dir: Path) -> Path:
    """Make the database and its schema (the supervisor, once, before any worker starts)."""
    path = run_dir / FILE_NAME
    with sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000) as db:
        db.executescript(SCHEMA)
    db.close()
    return path


def _pack_identity(config: EngineConfig) -> list[Any]:
    spec = pack_spec(config.model_dir, config.pack)
    files = []
    for role, file in sorted(spec.files.items()):
        try:
            info = spec.path(config.model_dir, role).stat()
            files.append([role, file.sha256, info.st_size, info.st_mtime_ns])
        except OSError:
            files.append([role, file.sha256, None, None])
    return files


class ResultCache:
    """``lookup`` and ``store`` for ``ocr_http.app``; one connection per process, made on first use."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self._path = path
        self._max_bytes = max_bytes
        self._db: sqlite3.Connection | None = None
        self._packs: dict[tuple[str, str], list[Any]] = {}
        self._runtimes: dict[str, dict[str, str]] = {}
        self._off = False

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            self._db.execute("PRAGMA synchronous=NORMAL")
        return self._db

    def key(self, image: bytes, config: EngineConfig, options: RecognizeOptions) -> bytes:
        pack = (str(config.model_dir), config.pack)
        if pack not in self._packs:  # a worker lives for one set of pack files: stat them once
            self._packs[pack] = _pack_identity(config)
        if config.backend not in self._runtimes:
            self._runtimes[config.backend] = plan(config.backend).to_dict()
        shape = {
            "config": dataclasses.asdict(config),
            "options": dataclasses.asdict(options),
            "pack": self._packs[pack],
            "runtime": self._runtimes[config.backend],
            "version": __version__,
        }
        digest = hashlib.sha256(hashlib.sha256(image).digest())
        digest.update(json.dumps(shape, sort_keys=True, default=str).encode())
        return digest.digest()

    def _give_up(self, exc: Exception) -> None:
        self._off = True
        log(f"result cache off in worker: {type(exc).__name__}: {exc}")

    def lookup(self, image: bytes, config: EngineConfig, options: RecognizeOptions) -> dict[str, Any] | None:
        if self._off:
            return None
        try:
            key = self.key(image, config, options)
            db = self._connection()
            row = db.execute("SELECT value FROM results WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE results SET used = ? WHERE key = ?", (time.time(), key))
            found: dict[str, Any] = json.loads(row[0])
            return found
        except (sqlite3.Error, ValueError) as exc:
            self._give_up(exc)
            return None

    def store(self, image: bytes, config: EngineConfig, options: RecognizeOptions,
              result: dict[str, Any]) -> None:
        if self._off:
            return
        value = json.dumps(result, ensure_ascii=False, separators=(",", ":")).encode()
        if len(value) * MAX_ENTRY_SHARE > self._max_bytes:
            return
        try:
            key = self.key(image, config, options)
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                old = db.execute("SELECT bytes FROM results WHERE key = ?", (key,)).fetchone()
                db.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?)",
                           (key, value, len(value), time.time()))
                db.execute("UPDATE total SET bytes = bytes + ?", (len(value) - (old[0] if old else 0),))
                self._evict(db)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self._give_up(exc)

    def _evict(self, db: sqlite3.Connection) -> None:
        """Drop least recently used results until the total is within the bound."""
        (total,) = db.execute("SELECT bytes FROM total").fetchone()
        while total > self._max_bytes:
            rows = db.execute("SELECT key, bytes FROM results ORDER BY used LIMIT 64").fetchall()
            if not rows:
                break
            for key, size in rows:
                if total <= self._max_bytes:
                    break
                db.execute("DELETE FROM results WHERE key = ?", (key,))
                total -= size
        db.execute("UPDATE total SET bytes = ?", (total,))
