"""Section 3: the HTTP endpoint under real lighttpd and Apache (issues 3 and 9), via ``deploy.servers``.

Each server is run three ways at once, on the same images: ``cgi`` (a fresh Python per hit),
``cgi-pool`` (ocr.cgi forwarding to the worker pool) and ``fastcgi`` (the server speaking FastCGI to
the pool). Beside them, the same engine warm in a process of its own with the pool's configuration
(one inference thread, the same backend rule). Hits are timed in rounds, every way once per round
in turn, so a busy spell lands on all of them alike. Then requests/s with ``ab`` at concurrency 1,
2, 4 and 8; pages/s of two clients of the pool beside two warm in-process workers, measured the
same way; the result cache's hit time, how long the forwarder takes to start and connect, and the
pool's memory after many pages.

The result cache is off for everything but its own row (the same image is posted again and again).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from bench.engines.specs import ROOT
from bench.report import FAIL, PASS, Section
from bench.tasks import read_labels

TITLE = "3. HTTP: the CGI and the worker pool (issues 3, 9)"
LINE_HITS, PAGE_HITS = 20, 7
CONCURRENCY = (1, 2, 4, 8)
FORWARDER_RUNS = 20
# Pages/s at concurrency 2 (issue 9's ratio): two callers, each reading this many pages back to back
# after one untimed page, the pool's through the server and the in-process workers' over their
# pipes. Not ab's figure: ab sends its first request alone and opens the other connections once it
# is answered (strace of ab 2.3), so at c=2 its 6-page run was 4 page times instead of 3 and read
# 0.86-0.93x; the same pool read 1.0x with two callers of its own.
PAGES_PER_CALLER = 8
DEFAULT_POOL_PAGES = 100  # --pool-pages: 1000 for the memory figure (~7 min more)
POOL_ENV = {"CRNNOCR_CACHE_MB": "0"}
# Issue 9's targets.
FORWARDED_LINE_MS, FASTCGI_LINE_MS, PAGE_VS_WARM, PAGES_AT_2_VS_TWO = 35.0, 20.0, 1.1, 0.9
CACHE_HIT_MS, FORWARDER_MS, PSS_PER_WORKER_MIB = 10.0, 15.0, 250.0


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


class InProcess:
    """The engine warm in a process of its own, as a pool worker has it (``crnnocr --serve``)."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.engines.crnnocr", "--serve", json.dumps({"worker": True})],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def time_ms(self, image: Path, mode: str) -> float:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps({"path": str(image), "mode": mode}) + "\n")
        self._proc.stdin.flush()
        reply = json.loads(self._proc.stdout.readline() or '{"error": "the engine exited"}')
        if "error" in reply:
            raise RuntimeError(f"in-process engine: {reply['error']}")
        return float(reply["ms"])

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(timeout=60)


@contextmanager
def in_process(count: int = 1) -> Iterator[list[InProcess]]:
    engines = [InProcess() for _ in range(count)]
    try:
        yield engines
    finally:
        for engine in engines:
            engine.close()


def _median_p90(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered):.1f} / {p90:.1f}"


def _hit_ms(servers: Any, server: Any, query: str, data: bytes, content_type: str) -> float:
    start = time.perf_counter()
    reply = servers.call(server, "POST", query, data, {"Content-Type": content_type})
    elapsed = (time.perf_counter() - start) * 1000.0
    if reply.status != 200 or not reply.json().get("ok"):
        raise RuntimeError(f"{server.kind} {server.path} answered {reply.status}: {reply.body[:200]!r}")
    return elapsed


def _latencies(
    servers: Any, running: dict[str, Any], engine: InProcess, line: Path, page: Path
) -> dict[tuple[str, str], list[float]]:
    """Median-ready samples per (way, mode): every way once per round, after one untimed round."""
    samples: dict[tuple[str, str], list[float]] = {}
    for mode, image, ctype, hits in (
        ("line", line, "image/png", LINE_HITS),
        ("page", page, "image/jpeg", PAGE_HITS),
    ):
        data = image.read_bytes()
        for round_ in range(hits + 1):
            for path, server in running.items():
                ms = _hit_ms(servers, server, f"mode={mode}", data, ctype)
                if round_:
                    samples.setdefault((path, mode), []).append(ms)
            ms = engine.time_ms(image, mode)
            if round_:
                samples.setdefault(("in-process", mode), []).append(ms)
    return samples


