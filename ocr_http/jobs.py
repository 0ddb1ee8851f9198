"""The job store: asynchronous jobs, durable across restarts of the pool, bounded in count, bytes and time.

One directory (``CRNNOCR_JOB_DIR``, by default the pool's ``RUN_DIR/jobs``) holds ``jobs.sqlite``
(WAL mode: the workers that submit and answer polls read while a runner writes) and, per job, its
input (``KEY.input``) and, once done, its result (``KEY.result``). ``KEY`` is the SHA-256 of the
job's ID: the ID (192 random bits) is the only capability and is stored nowhere, so neither the
database nor a directory listing gives a way to read a job.

A job is ``queued``, then ``running`` under a lease its runner renews (``heartbeat``), then ``done``
or ``failed``. A runner that dies stops renewing: once the lease has run out the job is queued
again, up to ``JobSettings.attempts`` runs, then ``failed``. A finished job expires ``ttl_s``
after it finished; deleting a job (or its expiry) removes its row and both files at once, and
``secure_delete`` overwrites what the database held of it.

Every operation is one short transaction; ``BEGIN IMMEDIATE`` where a decision (a bound, a claim)
must not race another process.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocr_core.errors import ErrorCode, OcrError

from .pool_settings import JobSettings

DB_NAME = "jobs.sqlite"
INPUT_SUFFIX = ".input"
RESULT_SUFFIX = ".result"
ID_BYTES = 24  # 192 bits, as 32 URL-safe characters
JOB_ID = re.compile(r"[A-Za-z0-9_-]{32}")
BUSY_TIMEOUT_S = 5.0
# A file with no row (a submission or a result cut off between writing it and committing its row)
# is removed once it is this old: older than any transaction in flight.
ORPHAN_AGE_S = 3600.0
STATUSES = ("queued", "running", "done", "failed")
SCHEMA = """
PRAGMA journal_mode=WAL;
CREATE TABLE IF NOT EXISTS jobs (
    key TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    query TEXT NOT NULL,
    input_bytes INTEGER NOT NULL,
    result_bytes INTEGER NOT NULL DEFAULT 0,
    pages_done INTEGER NOT NULL DEFAULT 0,
    pages_total INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until REAL,
    runner_pid INTEGER,
    error_code TEXT,
    error_message TEXT,
    created REAL NOT NULL,
    finished REAL,
    expires REAL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs(status, created);
CREATE INDEX IF NOT EXISTS jobs_by_expiry ON jobs(expires);
"""


def job_key(job_id: str) -> str:
    return hashlib.sha256(job_id.encode("ascii")).hexdigest()


def not_found() -> OcrError:
    return OcrError(ErrorCode.NOT_FOUND, "no such job: it never existed, was deleted, or its results "
                                         "expired")


@dataclass(frozen=True)
class JobState:
    """What a poll shows of a job; ``result_path`` is set once it is done."""

    status: str
    pages_done: int
    pages_total: int | None
    error: OcrError | None = None
    result_path: Path | None = None


@dataclass(frozen=True)
class ClaimedJob:
    """A job a runner holds: its key, its input, the query it was submitted with."""

    key: str
    input_path: Path
    query: str
    attempt: int


def create(directory: Path) -> Path:
    """The directory (private to the pool's user) and the database's schema; the supervisor
    calls this once before any worker or runner starts."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / DB_NAME
    with sqlite3.connect(path, timeout=BUSY_TIMEOUT_S) as db:
        db.executescript(SCHEMA)
    db.close()
    return path


def _fsync_write(path: Path, data: bytes) -> None:
    """``data`` at ``path`` whole or not at all, on disk before the row that names it commits."""
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, path)


class JobStore:
    """The store as one process uses it (a worker, a runner): one connection, made on first use."""

    def __init__(self, directory: Path, settings: JobSettings,
                 on_submit: Callable[[], None] | None = None) -> None:
        """``on_submit`` is called after each submission (a worker wakes the runners with it)."""
        self.directory = directory
        self.settings = settings
        self._on_submit = on_submit
        self._db: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = sqlite3.connect(self.directory / DB_NAME, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA secure_delete=ON")
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _write(self) -> sqlite3.Connection:
        """A connection inside a write transaction: a decision taken in it does not race another process."""
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        return db

    def input_path(self, key: str) -> Path:
        return self.directory / (key + INPUT_SUFFIX)

    def result_path(self, key: str) -> Path:
        return self.directory / (key + RESULT_SUFFIX)

    # --- what clients do ----------------------------------------------------------------------------

    def submit(self, data: bytes, query: str) -> str:
        """Queue ``data`` to be read with ``query``; the new job's ID. ``busy`` past the bounds."""
        job_id = secrets.token_urlsafe(ID_BYTES)
        key = job_key(job_id)
        path = self.input_path(key)
        _fsync_write(path, data)
        try:
            db = self._write()
            try:
                (waiting,) = db.execute(
                    "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')").fetchone()
                (stored,) = db.execute(
                    "SELECT coalesce(sum(input_bytes + result_bytes), 0) FROM jobs").fetchone()
                if waiting >= self.settings.max_queued:
                    raise OcrError(ErrorCode.BUSY, f"{waiting} jobs are waiting, the limit; retry later")
                if stored + len(data) > self.settings.max_bytes:
                    raise OcrError(ErrorCode.BUSY, "the job store is full until finished jobs expire or are "
                                                   "deleted; retry later")
                db.execute("INSERT INTO jobs (key, status, query, input_bytes, created) "
                           "VALUES (?, 'queued', ?, ?, ?)", (key, query, len(data), time.time()))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        if self._on_submit is not None:
            self._on_submit()
        return job_id

    def state(self, job_id: str) -> JobState:
        """The job's state; ``not_found`` for an unknown, deleted, expired or malformed ID."""
        if not JOB_ID.fullmatch(job_id):
            raise not_found()
        key = job_key(job_id)
        row = self._connection().execute(
            "SELECT status, pages_done, pages_total, error_code, error_message, expires FROM jobs "
            "WHERE key = ?", (key,)).fetchone()
        if row is None or (row[5] is not None and row[5] <= time.time()):
            raise not_found()
        status, done, total, code, message, _expires = row
        error = OcrError(ErrorCode(code), message) if status == "failed" else None
        return JobState(status, done, total, error, self.result_path(key) if status == "done" else None)

    def delete(self, job_id: str) -> str:
        """Remove the job, its input and result; a running job stops at its runner's next page.
        Returns the status it had."""
        if not JOB_ID.fullmatch(job_id):
            raise not_found()
        key = job_key(job_id)
        row = self._connection().execute("DELETE FROM jobs WHERE key = ? RETURNING status, expires",
                                         (key,)).fetchone()
        if row is None:
            raise not_found()
        self._remove_files(key)
        if row[1] is not None and row[1] <= time.time():
            raise not_found()  # it had expired: gone now, as it would have been at the next sweep
        return str(row[0])

    def _remove_files(self, key: str) -> None:
        self.input_path(key).unlink(missing_ok=True)
        self.result_path(key).unlink(missing_ok=True)

    # --- what runners do ----------------------------------------------------------------------------

    def claim(self, owner: str, pid: int) -> ClaimedJob | None:
        """The oldest queued job, now running under ``owner``'s lease; first, jobs whose runner
        went silent are queued again, or failed once they have had every attempt."""
        now = time.time()
        db = self._write()
        try:
            given_up = db.execute(
                "UPDATE jobs SET status = 'failed', error_code = ?, error_message = ?, finished = ?, "
                "expires = ?, lease_owner = NULL "
                "WHERE status = 'running' AND lease_until < ? AND attempts >= ? RETURNING key",
                (ErrorCode.INTERNAL.value, f"the job stopped the process reading it {self.settings.attempts} "
                 "times; it is not tried again", now, now + self.settings.ttl_s, now,
                 self.settings.attempts)).fetchall()
            db.execute("UPDATE jobs SET status = 'queued', lease_owner = NULL "
                       "WHERE status = 'running' AND lease_until < ?", (now,))
            row = db.execute(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, pages_done = 0, "
                "lease_owner = ?, lease_until = ?, runner_pid = ? "
                "WHERE key = (SELECT key FROM jobs WHERE status = 'queued' ORDER BY created LIMIT 1) "
                "RETURNING key, query, attempts",
                (owner, now + self.settings.lease_s, pid)).fetchone()
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        for (failed,) in given_up:
            self.input_path(failed).unlink(missing_ok=True)
        if row is None:
            return None
        key, query, attempts = row
        return ClaimedJob(key, self.input_path(key), query, attempts)

    def heartbeat(self, key: str, owner: str) -> bool:
        """Renew the lease; False once the job is no longer this runner's (deleted, or taken back)."""
        cursor = self._connection().execute(
            "UPDATE jobs SET lease_until = ? WHERE key = ? AND status = 'running' AND lease_owner = ?",
            (time.time() + self.settings.lease_s, key, owner))
        return cursor.rowcount == 1

    def progress(self, key: str, owner: str, done: int, total: int) -> bool:
        cursor = self._connection().execute(
            "UPDATE jobs SET pages_done = ?, pages_total = ?, lease_until = ? "
            "WHERE key = ? AND status = 'running' AND lease_owner = ?",
            (done, total, time.time() + self.settings.lease_s, key, owner))
        return cursor.rowcount == 1

    def finish(self, key: str, owner: str, result: dict[str, Any]) -> None:
        """Store the result and mark the job done (unless it was deleted meanwhile)."""
        data = json.dumps(result, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        path = self.result_path(key)
        _fsync_write(path, data)
        now = time.time()
        cursor = self._connection().execute(
            "UPDATE jobs SET status = 'done', result_bytes = ?, finished = ?, expires = ?, "
            "lease_owner = NULL WHERE key = ? AND status = 'running' AND lease_owner = ?",
            (len(data), now, now + self.settings.ttl_s, key, owner))
        if cursor.rowcount != 1:
            path.unlink(missing_ok=True)
            return
        self.input_path(key).unlink(missing_ok=True)  # read for good: only the result is kept

    def fail(self, key: str, owner: str, error: OcrError) -> None:
        now = time.time()
        cursor = self._connection().execute(
            "UPDATE jobs SET status = 'failed', error_code = ?, error_message = ?, finished = ?, "
            "expires = ?, lease_owner = NULL WHERE key = ? AND status = 'running' AND lease_owner = ?",
            (error.code.value, error.message, now, now + self.settings.ttl_s, key, owner))
        if cursor.rowcount == 1:
            self.input_path(key).unlink(missing_ok=True)

    def release(self, key: str, owner: str) -> None:
        """Give the job back to the queue without counting this run (the runner is told to stop)."""
        self._connection().execute(
            "UPDATE jobs SET status = 'queued', attempts = attempts - 1, pages_done = 0, lease_owner = NULL "
            "WHERE key = ? AND status = 'running' AND lease_owner = ?", (key, owner))

    def sweep(self) -> int:
        """Delete expired jobs with their files, and files no row names; the number of jobs removed."""
        now = time.time()
        rows = self._connection().execute(
            "DELETE FROM jobs WHERE expires IS NOT NULL AND expires <= ? RETURNING key", (now,)).fetchall()
        for (key,) in rows:
            self._remove_files(key)
        keys = {key for (key,) in self._connection().execute("SELECT key FROM jobs")}
        for entry in os.scandir(self.directory):
            stem = entry.name.split(".", 1)[0]
            if entry.name.startswith(DB_NAME) or stem in keys:
                continue
            try:
                if now - entry.stat(follow_symlinks=False).st_mtime > ORPHAN_AGE_S:
                    os.unlink(entry.path)
            except OSError:
                pass
        return len(rows)
