"""Section 4: the C library (issue 4), timed by c_client/bench_calls.c against the Python engine in-process.

``bench_calls`` prints one JSON object per run (see its header comment); the Python side is the same
loop over ``Engine.recognize`` with the same image, mode and ONNX thread count.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.engines.specs import ROOT
from bench.report import FAIL, PASS, Section
from bench.tasks import read_labels

TITLE = "4. C library (issue 4)"
BENCH_CALLS = ROOT / "build" / "bench_calls"
FIRST_CALL_RUNS = 9
FIRST_CALL_TARGET_MS, PER_CALL_RATIO_TARGET, THREAD_SCALING_TARGET = 200.0, 1.05, 1.7
CALLS = {"line": 60, "page": 10}

# The Python engine timed in-process exactly as bench_calls times the library: warm-up, then a loop.
PY_LOOP = """\
import json, statistics, sys, time
from ocr_core import Engine, EngineConfig, RecognizeOptions
mode, image, calls, threads = sys.argv[1], open(sys.argv[2], "rb").read(), int(sys.argv[3]), int(sys.argv[4])
engine, options = Engine.load(EngineConfig.from_env(threads=threads)), RecognizeOptions(mode=mode)
engine.recognize(image, options)
samples = []
for _ in range(calls):
    start = time.perf_counter()
    engine.recognize(image, options)
    samples.append((time.perf_counter() - start) * 1000)
print(json.dumps({"p50": statistics.median(samples)}))
"""


def _bench_calls(*args: str, backend: str | None = None) -> dict[str, Any]:
    env = {**os.environ, "CRNNOCR_BACKEND": backend} if backend else None
    proc = subprocess.run(
        [str(BENCH_CALLS), *args], capture_output=True, text=True, timeout=600, check=False, env=env
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"bench_calls {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()[-300:]}"
        )
    return json.loads(proc.stdout)


def _python_p50(mode: str, image: Path, threads: int) -> float:
    proc = subprocess.run(
        [sys.executable, "-c", PY_LOOP, mode, str(image), str(CALLS[mode]), str(threads)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return float(json.loads(proc.stdout)["p50"])


def _ensure_built() -> str | None:
    """Build the library and bench_calls with the C helper's make targets; why not, if that fails."""
    proc = subprocess.run(["make", "-s", "c-clients"], cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not BENCH_CALLS.exists():
        return f"`make c-clients` failed: {(proc.stderr or proc.stdout).strip()[-300:]}"
    return None


def _row(measure: str, value: str, target: str, ok: bool | None) -> str:
    """One table row; ``ok`` None for a figure with no target."""
    return f"| {measure} | {value} | {target} | {'–' if ok is None else PASS if ok else FAIL} |"


def _first_call_ms(line: Path, backend: str | None) -> float:
    args = ("--mode", "line", "--calls", "1", "--warmup", "1", str(line))
    return statistics.median(
        _bench_calls(*args, backend=backend)["first_call_ms"] for _ in range(FIRST_CALL_RUNS)
    )


def _measure(line: Path, page: Path) -> list[str]:
    # The target is ONNX Runtime's, the one-shot program's choice; backend=auto in a C host takes
    # OpenVINO on a CPU with bf16, whose start costs more (README: choosing a backend).
    rows = [
        _row(
            f"first call (start Python, imports, engine, one line), {backend or 'auto'}, "
            f"median of {FIRST_CALL_RUNS} processes",
            f"{first:.0f} ms",
            f"≤ {FIRST_CALL_TARGET_MS:.0f} ms" if backend else "–",
            first <= FIRST_CALL_TARGET_MS if backend else None,
        )
        for backend in ("onnxruntime", None)
        for first in (_first_call_ms(line, backend),)
    ]
    for mode, image in (("line", line), ("page", page)):
        c = _bench_calls(
            "--mode", mode, "--calls", str(CALLS[mode]), "--warmup", "2", "--ort-threads", "2", str(image)
        )["per_call_ms"]["p50"]
        py = _python_p50(mode, image, 2)
        rows.append(
            _row(
                f"per call, {mode}, p50 of {CALLS[mode]} (2 ONNX threads): C / Python in-process",
                f"{c:.1f} / {py:.1f} ms = {c / py:.2f}×",
                f"≤ {PER_CALL_RATIO_TARGET}×",
                c / py <= PER_CALL_RATIO_TARGET,
            )
        )
    for mode, image in (("line", line), ("page", page)):
        rate = {
            n: _bench_calls(
                "--mode",
                mode,
                "--threads",
                str(n),
                "--ort-threads",
                "1",
                "--warmup",
                "1",
                "--calls",
                str(CALLS[mode]),
                str(image),
            )["calls_per_s"]
            for n in (1, 2)
        }
        scaling = rate[2] / rate[1]
        rows.append(
            _row(
                f"throughput, {mode}, 1 vs 2 threads on one engine (1 ONNX thread each), "
                f"{CALLS[mode]} calls per thread",
                f"{rate[1]:.1f} → {rate[2]:.1f} calls/s = {scaling:.2f}×",
                f"≥ {THREAD_SCALING_TARGET}×",
                scaling >= THREAD_SCALING_TARGET,
            )
        )
    return ["| measure | value | target | result |", "|---|---|---|---|", *rows, ""]


def run(eval_dir: Path) -> Section:
    if not (ROOT / "c_client" / "bench_calls.c").is_file():
        return Section(TITLE, skipped="c_client/bench_calls.c not in this checkout")
    reason = _ensure_built()
    if reason:
        return Section(TITLE, skipped=reason)
    line = eval_dir / "sroie_lines_en" / read_labels(eval_dir / "sroie_lines_en")[0]["image"]
    page = eval_dir / "sroie_receipts_en" / read_labels(eval_dir / "sroie_receipts_en")[0]["image"]
    intro = [f"`build/bench_calls` (engine API) on line `{line.name}` and page `{page.name}`.", ""]
    print("== C library", file=sys.stderr, flush=True)
    try:
        return Section(TITLE, intro + _measure(line, page))
    except (RuntimeError, OSError, KeyError, subprocess.SubprocessError) as exc:
        return Section(TITLE, intro, skipped=f"{type(exc).__name__}: {exc}"[:500])
