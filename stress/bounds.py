"""`make stress`: the bounds README "Bounds" states, measured, with a non-zero exit if one breaks.

1. Peak RSS above an idle process for the largest allowed image of each format (``workload``), on
   the CLI, the CGI answering in-process and the C library (``peaks``): at most ``BYTES_PER_PIXEL``
   bytes per pixel of the pixel limit plus ``ALLOWANCE_MIB`` (strips, the file itself, allocator
   slack: the suite's memory tests use the same figure).
2. N clients posting the largest image at once to a real server (``concurrent``), for the pure CGI
   and for FastCGI to the worker pool: the summed RSS of every process against
   - pure CGI: server idle + slots × (the CGI's peak on a small page + one request's bound)
     + each refused hit's peak;
   - pool: server + supervisor idle + workers × (``CRNNOCR_POOL_MAX_RSS_MB`` + one request's bound):
     a worker is recycled past the cap, but only between requests.
3. The crafted hostile set (``crafted_times``): each case's code and time, in a warm engine and
   through each server; every code as documented, every answer within the request deadline.

Prints each table and writes them to ``stress/results/<date>-bounds.md``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ocr_core.config import EngineConfig
from ocr_core.image import BYTES_PER_PIXEL
from ocr_core.process import available_cores

from . import concurrent, crafted_times, peaks, workload

ROOT = Path(__file__).resolve().parent.parent
ALLOWANCE_MIB = 16
# The pool's result cache off: every client sends the same image, which must be read each time.
SERVER_ENV = {"CRNNOCR_CACHE_MB": "0"}
KIB_PER_MIB = 1024


@dataclass
class Report:
    """Markdown lines and the bounds that broke."""

    lines: list[str]
    broken: list[str]

    def add(self, *lines: str) -> None:
        for line in lines:
            print(line, flush=True)
        self.lines.extend(lines)

    def check(self, ok: bool, what: str) -> str:
        if not ok:
            self.broken.append(what)
        return "yes" if ok else "**NO**"


def _mib(kb: int) -> str:
    return f"{kb / KIB_PER_MIB:.0f}"


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _progress(message: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def section_peaks(
    report: Report,
    images: list[workload.Input],
    surfaces: list[str],
    work: Path,
    ocr_file: Path,
    request_bound_kb: int,
) -> dict[str, peaks.Run]:
    references, found = peaks.measure(images, workload.reference_page(), surfaces, work, ocr_file, _progress)
    report.add(
        "## 1. One request: peak RSS above idle, largest allowed image per format",
        "",
        "Each a fresh process with 1 inference thread; above idle = its peak minus the same surface's "
        "peak on a 1200² text page ("
        + ", ".join(f"{surface} {_mib(run.peak_kb)} MiB" for surface, run in references.items())
        + f"). Bound: {BYTES_PER_PIXEL} B/px × "
        f"the pixel limit + {ALLOWANCE_MIB} MiB = {_mib(request_bound_kb)} MiB.",
        "",
        "| image | Mpx | file KiB | "
        + " | ".join(f"{s}: MiB above idle (B/px), s, answer" for s in surfaces)
        + " | within bound |",
        "|---|---|---|" + "---|" * len(surfaces) + "---|",
    )
    for image in images:
        row = [p for p in found if p.image.name == image.name]
        ok = all(p.run.outcome == "ok" and p.above_kb <= request_bound_kb for p in row)
        cells = [
            f"{_mib(p.above_kb)} ({p.bytes_per_pixel:.1f}), {p.run.seconds:.1f}, {p.run.outcome}" for p in row
        ]
        report.add(
            f"| {image.label} | {image.pixels / 1e6:.1f} | {len(image.data) // 1024} | "
            + " | ".join(cells)
            + f" | {report.check(ok, f'one request: {image.name}')} |"
        )
    worst = max(found, key=lambda p: p.above_kb)
    report.add(
        "",
        f"Largest: {worst.image.label} on {worst.surface}, {_mib(worst.above_kb)} MiB above idle "
        f"({worst.bytes_per_pixel:.2f} B/px). Slowest: "
        + ", ".join(f"{s} {max(p.run.seconds for p in found if p.surface == s):.1f} s" for s in surfaces),
        "",
    )
    return references


def section_crafted(
    report: Report,
    cases: list[crafted_times.Case],
    columns: dict[str, dict[str, crafted_times.Answer]],
    timeout_s: float,
) -> None:
    report.add(
        "## 3. The crafted set: code and time per request",
        "",
        f"tests/crafted.py's refused classes, a dense page and the most scans allowed; bound: the documented "
        f"code, within the request deadline ({timeout_s:g} s).",
        "",
        "| case | expected | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    )
    for case in cases:
        cells = []
        for column, answers in columns.items():
            answer = answers[case.name]
            status = f"{answer.status} " if answer.status else ""
            ok = answer.outcome == case.expected and answer.seconds <= timeout_s
            mark = "" if ok else " **✗**"
            report.check(ok, f"crafted {case.name} via {column}: {answer.outcome} in {answer.seconds:.2f} s")
            cells.append(f"{status}{answer.outcome}, {answer.seconds * 1000:.0f} ms{mark}")
        report.add(f"| {case.name} | {case.expected} | " + " | ".join(cells) + " |")
    worst = ", ".join(
        f"{column} {max(a.seconds for a in answers.values()):.2f} s" for column, answers in columns.items()
    )
    report.add("", f"Worst time per request: {worst}.", "")


def _cgi_bound(
    idle_kb: int, clients: int, slots: int, cgi_kb: int, refused_kb: int, request_bound_kb: int
) -> tuple[int, str]:
    working = min(clients, slots) if slots else clients
    bound = idle_kb + working * (cgi_kb + request_bound_kb) + (clients - working) * refused_kb
    return bound, (
        f"{_mib(idle_kb)} + {working} × ({_mib(cgi_kb)} + {_mib(request_bound_kb)}) + "
        f"{clients - working} × {_mib(refused_kb)}"
    )


def _pool_bound(fixed_kb: int, workers: int, cap_kb: int, request_bound_kb: int) -> tuple[int, str]:
    return (
        fixed_kb + workers * (cap_kb + request_bound_kb),
        f"{_mib(fixed_kb)} + {workers} × ({_mib(cap_kb)} + {_mib(request_bound_kb)})",
    )


def section_servers(
    report: Report,
    args: argparse.Namespace,
    cases: list[crafted_times.Case],
    crafted_columns: dict[str, dict[str, crafted_times.Answer]],
    largest: workload.Input,
    cgi_kb: int,
    refused_kb: int,
    request_bound_kb: int,
) -> None:
    from deploy.servers import installed_tree, serving
    from ocr_http.pool_settings import PoolSettings
    from ocr_http.settings import CgiSettings

    slots = CgiSettings.from_env({}).cgi_slots
    cap_kb = PoolSettings.from_env({}).max_rss_bytes // 1024
    rows = []
    with installed_tree() as prefix:
        for way in args.ways:
            with serving(args.server, way, prefix, env=SERVER_ENV) as server:
                roots = [server.pid] + ([server.pool.pid] if server.pool else [])
                if cases:
                    _progress(f"{args.server} {way}: the crafted set")
                    crafted_columns[f"{args.server} {way}"] = crafted_times.through(server, cases)
                for clients in args.clients:
                    if server.pool is not None:  # workers replaced after a timeout are loaded again
                        server.pool.wait_ready()
                    _progress(f"{args.server} {way}: {clients} clients")
                    result = concurrent.burst(server, roots, largest.data, clients)
                    if server.pool is None:
                        bound, formula = _cgi_bound(
                            result.idle.rss_kb, clients, slots, cgi_kb, refused_kb, request_bound_kb
                        )
                    else:
                        fixed = sum(concurrent.rss_kb(pid) for pid in (server.pid, server.pool.pid))
                        workers = int(server.pool.status().counters["workers_target"])
                        bound, formula = _pool_bound(fixed, workers, cap_kb, request_bound_kb)
                    rows.append((way, result, bound, formula))
    report.add(
        f"## 2. {' and '.join(map(str, args.clients))} clients at once: total memory through {args.server}",
        "",
        f"Each client POSTs {largest.label} ({largest.pixels / 1e6:.1f} Mpx, "
        f"{len(largest.data) // 1024} KiB) "
        f"once, all at the same moment; every process of the server's tree (CGIs, pool) summed every "
        f"{concurrent.SAMPLE_EVERY_S * 1000:.0f} ms. Pure CGI: {slots} slots ({available_cores()} cores); "
        f"pool: RSS cap {_mib(cap_kb)} MiB a worker. Bound (MiB): CGI idle + working × (CGI on a small page "
        "+ one request) + refused × a refused hit; pool: server and supervisor + workers × (cap + one "
        "request).",
        "",
        "| way | clients | answers | s | idle RSS | peak RSS sum | peak PSS sum | processes | bound | "
        "within |",
        "|---|---|---|---|---|---|---|---|---|---|",
    )
    for way, result, bound, formula in rows:
        answers = ", ".join(f"{n}× {status}" for status, n in result.statuses.items())
        ok = result.peak.rss_kb <= bound and all(s.startswith(("200", "503")) for s in result.statuses)
        report.add(
            f"| {way} | {result.clients} | {answers} | {result.seconds:.1f} | {_mib(result.idle.rss_kb)} | "
            f"{_mib(result.peak.rss_kb)} | {_mib(result.peak.pss_kb)} | {result.peak.processes} | "
            f"{_mib(bound)} = {formula} | {report.check(ok, f'{way} at {result.clients} clients')} |"
        )
    report.add("")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--surfaces", default=",".join(peaks.SURFACES), help="of cli,cgi,c (section 1)")
    parser.add_argument("--images", default="all", help="names from stress/workload.py, comma-separated")
    parser.add_argument("--clients", default="8,16", help="concurrent clients (section 3)")
    parser.add_argument("--server", default="lighttpd", choices=["lighttpd", "apache"])
    parser.add_argument("--ways", default="cgi,fastcgi", help="pure CGI and/or FastCGI to the pool")
    parser.add_argument("--skip", default="", help="sections to leave out: peaks,crafted,servers")
    parser.add_argument("--ocr-file", type=Path, default=ROOT / "build" / "ocr_file")
    parser.add_argument("--out", type=Path, default=ROOT / "stress" / "results")
    args = parser.parse_args()
    args.surfaces = [s for s in args.surfaces.split(",") if s]
    args.clients = [int(n) for n in args.clients.split(",") if n]
    args.ways = [w for w in args.ways.split(",") if w]
    skip = set(args.skip.split(",")) - {""}
    if unknown := set(args.surfaces) - set(peaks.SURFACES) or skip - {"peaks", "crafted", "servers"}:
        parser.error(f"unknown: {', '.join(sorted(unknown))}")
    if "c" in args.surfaces and not args.ocr_file.is_file():
        parser.error(f"{args.ocr_file} is missing: `make c-clients` builds it")

    config = EngineConfig.from_env()
    request_bound_kb = BYTES_PER_PIXEL * config.max_pixels // 1024 + ALLOWANCE_MIB * KIB_PER_MIB
    names = workload.NAMES if args.images == "all" else args.images.split(",")
    if unknown := set(names) - set(workload.NAMES):
        parser.error(f"unknown images: {', '.join(sorted(unknown))}; known: {', '.join(workload.NAMES)}")
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    started = datetime.datetime.now()
    report = Report([], [])
    report.add(
        f"# Bounds, measured: {started:%Y-%m-%d %H:%M} ({commit})",
        "",
        f"{platform.node()}, {available_cores()} cores, load average {_load()} at the start; pixel limit "
        f"{config.max_pixels / 1e6:g} Mpx, byte limit {config.max_bytes // (1 << 20)} MiB, backend "
        f"{config.backend}. RSS in MiB.",
        "",
    )

    with tempfile.TemporaryDirectory(prefix="crnnocr-stress-") as tmp:
        work = Path(tmp)
        references = {}
        if "peaks" not in skip:
            images = workload.largest_allowed(config.max_pixels, names)
            references = section_peaks(report, images, args.surfaces, work, args.ocr_file, request_bound_kb)
        cases = crafted_times.cases(workload.square_side(config.max_pixels))
        columns: dict[str, dict[str, crafted_times.Answer]] = {}
        if "crafted" not in skip:
            _progress("the crafted set in-process")
            columns["core, warm engine"] = crafted_times.in_process(cases)
        if "servers" not in skip:
            reference = workload.reference_page()
            cgi_kb = (
                references["cgi"].peak_kb
                if "cgi" in references
                else peaks.cgi(reference, _write(work, reference), work).peak_kb
            )
            refused_kb = peaks.refused_hit_kb(work, reference)
            largest = workload.largest_allowed(config.max_pixels, ["png_rgba16"])[0]
            section_servers(
                report,
                args,
                cases if "crafted" not in skip else [],
                columns,
                largest,
                cgi_kb,
                refused_kb,
                request_bound_kb,
            )
        if columns:
            section_crafted(report, cases, columns, config.timeout_s or float("inf"))

    report.add(
        f"Load average at the end: {_load()}; {(datetime.datetime.now() - started).seconds} s in all.", ""
    )
    verdict = "every bound held" if not report.broken else "BROKEN: " + "; ".join(report.broken)
    report.add(verdict)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{started:%Y-%m-%d-%H%M}-bounds.md"
    path.write_text("\n".join(report.lines) + "\n", encoding="utf-8")
    print(f"report: {path}")
    return 1 if report.broken else 0


def _write(work: Path, image: workload.Input) -> Path:
    path = work / f"{image.name}.bin"
    path.write_bytes(image.data)
    return path


if __name__ == "__main__":
    sys.exit(main())
