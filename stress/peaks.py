"""Peak resident memory of one request on each surface, measured by the kernel.

Each run is a fresh process (``os.wait4`` gives its own peak RSS, nothing estimated), as the
suite's memory tests do (tests/test_core_memory.py, test_c_lib.py): the CLI (``python -m
ocr_core``), the CGI doing the work itself (``cgi-bin/ocr.cgi`` with a CGI environment and no pool
to forward to) and the C library (``build/ocr_file``), each with one inference thread. What a large
image costs is its run's peak minus the same surface's peak on ``workload.reference_page``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .workload import Input

CHECKOUT = Path(__file__).resolve().parent.parent
SURFACES = ("cli", "cgi", "c")
RUN_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Run:
    """One process: its peak RSS, how long it took, and what it answered (``ok`` or an error code)."""

    peak_kb: int
    seconds: float
    outcome: str


# Linux keeps a process's peak RSS across exec, so a child started from this (large) process would
# report this one's size: the command runs under a small wrapper, whose RUSAGE_CHILDREN peak is
# the command's alone (as tests/rss.py does).
_WRAPPER = (
    "import resource, subprocess, sys; code = subprocess.call(sys.argv[2:]); "
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
    "sys.exit(code)"
)


def run_peak(argv: list[str], env: Mapping[str, str], stdin: Path | None = None,
             timeout: float = RUN_TIMEOUT_S) -> tuple[int, float, int, bytes, bytes]:
    """(peak RSS in KiB, seconds, exit status, stdout, stderr) of ``argv`` run to its end."""
    with open(stdin or os.devnull, "rb") as inp, tempfile.TemporaryFile() as out, \
            tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as peak:
        started = time.monotonic()
        done = subprocess.run(["/usr/bin/python3", "-I", "-S", "-c", _WRAPPER, peak.name, *argv],
                              stdin=inp, stdout=out, stderr=err, env=dict(env), cwd=CHECKOUT, timeout=timeout,
                              check=False)
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        return int(peak.read() or 0), seconds, done.returncode, out.read(), err.read()


def _base_env(work: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work),
        "TMPDIR": str(work),
        "CRNNOCR_THREADS": "1",
        "PYTHONPATH": str(CHECKOUT),
    }


def cli(image: Input, path: Path, work: Path) -> Run:
    dpi = ["--dpi", str(image.dpi)] if image.dpi else []
    peak, seconds, status, out, _err = run_peak(
        [sys.executable, "-m", "ocr_core", "--jsonl", *dpi, str(path)], _base_env(work)
    )
    records = [json.loads(line) for line in out.splitlines() if line.strip()]
    outcome = (
        "ok" if status == 0 and records else (records[0]["error"]["code"] if records else f"exit {status}")
    )
    return Run(peak, seconds, outcome)


def cgi(image: Input, path: Path, work: Path, extra: Mapping[str, str] | None = None) -> Run:
    """The checkout's ocr.cgi answering a raw POST itself (no pool socket), as a server runs it."""
    env = {
        **_base_env(work),
        "GATEWAY_INTERFACE": "CGI/1.1",
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": "application/octet-stream",
        "CONTENT_LENGTH": str(path.stat().st_size),
        "QUERY_STRING": f"dpi={image.dpi}" if image.dpi else "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CRNNOCR_POOL_SOCKET": "",
        "CRNNOCR_CGI_SLOT_DIR": str(work / "slots"),
        **(extra or {}),
    }
    peak, seconds, _status, out, _err = run_peak(
        [sys.executable, str(CHECKOUT / "cgi-bin" / "ocr.cgi")], env, stdin=path
    )
    head, _, body = out.partition(b"\r\n\r\n") if b"\r\n\r\n" in out else out.partition(b"\n\n")
    fields = dict(line.split(":", 1) for line in head.decode("latin-1").splitlines() if ":" in line)
    code = fields.get("Status", "200").split()[0]
    try:
        outcome = "ok" if code == "200" else json.loads(body)["error"]["code"]
    except (ValueError, KeyError):
        outcome = f"status {code}"
    return Run(peak, seconds, outcome)


def c_library(image: Input, path: Path, work: Path, ocr_file: Path) -> Run:
    dpi = ["--dpi", str(image.dpi)] if image.dpi else []
    peak, seconds, status, _out, err = run_peak([str(ocr_file), *dpi, str(path)], _base_env(work))
    outcome = (
        "ok" if status == 0 else (err.decode(errors="replace").strip().splitlines() or [f"exit {status}"])[-1]
    )
    return Run(peak, seconds, outcome)


def runner(surface: str, ocr_file: Path) -> Callable[[Input, Path, Path], Run]:
    if surface == "cli":
        return cli
    if surface == "cgi":
        return cgi
    return lambda image, path, work: c_library(image, path, work, ocr_file)


@dataclass(frozen=True)
class Peak:
    """One image on one surface: its run and what it cost above the reference run."""

    image: Input
    surface: str
    run: Run
    above_kb: int

    @property
    def bytes_per_pixel(self) -> float:
        return self.above_kb * 1024 / self.image.pixels


def measure(
    images: list[Input],
    reference: Input,
    surfaces: list[str],
    work: Path,
    ocr_file: Path,
    progress: Callable[[str], None],
) -> tuple[dict[str, Run], list[Peak]]:
    """The reference run of each surface, then every image on it, one fresh process each."""
    paths = {}
    for image in [reference, *images]:
        paths[image.name] = work / f"{image.name}.bin"
        paths[image.name].write_bytes(image.data)
    references, peaks = {}, []
    for surface in surfaces:
        run = runner(surface, ocr_file)
        references[surface] = run(reference, paths[reference.name], work)
        progress(f"{surface}: reference {references[surface].peak_kb // 1024} MiB")
        for image in images:
            result = run(image, paths[image.name], work)
            peaks.append(Peak(image, surface, result, result.peak_kb - references[surface].peak_kb))
            progress(
                f"{surface}: {image.name} +{peaks[-1].above_kb // 1024} MiB, {result.seconds:.1f} s, "
                f"{result.outcome}"
            )
    return references, peaks


def refused_hit_kb(work: Path, reference: Input) -> int:
    """Peak RSS of a CGI hit answered ``503 busy`` (every slot taken): what a refused client costs."""
    from ocr_http.slots import take_slot

    path = work / "busy.bin"
    path.write_bytes(reference.data)
    held = take_slot(str(work / "busy-slots"), 1)
    try:
        run = cgi(
            reference,
            path,
            work,
            {"CRNNOCR_CGI_SLOTS": "1", "CRNNOCR_CGI_SLOT_DIR": str(work / "busy-slots")},
        )
    finally:
        if held is not None:
            os.close(held)
    if run.outcome != "busy":
        raise RuntimeError(f"a CGI hit with every slot taken answered {run.outcome}, not busy")
    return run.peak_kb