def _pages_per_s(callers: list[Callable[[], object]]) -> float:
    """Pages/s of ``callers`` reading side by side, each ``PAGES_PER_CALLER`` pages after one untimed."""
    for read_page in callers:
        read_page()
    start = time.perf_counter()
    threads = [
        threading.Thread(target=lambda read_page=read_page: [read_page() for _ in range(PAGES_PER_CALLER)])
        for read_page in callers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(callers) * PAGES_PER_CALLER / (time.perf_counter() - start)


def _pages_at_2(servers: Any, server: Any, page: Path) -> tuple[float, float]:
    """Pages/s of two clients of the pool (FastCGI direct), then of two warm in-process workers."""
    data = page.read_bytes()
    pool = _pages_per_s([lambda: _hit_ms(servers, server, "mode=page", data, "image/jpeg")] * 2)
    with in_process(2) as engines:
        alone = _pages_per_s([lambda e=e: e.time_ms(page, "page") for e in engines])
    return pool, alone


def _forwarder_ms(prefix: Path, socket_path: Path) -> tuple[float, float]:
    """Whole-process wall time of ocr.cgi forwarding an OPTIONS (start, connect, answer), and of
    the same interpreter doing nothing, as the shebang runs it (medians, interleaved)."""
    cgi = prefix / "cgi-bin" / "ocr.cgi"
    python, *flags = cgi.read_text().splitlines()[0][2:].split()
    env = {"REQUEST_METHOD": "OPTIONS", "CRNNOCR_POOL_SOCKET": str(socket_path)}
    forward, bare = [], []
    for _ in range(FORWARDER_RUNS + 1):
        for command, out in (([python, *flags, str(cgi)], forward), ([python, *flags, "-c", "pass"], bare)):
            start = time.perf_counter()
            done = subprocess.run(command, env=env, capture_output=True, check=True, timeout=60)
            out.append((time.perf_counter() - start) * 1000.0)
            if command[-1] == str(cgi) and not done.stdout.startswith(b"Status: 204"):
                raise RuntimeError(f"the forwarder answered {done.stdout[:100]!r}")
    return statistics.median(forward[1:]), statistics.median(bare[1:])


def _cache_hit_ms(servers: Any, prefix: Path, line: Path, page: Path) -> dict[str, float]:
    with servers.serving("lighttpd", "fastcgi", prefix) as server:
        out = {}
        for mode, image, ctype in (("line", line, "image/png"), ("page", page, "image/jpeg")):
            data = image.read_bytes()
            first = servers.call(server, "POST", f"mode={mode}", data, {"Content-Type": ctype}).json()
            if "cached" in first:
                raise RuntimeError("the first call was a cache hit")
            hits = [_hit_ms(servers, server, f"mode={mode}", data, ctype) for _ in range(LINE_HITS)]
            if (
                not servers.call(server, "POST", f"mode={mode}", data, {"Content-Type": ctype})
                .json()
                .get("cached")
            ):
                raise RuntimeError("the cache did not answer")
            out[mode] = statistics.median(hits)
        return out


def _pool_pss(servers: Any, server: Any, page: Path, pages: int) -> tuple[float, float, int]:
    """PSS per worker (mean) and the supervisor's, in MiB, after ``pages`` pages through the pool,
    once the workers are at rest (an idle worker trims its heap: ocr_http.pool_worker.IDLE_TRIM_S)."""
    from ocr_http.pool_worker import IDLE_TRIM_S

    ab(server.cgi_url + "?mode=page", page, "image/jpeg", 2, pages)
    time.sleep(IDLE_TRIM_S + 0.5)
    supervisor = server.pool.pid
    workers = [w.pid for w in server.pool.status().workers]
    pss = [_rss_pss_kb(pid)[1] / 1024 for pid in workers]
    return statistics.mean(pss), _rss_pss_kb(supervisor)[1] / 1024, len(workers)


def _verdict(ok: bool) -> str:
    return PASS if ok else FAIL


def _bench_kind(
    servers: Any, kind: str, prefix: Path, line: Path, page: Path, pool_pages: int
) -> tuple[list[str], dict[str, Any]]:
    figures: dict[str, Any] = {}
    with ExitStack() as stack:
        running = {
            path: stack.enter_context(servers.serving(kind, path, prefix, env=POOL_ENV))
            for path in servers.PATHS
        }
        engine = stack.enter_context(in_process(1))[0]
        print(f"== HTTP {kind}: hits", flush=True, file=sys.stderr)
        samples = _latencies(servers, running, engine, line, page)
        print(f"== HTTP {kind}: ab", flush=True, file=sys.stderr)
        rows = []
        for path, server in running.items():
            for c in CONCURRENCY:
                line_run = ab(server.cgi_url + "?mode=line", line, "image/png", c, 10 * c + 10)
                if path == "cgi" and c == max(CONCURRENCY):
                    with MemorySampler(server.pid) as sampler:
                        page_run = ab(server.cgi_url + "?mode=page", page, "image/jpeg", c, 2 * c + 2)
                    figures["cgi_memory"] = sampler.peak
                else:
                    page_run = ab(server.cgi_url + "?mode=page", page, "image/jpeg", c, 2 * c + 2)
                rows.append((path, c, line_run, page_run))
        print(f"== HTTP {kind}: pages/s at concurrency 2, pool and in-process", flush=True, file=sys.stderr)
        figures["pages_at_2"] = _pages_at_2(servers, running["fastcgi"], page)
        if kind == "lighttpd":
            print(f"== HTTP {kind}: pool memory after {pool_pages} pages", flush=True, file=sys.stderr)
            figures["pss"] = _pool_pss(servers, running["fastcgi"], page, pool_pages)
            figures["forwarder"] = _forwarder_ms(prefix, running["cgi-pool"].pool.socket)
    figures["samples"] = samples
    figures["rows"] = rows
    out = [f"### {kind}", "", "| hit, ms: median / p90 | line | page |", "|---|---|---|"]
    for path in (*servers.PATHS, "in-process"):
        what = {
            "cgi": "pure CGI (a fresh Python per hit)",
            "cgi-pool": "ocr.cgi → pool",
            "fastcgi": f"FastCGI direct ({kind} → pool)",
            "in-process": "warm in-process, 1 thread (the workers' configuration)",
        }[path]
        out.append(
            f"| {what} | {_median_p90(samples[(path, 'line')])} | {_median_p90(samples[(path, 'page')])} |"
        )
    out += [
        "",
        "| requests/s with `ab` (lines / pages) | " + " | ".join(f"c={c}" for c in CONCURRENCY) + " |",
        "|---|" + "---|" * len(CONCURRENCY),
    ]
    for path in servers.PATHS:
        cells = []
        for _path, _c, line_run, page_run in (r for r in rows if r[0] == path):
            failed = line_run.failed + page_run.failed
            cells.append(
                f"{line_run.per_second:.1f} / {page_run.per_second:.2f}"
                + (f" ({failed} not 2xx)" if failed else "")
            )
        out.append(f"| {path} | " + " | ".join(cells) + " |")
    if "cgi_memory" in figures:
        memory = figures["cgi_memory"]
        out += [
            "",
            f"Pure CGI, pages at concurrency {max(CONCURRENCY)}: peak summed PSS {memory.pss_mb:.0f} MiB "
            f"(RSS {memory.rss_mb:.0f} MiB) over {memory.processes} processes.",
        ]
    return [*out, ""], figures


def run(eval_dir: Path, pool_pages: int = DEFAULT_POOL_PAGES) -> Section:
    if not (ROOT / "deploy" / "servers.py").is_file():
        return Section(TITLE, skipped="deploy/servers.py (server fixtures) not in this checkout")
    if shutil.which("ab") is None:
        return Section(TITLE, skipped="ab not installed (apt-get install apache2-utils)")
    from deploy import servers

    kinds = servers.servers_available()
    if kinds != ["lighttpd", "apache"]:
        return Section(TITLE, skipped="lighttpd and apache2 are both needed")
    line = eval_dir / "sroie_lines_en" / read_labels(eval_dir / "sroie_lines_en")[0]["image"]
    page = eval_dir / "sroie_receipts_en" / read_labels(eval_dir / "sroie_receipts_en")[0]["image"]
    kib = page.stat().st_size // 1024
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        f"Raw-body POSTs from a client on this machine, line `{line.name}` ({line.stat().st_size} B), "
        f"page `{page.name}` ({kib} KiB); hits over a new connection each (`http.client`), "
        f"{LINE_HITS} lines and {PAGE_HITS} pages per way after one untimed round, the ways taking "
        f"turns; `ab` for req/s (no keep-alive; it sends its first request alone). "
        f"Pools: {os.cpu_count()} CPUs → default workers, 1 inference thread each, result cache off. "
        f"Load average at the start of this section: {load}.",
        "",
    ]
    try:
        with servers.installed_tree() as prefix:
            figures = {}
            for kind in kinds:
                section, figures[kind] = _bench_kind(servers, kind, prefix, line, page, pool_pages)
                lines += section
            print("== HTTP: cache hits", flush=True, file=sys.stderr)
            cache = _cache_hit_ms(servers, prefix, line, page)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        return Section(TITLE, lines, skipped=f"{type(exc).__name__}: {exc}"[:500])
    lines += _targets(figures, cache, pool_pages)
    return Section(TITLE, lines)


