"""Section 3: the CGI under real lighttpd and Apache (issue 3), started by tests/servers.py.

Per server: hit latency (a fresh Python per request, so every hit is a cold start) for a line and a
page, requests/s at concurrency 1, 2 and 4 with ``ab``, and the summed memory of the server's
process tree (server + CGI processes) sampled while ``ab`` runs at concurrency 4.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Self

from bench.engines.specs import ROOT
from bench.report import FAIL, PASS, Section
from bench.tasks import read_labels

TITLE = "3. CGI (issue 3)"
LINE_HITS, PAGE_HITS = 15, 7
CONCURRENCY = (1, 2, 4)
LINE_TARGET_MS, PAGE_TARGET_MS, PAGES_PER_S_AT_2 = 150.0, 500.0, 2.0


@dataclass(frozen=True)
class AbRun:
    concurrency: int
    requests: int
    per_second: float
    failed: int  # connect/receive/exception failures and non-2xx replies


@dataclass(frozen=True)
class Memory:
    rss_mb: float  # peak of the summed RSS (shared pages counted once per process)
    pss_mb: float  # peak of the summed PSS (shared pages split between processes: the honest total)
    processes: int  # most processes seen at once


def _tree(root_pid: int) -> list[int]:
    """``root_pid`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _rss_pss_kb(pid: int) -> tuple[int, int]:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0, 0
    values = {
        k: int(v.split()[0])
        for k, v in (line.split(":", 1) for line in text.splitlines()[1:])
        if v.strip().endswith("kB")
    }
    return values.get("Rss", 0), values.get("Pss", 0)


class MemorySampler:
    """Samples the summed memory of a process tree every 50 ms on a thread, until stopped."""

    def __init__(self, root_pid: int) -> None:
        self.root_pid = root_pid
        self.peak = Memory(0.0, 0.0, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            pids = _tree(self.root_pid)
            usage = [_rss_pss_kb(pid) for pid in pids]
            rss, pss = sum(u[0] for u in usage) / 1024, sum(u[1] for u in usage) / 1024
            self.peak = Memory(
                max(self.peak.rss_mb, rss), max(self.peak.pss_mb, pss), max(self.peak.processes, len(pids))
            )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def ab(url: str, body: Path, content_type: str, concurrency: int, requests: int) -> AbRun:
    out = subprocess.run(
        [
            "ab",
            "-q",
            "-s",
            "60",
            "-n",
            str(requests),
            "-c",
            str(concurrency),
            "-p",
            str(body),
            "-T",
            content_type,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    rate = float(re.search(r"Requests per second:\s+([\d.]+)", out).group(1))
    # ab counts a body whose length differs from the first one's as failed; ours vary (timings in the JSON).
    breakdown = re.search(r"\(Connect: (\d+), Receive: (\d+), Length: \d+, Exceptions: (\d+)\)", out)
    failed = sum(map(int, breakdown.groups())) if breakdown else 0
    non2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
    return AbRun(concurrency, requests, rate, failed + (int(non2xx.group(1)) if non2xx else 0))


def _hit_ms(servers: ModuleType, server: Any, query: str, data: bytes, content_type: str, hits: int) -> float:
    """Median wall time of ``hits`` sequential POSTs, after one untimed hit; every reply must be ok."""
    samples = []
    for i in range(hits + 1):
        start = time.perf_counter()
        reply = servers.call(server, "POST", query, data, {"Content-Type": content_type})
        elapsed = (time.perf_counter() - start) * 1000.0
        if reply.status != 200 or not reply.json().get("ok"):
            raise RuntimeError(f"{server.kind} answered {reply.status}: {reply.body[:200]!r}")
        if i:
            samples.append(elapsed)
    return statistics.median(samples)


def _bench_server(servers: ModuleType, kind: str, prefix: Path, line: Path, page: Path) -> list[str]:
    with servers.running_server(kind, prefix) as server:
        line_ms = _hit_ms(servers, server, "mode=line", line.read_bytes(), "image/png", LINE_HITS)
        page_ms = _hit_ms(servers, server, "mode=page", page.read_bytes(), "image/jpeg", PAGE_HITS)
        rows = []
        memory = None
        for c in CONCURRENCY:
            line_run = ab(server.cgi_url + "?mode=line", line, "image/png", c, 10 * c)
            if c == max(CONCURRENCY):
                with MemorySampler(server.pid) as sampler:
                    page_run = ab(server.cgi_url + "?mode=page", page, "image/jpeg", c, 4 * c)
                memory = sampler.peak
            else:
                page_run = ab(server.cgi_url + "?mode=page", page, "image/jpeg", c, 6 + 2 * c)
            rows.append((c, line_run, page_run))
    line_ok, page_ok = (
        PASS if line_ms <= LINE_TARGET_MS else FAIL,
        PASS if page_ms <= PAGE_TARGET_MS else FAIL,
    )
    out = [
        f"### {kind}",
        "",
        "| measure | value | target | result |",
        "|---|---|---|---|",
        f"| line hit, median ms (n={LINE_HITS}) | {line_ms:.0f} | ≤ {LINE_TARGET_MS:.0f} ms | {line_ok} |",
        f"| page hit, median ms (n={PAGE_HITS}) | {page_ms:.0f} | ≤ {PAGE_TARGET_MS:.0f} ms | {page_ok} |",
    ]
    for c, line_run, page_run in rows:
        target = f"≥ {PAGES_PER_S_AT_2:.0f} pages/s" if c == 2 else ""
        verdict = (PASS if page_run.per_second >= PAGES_PER_S_AT_2 else FAIL) if c == 2 else ""
        failed = f", {line_run.failed + page_run.failed} failed" if line_run.failed + page_run.failed else ""
        out.append(
            f"| req/s at concurrency {c}: lines (n={line_run.requests}) / pages (n={page_run.requests}) | "
            f"{line_run.per_second:.1f} / {page_run.per_second:.2f}{failed} | {target} | {verdict} |"
        )
    if memory:
        out.append(
            f"| peak summed memory at concurrency {max(CONCURRENCY)} (pages; server + CGI processes) | "
            f"PSS {memory.pss_mb:.0f} MiB, RSS {memory.rss_mb:.0f} MiB, {memory.processes} processes | | |"
        )
    return [*out, ""]


def run(eval_dir: Path) -> Section:
    if not (ROOT / "tests" / "servers.py").is_file():
        return Section(TITLE, skipped="tests/servers.py (server fixtures) not in this checkout")
    if shutil.which("ab") is None:
        return Section(TITLE, skipped="ab not installed (apt-get install apache2-utils)")
    from tests import servers

    kinds = servers.servers_available()
    if not kinds:
        return Section(TITLE, skipped="neither lighttpd nor apache2 is installed")
    line = eval_dir / "sroie_lines_en" / read_labels(eval_dir / "sroie_lines_en")[0]["image"]
    page = eval_dir / "sroie_receipts_en" / read_labels(eval_dir / "sroie_receipts_en")[0]["image"]
    kib = page.stat().st_size // 1024
    sizes = f"line `{line.name}` ({line.stat().st_size} B), page `{page.name}` ({kib} KiB)"
    lines = [f"Raw-body POSTs from a client on this machine, {sizes}; `ab` for req/s (no keep-alive).", ""]
    try:
        with servers.installed_tree() as prefix:
            for kind in kinds:
                print(f"== CGI: {kind}", flush=True, file=sys.stderr)
                lines += _bench_server(servers, kind, prefix, line, page)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        return Section(TITLE, lines, skipped=f"{type(exc).__name__}: {exc}"[:500])
    return Section(TITLE, lines)
