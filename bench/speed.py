"""Section 2: warm latency with the engines timed side by side, image by image; cold process time
and peak memory, measured from outside a fresh process per run.
"""

from __future__ import annotations

import json
import os
import select
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.engines.specs import ROOT, EngineSpec
from bench.tasks import Task

COLD_RUNS = 9
WARM_ROUNDS = 2
# Images an engine reads back to back before the next engine takes over: a few seconds of work,
# so that refilling caches after the switch is a small part of a block.
WARM_BLOCK = {"line": 20, "page": 5}
REQUEST_TIMEOUT_S = 300


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
        pack, backend = engine.options["pack"], engine.options["backend"]
        return [str(engine.python), "-m", "ocr_core", "--mode", "line", "--pack", pack, "--backend", backend,
                str(image)]
    return [str(engine.python), "-m", engine.module, "--once", mode, str(image), json.dumps(engine.options)]


def _cold_what(engine: EngineSpec) -> str:
    if engine.module == "bench.engines.tesseract":
        return "`tesseract LINE stdout --psm 7` (a fresh process is all Tesseract's CLI has)"
    if engine.is_ours:
        return (f"`python -m ocr_core --mode line --backend {engine.options['backend']} LINE` "
                "(the CLI: imports, engine, one line, print)")
    return "`python -m bench.engines.rapidocr --once line` (imports, sessions, one line, rec only)"


def _wall_ms(cmd: list[str], env: dict[str, str]) -> float:
    """Wall time of one fresh process running ``cmd``."""
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1000.0


def peak_rss_mb(cmd: list[str], env: dict[str, str]) -> float:
    """Peak resident set of a child process (and of any children it waited for), in MiB."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{cmd[0]} exited with status {proc.returncode}")
    return usage.ru_maxrss / 1024.0  # Linux reports KiB


class _Server:
    """One engine answering timing requests (``python -m RUNNER --serve``) in its own process."""

    def __init__(self, engine: EngineSpec) -> None:
        self.engine = engine
        self._proc = subprocess.Popen(
            [str(engine.python), "-m", engine.module, "--serve", json.dumps(engine.options)],
            cwd=ROOT,
            env=_env(engine),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def time_ms(self, image: Path, mode: str) -> float | None:
        """Wall time of one call, or None when the engine failed on the image."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps({"path": str(image), "mode": mode}) + "\n")
        self._proc.stdin.flush()
        ready, _, _ = select.select([self._proc.stdout], [], [], REQUEST_TIMEOUT_S)
        line = self._proc.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"{self.engine.title}: no answer within {REQUEST_TIMEOUT_S} s for {image}")
        reply = json.loads(line)
        return None if "error" in reply else float(reply["ms"])

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def warm_medians(engines: list[EngineSpec], tasks: list[Task], eval_dir: Path) -> dict[str, dict[str, float]]:
    """Engine key -> row id -> median ms of a warm call, the engines timed side by side.

    Every engine is loaded in its own process at once. The images go in blocks (``WARM_BLOCK``):
    each engine makes one untimed call (its threads wake up; the previous engine's ONNX Runtime
    threads stop spinning), then reads the block back to back, timed; the engine order rotates
    from block to block, for ``WARM_ROUNDS`` rounds. A busy spell on the machine (2 cores, with
    neighbours) then lands on all engines alike, so their ratio is steadier than that of
    separate passes.
    """
    servers = [_Server(engine) for engine in engines]
    samples: dict[str, dict[str, list[float]]] = {e.key: {t.id: [] for t in tasks} for e in engines}
    try:
        for task in tasks:
            images = [eval_dir / task.set_name / r["image"] for r in task.records]
            print(f"== warm {task.id}: {len(images)} images", file=sys.stderr, flush=True)
            size = WARM_BLOCK[task.mode]
            blocks = [images[i : i + size] for i in range(0, len(images), size)]
            turn = 0
            for _round in range(WARM_ROUNDS):
                for block in blocks:
                    shift = turn % len(servers)
                    turn += 1
                    for server in servers[shift:] + servers[:shift]:
                        server.time_ms(block[0], task.mode)
                        for image in block:
                            ms = server.time_ms(image, task.mode)
                            if ms is not None:
                                samples[server.engine.key][task.id].append(ms)
    finally:
        for server in servers:
            server.close()
    return {
        key: {task_id: statistics.median(ms) for task_id, ms in rows.items() if ms}
        for key, rows in samples.items()
    }


def measure(engines: list[EngineSpec], line_image: Path, page_image: Path) -> dict[str, EngineSpeed]:
    """Engine key -> cold process time (one line) and peak memory (the largest page).

    The cold runs go round-robin over the engines, after one untimed round (page cache, model
    caches), so that a slow spell on the machine does not land on one engine's runs only.
    """
    samples: dict[str, list[float]] = {engine.key: [] for engine in engines}
    errors: dict[str, str] = {}
    for cold_round in range(COLD_RUNS + 1):
        for engine in engines:
            if engine.key in errors:
                continue
            try:
                ms = _wall_ms(_command(engine, "line", line_image), _env(engine))
            except subprocess.CalledProcessError as exc:
                errors[engine.key] = str(exc)
                continue
            if cold_round:
                samples[engine.key].append(ms)
    speeds = {}
    for engine in engines:
        try:
            if engine.key in errors:
                raise RuntimeError(errors[engine.key])
            rss = peak_rss_mb(_command(engine, "page", page_image), _env(engine))
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            speeds[engine.key] = EngineSpeed(None, _cold_what(engine), None, error=str(exc))
            continue
        runs = samples[engine.key]
        cold = Timing(len(runs), statistics.median(runs), min(runs), max(runs))
        speeds[engine.key] = EngineSpeed(cold, _cold_what(engine), rss)
    return speeds
