"""Scoring by calling the reference ``score.py`` of the eval folder, so figures compare with the issue's.

``score.py SET_DIR PRED.jsonl --json`` scores every record of ``SET_DIR/labels.jsonl``. A row that uses
part of a set (one kind, or a sample) is scored against a scratch set folder holding just those
records: ``score.py`` reads only ``labels.jsonl``, never the images.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Score:
    images: int
    missing: int
    cer: float
    bag_f1: float
    exact: float | None  # None when the row has no line images
    median_ms: float | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Score:
        return cls(
            data["images"], data["missing"], data["CER"], data["bagF1"], data["exact"], data["median_ms"]
        )


def score_file(score_py: Path, set_dir: Path, pred_path: Path) -> Score:
    """Run ``score_py`` on a whole set folder and parse its ``--json`` line."""
    proc = subprocess.run(
        [sys.executable, str(score_py), str(set_dir), str(pred_path), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{score_py} failed on {pred_path}: {proc.stderr.strip()[-500:]}")
    return Score.from_json(json.loads(proc.stdout.strip().splitlines()[-1]))


def score_records(score_py: Path, records: Iterable[dict[str, Any]], pred_path: Path) -> Score:
    """Score ``pred_path`` against exactly ``records`` (label objects as in labels.jsonl)."""
    with tempfile.TemporaryDirectory(prefix="crnnocr-score-") as tmp:
        with open(Path(tmp) / "labels.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        return score_file(score_py, Path(tmp), pred_path)
