"""Section 2: warm latency in rounds that alternate the engines; cold process time and peak memory,
measured from outside a fresh process per run.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.accuracy import EngineRun, run_engine
from bench.engines.specs import ROOT, EngineSpec
from bench.tasks import Task

COLD_RUNS = 7

@dataclass(frozen=True)
class Timing:
    runs: int
    median_ms: float
    min_ms: float
    max_ms: float


@dataclass(frozen=True)
class EngineSpeed:
    cold: Timing | None
    cold_what: str
    peak_rss_mb: float | None
    error: str | None = None


def _env(engine: EngineSpec) -> dict[str, str]:
    env = {**os.environ, **engine.env}
    if engine.module == "bench.engines.tesseract":
        env["OMP_THREAD_LIMIT"] = "1"
    return env


def _command(engine: EngineSpec, mode: str, image: Path) -> list[str]:
    if engine.module == "bench.engines.tesseract":
        psm = ["--psm", "7"] if mode == "line" else []
        return ["tesseract", str(image), "stdout", "-l", engine.options["langs"], *psm]
    if engine.is_ours and mode == "line":
        pack = engine.options["pack"]
        return [str(engine.python), "-m", "ocr_core", "--mode", "line", "--pack", pack, str(image)]
    return [str(engine.python), "-m", engine.module, "--once", mode, str(image), json.dumps(engine.options)]


def _cold_what(engine: EngineSpec) -> str:
    if engine.module == "bench.engines.tesseract":
        return "`tesseract LINE stdout --psm 7` (a fresh process is all Tesseract's CLI has)"
    if engine.is_ours:
        return "`python -m ocr_core --mode line LINE` (the CLI: imports, engine, one line, print)"
    return "`python -m bench.engines.rapidocr --once line` (imports, sessions, one line, rec only)"


def time_command(cmd: list[str], env: dict[str, str], runs: int = COLD_RUNS) -> Timing:
    """Wall time of ``runs`` fresh processes, after one untimed run (page cache, model caches)."""
    samples = []
    for i in range(runs + 1):
        start = time.perf_counter()
        subprocess.run(
            cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if i:
            samples.append((time.perf_counter() - start) * 1000.0)
    return Timing(runs, statistics.median(samples), min(samples), max(samples))


def peak_rss_mb(cmd: list[str], env: dict[str, str]) -> float:
    """Peak resident set of a child process (and of any children it waited for), in MiB."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{cmd[0]} exited with status {proc.returncode}")
    return usage.ru_maxrss / 1024.0  # Linux reports KiB


def warm_medians(
    runs: list[EngineRun], tasks: list[Task], eval_dir: Path, score_py: Path, work: Path
) -> dict[str, dict[str, float]]:
    """Engine key -> row id -> the lower of two median ms: the accuracy pass's and one more pass.

    The extra pass takes the engines in reverse order (A, B, C, then C, B, A), so a burst of other
    work on the machine is less likely to fall on one engine only; the lower median is the less
    disturbed one.
    """
    best: dict[str, dict[str, float]] = {}
    ids = {t.id for t in tasks}
    for run in reversed(runs):
        again = run_engine(run.engine, tasks, eval_dir, score_py, work / "warm")
        rows = best.setdefault(run.engine.key, {})
        for score_set in (run.scores, again.scores):
            for task_id, score in score_set.items():
                if task_id in ids and score.median_ms is not None:
                    rows[task_id] = min(rows.get(task_id, score.median_ms), score.median_ms)
    return best


def measure(engine: EngineSpec, line_image: Path, page_image: Path) -> EngineSpeed:
    env = _env(engine)
    try:
        cold = time_command(_command(engine, "line", line_image), env)
        rss = peak_rss_mb(_command(engine, "page", page_image), env)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        return EngineSpeed(None, _cold_what(engine), None, error=str(exc))
    return EngineSpeed(cold, _cold_what(engine), rss)