def _targets(
    figures: dict[str, Any], cache: dict[str, float], pool_pages: int
) -> list[str]:
    out = ["### Targets (issue 9)", "", "| measure | value | target | result |", "|---|---|---|---|"]
    for kind, fig in figures.items():
        s = fig["samples"]
        forwarded = statistics.median(s[("cgi-pool", "line")])
        direct = statistics.median(s[("fastcgi", "line")])
        ratio = statistics.median(s[("fastcgi", "page")]) / statistics.median(s[("in-process", "page")])
        pages_at_2, two_workers = fig["pages_at_2"]
        out += [
            f"| {kind}: line hit through ocr.cgi → pool, median | {forwarded:.1f} ms "
            f"| ≤ {FORWARDED_LINE_MS:.0f} ms "
            f"| {_verdict(forwarded <= FORWARDED_LINE_MS)} |",
            f"| {kind}: line hit FastCGI direct, median | {direct:.1f} ms | ≤ {FASTCGI_LINE_MS:.0f} ms "
            f"| {_verdict(direct <= FASTCGI_LINE_MS)} |",
            f"| {kind}: page hit FastCGI direct / warm in-process page (1 thread) | {ratio:.2f}× "
            f"| ≤ {PAGE_VS_WARM}× | {_verdict(ratio <= PAGE_VS_WARM)} |",
            f"| {kind}: pages/s of 2 clients (FastCGI) / of two in-process workers ({two_workers:.2f}/s) "
            f"| {pages_at_2:.2f}/s = {pages_at_2 / two_workers:.2f}× | ≥ {PAGES_AT_2_VS_TWO}× "
            f"| {_verdict(pages_at_2 >= PAGES_AT_2_VS_TWO * two_workers)} |",
        ]
    forwarder, bare = figures["lighttpd"]["forwarder"]
    out.append(
        f"| ocr.cgi forwarding an OPTIONS to the pool, whole process (bare `python -IS`: {bare:.1f} ms) "
        f"| {forwarder:.1f} ms | ≤ {FORWARDER_MS:.0f} ms | {_verdict(forwarder <= FORWARDER_MS)} |"
    )
    for mode, ms in cache.items():
        out.append(
            f"| result cache hit, {mode} (lighttpd FastCGI), median | {ms:.1f} ms | ≤ {CACHE_HIT_MS:.0f} ms "
            f"| {_verdict(ms <= CACHE_HIT_MS)} |"
        )
    per_worker, supervisor, workers = figures["lighttpd"]["pss"]
    out.append(
        f"| pool PSS per worker after {pool_pages} pages ({workers} workers; "
        f"supervisor {supervisor:.0f} MiB) | {per_worker:.0f} MiB | ≤ {PSS_PER_WORKER_MIB:.0f} MiB "
        f"| {_verdict(per_worker <= PSS_PER_WORKER_MIB)} |"
    )
    return [*out, ""]
