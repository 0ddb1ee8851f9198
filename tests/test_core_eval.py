"""Accuracy on the labelled images in ../shared/eval, scored by the reference score.py itself.

Each bound is the issue's target for the default pack (the best peer's CER measured on the same
images, or better), so a regression in detection, ordering or recognition fails here. Every row
runs on both inference runtimes: each must meet the bound, and OpenVINO (bf16 where the CPU has
it) may be at most OPENVINO_CER_MARGIN worse than ONNX Runtime on the same images.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ocr_core import Engine, EngineConfig, RecognizeOptions
from ocr_core.errors import OcrError
from tests.support import EVAL_DIR

RUNTIMES = ("onnxruntime", "openvino")
OPENVINO_CER_MARGIN = 0.002

# (set, kind of image used, mode, CER bound)
TARGETS = [
    ("sroie_lines_en", "line", "line", 0.015),
    ("sroie_lines_en", "line", "page", 0.03),
    ("synth_zh_dev", "line", "line", 0.027),
    ("synth_zh_dev", "page", "page", 0.147),
    ("zh_screenshots", None, "page", 0.10),
    ("sroie_receipts_en", "page", "page", 0.074),
    ("funsd_forms_en", "page", "page", 0.157),
    ("en_screenshots", "page", "page", 0.016),
]


def score_with_reference(engine: Engine, set_name: str, kind: str | None, mode: str, work: Path) -> dict:
    set_dir = EVAL_DIR / set_name
    if not (set_dir / "labels.jsonl").is_file() or not (EVAL_DIR / "score.py").is_file():
        pytest.skip(f"SKIPPED LOUDLY: eval set {set_dir} or {EVAL_DIR / 'score.py'} is missing "
                    "(CI always has ../shared/eval; set CRNNOCR_EVAL to point elsewhere)")
    rows = [json.loads(line) for line in (set_dir / "labels.jsonl").read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if kind is None or r["kind"] == kind]
    # score.py scores a whole set folder: give it one holding just the rows under test.
    subset = work / set_name
    subset.mkdir(parents=True)
    (subset / "images").symlink_to(set_dir / "images")
    (subset / "labels.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    predictions = work / "pred.jsonl"
    with predictions.open("w", encoding="utf-8") as out:
        for row in rows:
            result = engine.recognize((set_dir / row["image"]).read_bytes(), RecognizeOptions(mode=mode))
            out.write(json.dumps({"image": row["image"], "text": result.text}, ensure_ascii=False) + "\n")
    command = [sys.executable, str(EVAL_DIR / "score.py"), str(subset), str(predictions), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def runtimes() -> dict[str, Engine]:
    """The default pack on each runtime, default threads, loaded once for every row."""
    try:
        return {name: Engine.load(EngineConfig.from_env(backend=name)) for name in RUNTIMES}
    except OcrError as exc:
        pytest.skip(f"SKIPPED LOUDLY: default model pack not installed ({exc}); run `make models`")


@pytest.mark.parametrize(("set_name", "kind", "mode", "bound"), TARGETS,
                         ids=[f"{s}-{k or 'all'}-{m}" for s, k, m, _ in TARGETS])
def test_cer_within_target(runtimes: dict[str, Engine], tmp_path: Path, set_name: str, kind: str | None,
                           mode: str, bound: float) -> None:
    scores = {name: score_with_reference(engine, set_name, kind, mode, tmp_path / name)
              for name, engine in runtimes.items()}
    for name, score in scores.items():
        assert score["missing"] == 0, name
        assert score["CER"] <= bound, (name, score)
    assert scores["openvino"]["CER"] <= scores["onnxruntime"]["CER"] + OPENVINO_CER_MARGIN, scores
