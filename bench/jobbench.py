"""Section 7: asynchronous jobs (issue 14): what submit + poll to done costs over a synchronous call.

One lighttpd with the worker pool it spawns (FastCGI; result cache off), the same receipt page and
the same three-page PDF of receipts sent both ways, interleaved round by round: synchronously
(``POST``), and as a job (``POST …?async=1``, then ``GET …?job=ID`` every ``POLL_S`` until done,
the result fetched in the last poll). The job's figure is what a client waits, submit to result.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

from bench.report import Section
from bench.tasks import read_labels
from deploy.servers import Server, call, installed_tree, serving

TITLE = "7. Asynchronous jobs: submit + poll to done against a synchronous call (issue 14)"
PAGE_SET = "sroie_receipts_en"
ROUNDS = {"page": 7, "pdf": 4}
POLL_S = 0.02
POOL_ENV = {"CRNNOCR_CACHE_MB": "0", "CRNNOCR_JOB_RUNNERS": "1"}


def _job_ms(server: Server, data: bytes, content_type: str) -> float:
    start = time.perf_counter()
    reply = call(server, "POST", "async=1", data, {"Content-Type": content_type})
    if reply.status != 202:
        raise RuntimeError(f"submit answered {reply.status}: {reply.body[:200]!r}")
    job = reply.json()["job"]
    while True:
        doc = call(server, "GET", f"job={job}").json()
        if doc.get("status") == "done":
            elapsed = (time.perf_counter() - start) * 1000.0
            call(server, "DELETE", f"job={job}")
            return elapsed
        if not doc.get("ok") or doc.get("status") == "failed":
            raise RuntimeError(f"job answered {doc}")
        time.sleep(POLL_S)


def _sync_ms(server: Server, data: bytes, content_type: str) -> float:
    start = time.perf_counter()
    reply = call(server, "POST", "", data, {"Content-Type": content_type})
    if reply.status != 200:
        raise RuntimeError(f"synchronous call answered {reply.status}: {reply.body[:200]!r}")
    return (time.perf_counter() - start) * 1000.0


def _measure(eval_dir: Path) -> list[str]:
    from tests.support import scanned_pdf

    labels = read_labels(eval_dir / PAGE_SET)
    pages = [(eval_dir / PAGE_SET / row["image"]).read_bytes() for row in labels[:3]]
    inputs = {"page": (pages[0], "image/jpeg"), "pdf": (scanned_pdf(pages), "application/pdf")}
    lines = ["| input | synchronous ms (median) | job ms, submit to result (median) | job − sync ms "
             "| ratio |", "|---|---|---|---|---|"]
    with installed_tree() as prefix, serving("lighttpd", "fastcgi", prefix, env=POOL_ENV) as srv:
        for name, (data, ctype) in inputs.items():
            _sync_ms(srv, data, ctype)  # warm both paths once, untimed
            _job_ms(srv, data, ctype)
            sync, job = [], []
            for _ in range(ROUNDS[name]):
                sync.append(_sync_ms(srv, data, ctype))
                job.append(_job_ms(srv, data, ctype))
            s, j = statistics.median(sync), statistics.median(job)
            label = "receipt page (JPEG)" if name == "page" else "3 receipts (PDF, 200 dpi)"
            lines.append(f"| {label} | {s:.0f} | {j:.0f} | {j - s:+.0f} | {j / s:.2f} |")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines += ["", f"{ROUNDS['page']} and {ROUNDS['pdf']} rounds, each way once per round in turn; the "
              f"client polls every {POLL_S * 1000:.0f} ms. Load average after: {load}."]
    return lines


def run(eval_dir: Path) -> Section:
    if not (eval_dir / PAGE_SET / "labels.jsonl").is_file():
        return Section(TITLE, skipped=f"{PAGE_SET} not in the eval data")
    print("== asynchronous jobs", file=sys.stderr, flush=True)
    try:
        return Section(TITLE, _measure(eval_dir))
    except Exception as exc:  # a section that fails must not lose the rest of the report
        return Section(TITLE, skipped=f"{type(exc).__name__}: {exc}"[:500])
