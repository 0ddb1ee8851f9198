"""Section 1: every engine over every row, each engine in one child process, scored by score.py."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.engines.specs import ROOT, EngineSpec
from bench.scoring import Score, score_records
from bench.tasks import Task

ENGINE_TIMEOUT_S = 20 * 60


@dataclass(frozen=True)
class EngineRun:
    """One engine's pass over all rows."""

    engine: EngineSpec
    version: str
    scores: dict[str, Score]  # task id -> score
    errors: dict[str, int]  # task id -> images the engine failed on
    wall_s: float
    skipped: str | None = None  # why the engine did not run


def run_engine(
    engine: EngineSpec, tasks: list[Task], eval_dir: Path, score_py: Path, work: Path
) -> EngineRun:
    reason = engine.unavailable()
    if reason:
        return EngineRun(engine, "", {}, {}, 0.0, skipped=reason)
    pred_dir = work / "preds" / engine.key
    pred_dir.mkdir(parents=True, exist_ok=True)
    job = {
        "options": engine.options,
        "tasks": [
            {
                "id": t.id,
                "mode": t.mode,
                "out": str(pred_dir / f"{t.id}.jsonl"),
                "images": [
                    {"image": r["image"], "path": str(eval_dir / t.set_name / r["image"])} for r in t.records
                ],
            }
            for t in tasks
        ],
    }
    job_path = work / f"job-{engine.key}.json"
    job_path.write_text(json.dumps(job, ensure_ascii=False), encoding="utf-8")
    print(f"== {engine.title}: {sum(len(t.records) for t in tasks)} images", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        proc = subprocess.run(engine.command(job_path), cwd=ROOT, timeout=ENGINE_TIMEOUT_S, check=False)
        failure = f"runner exited with status {proc.returncode}" if proc.returncode else None
    except subprocess.TimeoutExpired:
        failure = f"runner timed out after {ENGINE_TIMEOUT_S} s"
    wall = time.perf_counter() - start
    scores, errors = {}, {}
    for task in tasks:
        pred = pred_dir / f"{task.id}.jsonl"
        if pred.exists():
            scores[task.id] = score_records(score_py, task.records, pred)
            errors[task.id] = sum(
                "error" in json.loads(line) for line in pred.read_text(encoding="utf-8").splitlines()
            )
    if failure and not scores:
        return EngineRun(engine, engine.version(), {}, {}, wall, skipped=failure)
    return EngineRun(engine, engine.version(), scores, errors, wall)
