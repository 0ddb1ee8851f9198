"""Asynchronous jobs (issue 14): submit, poll and fetch over the OCR endpoint, through real lighttpd
and Apache and a real pool; durable across a pool restart and a ``kill -9`` of the runner; bounded.

lighttpd speaks FastCGI to the pool it spawns; Apache runs ``ocr.cgi``, which forwards to a pool
started as its systemd unit would be: both gateways carry jobs. Runs are short documents; "slow"
ones are pages of 24 dense lines (about half a second each of one ONNX thread), so that a job is still
running when the test acts on it. That a job is running is read from the job itself, never
assumed from a sleep.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.servers import (
    Reply,
    Server,
    call,
    running_pool,
    running_server,
    serving,
    world_traversable_tempdir,
)
from deploy.sites import SiteConfig
from ocr_http.app import Services, respond
from ocr_http.jobs import DB_NAME, job_key
from ocr_http.settings import CgiSettings
from tests.support import render_text, scanned_pdf

WAIT_S = 90.0
PNG = {"Content-Type": "image/png"}
PDF = {"Content-Type": "application/pdf"}
# Small bounds, so that a dead runner's job is taken back in a second and the queue fills at three.
JOB_ENV = {"CRNNOCR_POOL_WORKERS": "1", "CRNNOCR_JOB_LEASE_S": "1", "CRNNOCR_JOB_ATTEMPTS": "2",
           "CRNNOCR_JOB_QUEUE": "2"}
PAGES = [["Quarterly report 2026", "page one of three"], ["Second page: 12 items"],
         ["Third page, total 42.50"]]

_serial = iter(range(1_000_000))


@pytest.fixture(scope="module")
def line_png() -> bytes:
    return render_text(["Invoice 2026: total 42.50 EUR"])


@pytest.fixture(scope="module")
def short_pdf() -> bytes:
    return scanned_pdf([render_text(lines) for lines in PAGES], dpi=100)


def slow_pdf() -> bytes:
    """Three dense pages, different every time."""
    n = next(_serial)
    pages = [render_text([f"Item {n}-{p}-{i}: 2 x espresso {i}.50 EUR, paid by card" for i in range(24)],
                         size=32) for p in range(3)]
    return scanned_pdf(pages, dpi=200)


@pytest.fixture(scope="module")
def lighttpd(prefix: Path) -> Iterator[Server]:
    with serving("lighttpd", "fastcgi", prefix, env=JOB_ENV) as server:
        yield server


@pytest.fixture(scope="module")
def apache(prefix: Path) -> Iterator[Server]:
    with serving("apache", "cgi-pool", prefix, env=JOB_ENV) as server:
        yield server


def submit(server: Server, body: bytes, query: str = "", headers: dict[str, str] | None = None) -> str:
    reply = call(server, "POST", "async=1" + (f"&{query}" if query else ""), body, headers or PNG)
    assert reply.status == 202, reply.body[:300]
    doc = reply.json()
    assert doc["ok"] is True and doc["status"] == "queued"
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", doc["job"])  # 192 random bits
    assert doc["status_url"] == reply.headers["location"] == f"/cgi-bin/ocr.cgi?job={doc['job']}"
    return str(doc["job"])


def state(server: Server, job: str, query: str = "") -> dict[str, Any]:
    reply = call(server, "GET", f"job={job}" + (f"&{query}" if query else ""))
    assert reply.status == 200, reply.body[:300]
    doc: dict[str, Any] = reply.json()
    assert doc["ok"] is True and doc["job"] == job
    return doc


def wait_state(server: Server, job: str, until: tuple[str, ...] = ("done", "failed"),
               seen: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        doc = state(server, job)
        if seen is not None:
            seen.append(doc)
        if doc["status"] in until:
            return doc
        time.sleep(0.05)
    raise AssertionError(f"job {job} did not reach {until} in {WAIT_S:g} s: {doc}")


def assert_error(reply: Reply, status: int, code: str) -> dict[str, Any]:
    assert reply.status == status, reply.body[:300]
    doc: dict[str, Any] = reply.json()
    assert doc["ok"] is False and doc["error"]["code"] == code, doc
    return doc


def job_dir(server: Server) -> Path:
    assert server.pool is not None
    return server.pool.run_dir / "jobs"


def job_files(directory: Path, job: str) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(job_key(job)))


def job_row(directory: Path, job: str) -> tuple[int, int] | None:
    """(attempts, runner pid) from the store itself: what no client is shown."""
    with contextlib.closing(sqlite3.connect(directory / DB_NAME, timeout=5)) as db:
        row = db.execute("SELECT attempts, runner_pid FROM jobs WHERE key = ?", (job_key(job),)).fetchone()
    return (int(row[0]), int(row[1] or 0)) if row else None


def wait_running(server: Server, job: str) -> dict[str, Any]:
    """Until its runner has opened the document (pages_total known) and not finished it."""
    doc = wait_state(server, job, until=("running", "done", "failed"))
    assert doc["status"] == "running", doc
    return doc


def without_timings(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "timing_ms"}


# --- Submit, poll, fetch ---------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["lighttpd", "apache"])
def test_an_image_and_a_pdf_give_the_synchronous_answer(which: str, request: pytest.FixtureRequest,
                                                         line_png: bytes, short_pdf: bytes) -> None:
    server: Server = request.getfixturevalue(which)
    for body, headers, query in ((line_png, PNG, "mode=line"), (short_pdf, PDF, "dpi=100&preview=1")):
        job = submit(server, body, query, headers)
        seen: list[dict[str, Any]] = []
        done = wait_state(server, job, seen=seen)
        assert done["status"] == "done", done
        total = len(PAGES) if body is short_pdf else 1
        assert done["pages_done"] == done["pages_total"] == total
        assert all(doc["status"] in ("queued", "running", "done") for doc in seen)
        progress = [doc["pages_done"] for doc in seen]
        assert progress == sorted(progress)  # pages_done only grows
        sync = call(server, "POST", query, body, headers)
        assert sync.status == 200
        assert without_timings(done["result"]) == without_timings(sync.json())
        for fmt in ("text", "hocr", "alto", "tsv") if body is short_pdf else ("text",):
            fetched = call(server, "GET", f"job={job}&format={fmt}")
            same = call(server, "POST", f"{query}&format={fmt}", body, headers)
            assert (fetched.status, fetched.headers["content-type"]) == (200, same.headers["content-type"])
            assert fetched.body == same.body, fmt
        with_words = state(server, job, "words=1")["result"]
        assert without_timings(with_words) == without_timings(call(server, "POST", f"{query}&words=1", body,
                                                                   headers).json())
        assert state(server, job) == done  # fetched again: the same, until it expires or is deleted


def test_a_job_not_done_answers_202_to_a_format_other_than_json(lighttpd: Server) -> None:
    job = submit(lighttpd, slow_pdf(), "", PDF)
    reply = call(lighttpd, "GET", f"job={job}&format=text")
    assert reply.status == 202 and reply.json()["status"] in ("queued", "running")
    assert call(lighttpd, "DELETE", f"job={job}").status == 200


def test_a_job_that_cannot_be_read_fails_with_the_synchronous_code(apache: Server) -> None:
    broken = scanned_pdf([render_text(["fine"])])[:400]  # a PDF cut short: decode_failed when read
    job = submit(apache, broken, "", PDF)
    done = wait_state(apache, job)
    assert done["status"] == "failed" and done["error"]["code"] == "decode_failed", done
    assert_error(call(apache, "GET", f"job={job}&format=text"), 422, "decode_failed")
    # What the first bytes show is refused at once, as the synchronous call refuses it.
    assert_error(call(apache, "POST", "async=1", b"not an image at all", PNG), 415, "unsupported_media_type")
    assert_error(call(apache, "POST", "async=1&mode=sideways", b"x", PNG), 400, "bad_request")


# --- IDs, deletion, bounds ------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["lighttpd", "apache"])
def test_unknown_or_garbled_ids_are_404_and_delete_reaches_the_application(
        which: str, request: pytest.FixtureRequest, line_png: bytes) -> None:
    server: Server = request.getfixturevalue(which)
    for bad in ("A" * 32, "abc", "%2e%2e%2fjobs.sqlite", "x" * 200, ""):
        doc = assert_error(call(server, "GET", f"job={bad}"), 404 if bad else 400,
                           "not_found" if bad else "bad_request")
        assert "/" not in doc["error"]["message"]  # nothing internal
        assert_error(call(server, "DELETE", f"job={bad}"), 404 if bad else 400,
                     "not_found" if bad else "bad_request")
    job = submit(server, line_png, "mode=line")
    assert wait_state(server, job)["status"] == "done"
    assert job_files(job_dir(server), job) == [job_key(job) + ".result"]  # the input went once read
    reply = call(server, "DELETE", f"job={job}")
    assert reply.status == 200 and reply.json() == {"ok": True, "job": job, "deleted": True, "was": "done"}
    assert_error(call(server, "GET", f"job={job}"), 404, "not_found")
    assert_error(call(server, "DELETE", f"job={job}"), 404, "not_found")
    assert job_files(job_dir(server), job) == []
    assert call(server, "OPTIONS").headers["allow"] == "GET, HEAD, POST, DELETE, OPTIONS"


def test_delete_stops_a_running_job_and_a_full_queue_is_503_busy(lighttpd: Server, line_png: bytes) -> None:
    running = submit(lighttpd, slow_pdf(), "", PDF)
    wait_running(lighttpd, running)
    queued = submit(lighttpd, slow_pdf(), "", PDF)
    reply = call(lighttpd, "POST", "async=1", line_png, PNG)  # CRNNOCR_JOB_QUEUE=2
    assert_error(reply, 503, "busy")
    assert reply.headers["retry-after"] == "1"
    assert call(lighttpd, "DELETE", f"job={running}").json()["was"] == "running"
    assert call(lighttpd, "DELETE", f"job={queued}").json()["was"] in ("queued", "running")
    # The runner drops the deleted job at its next page and takes the next one.
    job = submit(lighttpd, line_png, "mode=line")
    assert wait_state(lighttpd, job)["status"] == "done"
    directory = job_dir(lighttpd)
    assert job_files(directory, running) == job_files(directory, queued) == []


# --- Faults ---------------------------------------------------------------------------------------

def test_kill_9_of_the_runner_retries_the_job_and_a_job_that_keeps_killing_it_fails(lighttpd: Server) -> None:
    directory = job_dir(lighttpd)
    job = submit(lighttpd, slow_pdf(), "", PDF)
    wait_running(lighttpd, job)
    row = job_row(directory, job)
    assert row is not None and row[0] == 1
    os.kill(row[1], signal.SIGKILL)
    done = wait_state(lighttpd, job)
    assert done["status"] == "done" and done["pages_done"] == 3, done
    assert (job_row(directory, job) or (0, 0))[0] == 2  # the second run read it

    # A job that kills every runner that reads it fails after CRNNOCR_JOB_ATTEMPTS=2 runs.
    poisoned = submit(lighttpd, slow_pdf(), "", PDF)
    killed: set[int] = set()
    deadline = time.monotonic() + WAIT_S
    while (doc := state(lighttpd, poisoned))["status"] != "failed" and time.monotonic() < deadline:
        row = job_row(directory, poisoned)
        if doc["status"] == "running" and row and row[1] not in killed:
            killed.add(row[1])
            with contextlib.suppress(ProcessLookupError):
                os.kill(row[1], signal.SIGKILL)
        time.sleep(0.05)
    assert doc["status"] == "failed" and doc["error"]["code"] == "internal", doc
    assert "2 times" in doc["error"]["message"] and len(killed) == 2
    log = lighttpd.error_log_text()
    assert "killed by signal 9; replacing it" in log and "Traceback" not in log
    assert job_files(directory, poisoned) == []  # a failed job keeps no input


def test_a_pool_restart_mid_job_finishes_it_and_expiry_removes_everything(prefix: Path,
                                                                          line_png: bytes) -> None:
    """SIGTERM to the pool with one job running and one queued; without a pool, jobs are refused
    with a message that says what to start; a new pool (with a TTL of 2 s) finishes both, and
    2 s after they are done nothing of them is left."""
    run_dir = world_traversable_tempdir("crnnocr-jobs-restart-")
    try:
        site = SiteConfig(kind="lighttpd", prefix=prefix, port=0, run_dir=run_dir, env=JOB_ENV)
        site.make_dirs()
        short_ttl = SiteConfig(kind="lighttpd", prefix=prefix, port=0, run_dir=run_dir,
                               env={**JOB_ENV, "CRNNOCR_JOB_TTL_S": "2"})
        with running_server("lighttpd", prefix, env=JOB_ENV, run_dir=run_dir) as server:
            with running_pool(prefix, site) as pool:
                server = Server(**{**server.__dict__, "pool": pool})
                running = submit(server, slow_pdf(), "", PDF)
                wait_running(server, running)
                queued = submit(server, line_png, "mode=line")
            # The runner gave the job back at its next page, uncounted.
            with contextlib.closing(sqlite3.connect(site.pool_dir / "jobs" / DB_NAME)) as db:
                rows = db.execute("SELECT status, pages_done, attempts FROM jobs ORDER BY created").fetchall()
            assert rows == [("queued", 0, 0), ("queued", 0, 0)]
            # The pool is gone: the CGI answers by itself, and cannot run jobs.
            for method, query, body in (("POST", "async=1", line_png), ("GET", f"job={running}", None),
                                        ("DELETE", f"job={running}", None)):
                reply = call(server, method, query, body, PNG if body else {})
                doc = assert_error(reply, 503, "jobs_unavailable")
                assert "crnnocr-pool" in doc["error"]["message"]
            assert call(server, "POST", "mode=line", line_png, PNG).status == 200  # synchronous still works
            with running_pool(prefix, short_ttl):
                for job in (running, queued):
                    done = wait_state(server, job)
                    assert done["status"] == "done", done
                assert done["result"]["text"] == "Invoice 2026: total 42.50 EUR"
                time.sleep(2.0)
                deadline = time.monotonic() + WAIT_S
                directory = site.pool_dir / "jobs"
                while any(job_files(directory, j) for j in (running, queued)) and time.monotonic() < deadline:
                    time.sleep(0.1)
                for job in (running, queued):
                    assert_error(call(server, "GET", f"job={job}"), 404, "not_found")
                    assert job_files(directory, job) == []
                assert all(p.name.startswith(DB_NAME) for p in directory.iterdir())
                assert directory.stat().st_mode & 0o777 == 0o700
            log = (site.pool_dir / "pool.log").read_text()
            assert "Traceback" not in log
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


class _NoBody:
    def read_exactly(self, length: int) -> bytes:
        raise AssertionError("a poll has no body")

    def read_unsized(self, cap: int) -> bytes:
        raise AssertionError("a poll has no body")


def test_a_pool_that_runs_no_jobs_says_so_and_the_cgi_says_to_start_one() -> None:
    """The application as a pool worker with CRNNOCR_JOB_RUNNERS=0 runs it (a pool, no job store),
    and as the CGI alone runs it."""
    environ = {"REQUEST_METHOD": "GET", "QUERY_STRING": "job=" + "A" * 32}
    for services, says in ((Services(pool_status=lambda: {}), "CRNNOCR_JOB_RUNNERS=0"),
                           (Services(), "start crnnocr-pool")):
        reply = respond(environ, _NoBody(), CgiSettings(), services)
        doc = json.loads(reply.body)
        assert reply.status == 503 and doc["error"]["code"] == "jobs_unavailable"
        assert says in doc["error"]["message"]


def test_the_readme_job_examples_run_as_written(lighttpd: Server, tmp_path: Path) -> None:
    """The README's job examples, one shell script (``$JOB`` carries over), against lighttpd."""
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    start, end = "<!-- job-examples:start -->", "<!-- job-examples:end -->"
    block = readme.split(start, 1)[1].split(end, 1)[0].split("```sh\n", 1)[1].rsplit("```", 1)[0]
    script = "set -e\n" + block.replace("http://localhost:8080/", lighttpd.url)
    (tmp_path / "scan.pdf").write_bytes(scanned_pdf([render_text(lines) for lines in PAGES], dpi=200))
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          timeout=WAIT_S, check=False)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert '"status":"queued"' in out and '"pages_total":' in out and '"deleted":true' in out, out
    assert "Quarterly report 2026" in out and "\f" in out  # the text, pages split by form feeds


def test_nothing_left_behind(lighttpd: Server, apache: Server) -> None:
    for server in (lighttpd, apache):
        assert not any(server.tmp_dir.iterdir())
        for log in {server.error_log, *([server.pool.log] if server.pool else [])}:
            assert "Traceback" not in log.read_text(), log
    assert json.loads(call(apache, "GET").body)["ok"] is True
