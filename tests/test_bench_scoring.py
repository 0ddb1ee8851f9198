"""The benchmark's scoring glue agrees with the eval folder's reference score.py.

Runs on a tiny synthetic set, so it needs no peer engines and no models; it needs score.py itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.harness import Prediction, write_predictions
from bench.losses import load_score_module, worst_losses
from bench.scoring import Score, score_file, score_records
from bench.tasks import discover

ROOT = Path(__file__).resolve().parents[1]
EVAL = Path(os.environ.get("CRNNOCR_EVAL", ROOT.parent / "shared" / "eval"))
SCORE_PY = EVAL / "score.py"

pytestmark = pytest.mark.skipif(
    not SCORE_PY.is_file(), reason=f"SKIPPED LOUDLY: reference scorer {SCORE_PY} missing (set CRNNOCR_EVAL)"
)

LABELS = [
    {"image": "images/a.png", "kind": "line", "lang": "en", "text": "HELLO WORLD"},
    {"image": "images/b.png", "kind": "line", "lang": "en", "text": "Total: 5.00"},
    {"image": "images/c.jpg", "kind": "page", "lang": "zh", "text": "你好。\n世界"},
    {"image": "images/d.jpg", "kind": "page", "lang": "en", "text": "MISSING PAGE"},
]
PREDS = [
    Prediction("images/a.png", "HELL0 world", 12.0),  # one substitution after case folding
    Prediction("images/b.png", "TOTAL:5.00", 8.0),  # exact once case and spaces are folded
    Prediction("images/c.jpg", "你好.\n世", 300.0),  # 。 folds to '.', one deletion
]


def _write_set(folder: Path, labels: list[dict]) -> Path:
    (folder / "images").mkdir(parents=True)
    with open(folder / "labels.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in labels)
    return folder


def _reference(set_dir: Path, pred: Path) -> dict:
    out = subprocess.run(
        [sys.executable, str(SCORE_PY), str(set_dir), str(pred), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


@pytest.fixture
def pred_file(tmp_path: Path) -> Path:
    path = tmp_path / "pred.jsonl"
    write_predictions(path, PREDS)
    return path


def test_whole_set_matches_reference(tmp_path: Path, pred_file: Path) -> None:
    set_dir = _write_set(tmp_path / "toy", LABELS)
    assert score_file(SCORE_PY, set_dir, pred_file) == Score.from_json(_reference(set_dir, pred_file))


def test_subset_scores_only_its_records(tmp_path: Path, pred_file: Path) -> None:
    lines = [r for r in LABELS if r["kind"] == "line"]
    by_hand = _write_set(tmp_path / "lines_only", lines)
    score = score_records(SCORE_PY, lines, pred_file)
    assert score == Score.from_json(_reference(by_hand, pred_file))
    # "helloworld" vs "hell0world": 1 edit over 20 reference characters; one of two lines exact.
    assert (score.images, score.missing, score.cer, score.exact) == (2, 0, 0.05, 0.5)
    assert score.median_ms == 12.0


def test_missing_prediction_counts_as_empty(tmp_path: Path, pred_file: Path) -> None:
    pages = [r for r in LABELS if r["kind"] == "page"]
    score = score_records(SCORE_PY, pages, pred_file)
    assert score.missing == 1
    assert score.exact is None  # no line images in this subset
    # "你好.世界" vs "你好.世": 1 edit; "missingpage": 11 edits; over 5 + 11 reference characters.
    assert score.cer == round(12 / 16, 4)


def test_per_image_losses_add_up_to_score(tmp_path: Path, pred_file: Path) -> None:
    perfect = tmp_path / "perfect.jsonl"
    write_predictions(perfect, [Prediction(r["image"], r["text"], 1.0) for r in LABELS])
    score = load_score_module(SCORE_PY)
    losses = worst_losses(score, tuple(LABELS), pred_file, perfect, limit=10)
    total = score_records(SCORE_PY, LABELS, pred_file)
    assert all(loss.peer_edits == 0 for loss in losses)
    ref_chars = sum(len(score.norm(r["text"], r["lang"])) for r in LABELS)
    assert round(sum(loss.ours_edits for loss in losses) / ref_chars, 4) == total.cer


def test_rows_split_by_kind_and_sample_reproducibly(tmp_path: Path) -> None:
    eval_dir = tmp_path / "eval"
    records = [{**r, "image": f"images/{i}_{r['image'][7:]}"} for i in range(5) for r in LABELS]
    _write_set(eval_dir / "synth_zh_dev", records)
    tasks = {t.id: t for t in discover(eval_dir)}
    assert {r["kind"] for r in tasks["synth_zh_dev_lines@line"].records} == {"line"}
    assert {r["kind"] for r in tasks["synth_zh_dev_pages@page"].records} == {"page"}
    first = {t.id: t.records for t in discover(eval_dir, max_images=3, seed=7)}
    again = {t.id: t.records for t in discover(eval_dir, max_images=3, seed=7)}
    assert first == again
    assert all(len(recs) == 3 for recs in first.values())
