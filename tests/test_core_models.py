"""Model packs: manifest parsing, missing and corrupt files, idempotent fetch, the classic CRNN shape."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ocr_core import Engine, EngineConfig, RecognizeOptions
from ocr_core.errors import ErrorCode, OcrError
from ocr_core.models import fetch_pack
from ocr_core.packs import _parse_pack, installed_packs, load_manifest, pack_spec
from ocr_core.recognize import Recognizer
from tests.support import render_text

MODEL_DIR = EngineConfig().model_dir
DEFAULT_PACK = EngineConfig().pack


def needs_default_pack() -> None:
    if DEFAULT_PACK not in installed_packs(MODEL_DIR):
        pytest.skip(f"SKIPPED LOUDLY: pack {DEFAULT_PACK} not installed; run `make models`")


def copy_pack(tmp_path: Path) -> Path:
    needs_default_pack()
    shutil.copy(MODEL_DIR / "manifest.json", tmp_path / "manifest.json")
    shutil.copytree(MODEL_DIR / DEFAULT_PACK, tmp_path / DEFAULT_PACK, ignore=shutil.ignore_patterns("cache"))
    return tmp_path


def test_the_engine_does_not_import_the_fetch_command() -> None:
    """ocr_core.models pulls in argparse, hashlib, subprocess, tempfile and zipfile: ~10 ms of a cold
    start (more in libcrnnocr's embedded Python) that recognising never uses."""
    code = "import sys, ocr_core.engine; print('ocr_core.models' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent).stdout
    assert out.strip() == "False"


def test_manifest_lists_the_three_packs_with_a_measured_default() -> None:
    manifest = load_manifest(MODEL_DIR)
    assert {"ppocr-v4", "ppocr-v5", "ppocr-v6-small"} <= set(manifest)
    raw = json.loads((MODEL_DIR / "manifest.json").read_text())
    assert raw["default"] == DEFAULT_PACK
    for spec in manifest.values():
        assert spec.wheel and "==" in spec.wheel
        assert all(len(f.sha256) == 64 for f in spec.files.values())


def test_missing_model_dir_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(OcrError) as caught:
        Engine.load(EngineConfig(model_dir=tmp_path / "nowhere"))
    assert caught.value.code is ErrorCode.MODEL_UNAVAILABLE
    assert "make models" in caught.value.message or "CRNNOCR_MODEL_DIR" in caught.value.message


def test_missing_pack_files_name_the_fix(tmp_path: Path) -> None:
    shutil.copy(MODEL_DIR / "manifest.json", tmp_path / "manifest.json")
    with pytest.raises(OcrError) as caught:
        Engine.load(EngineConfig(model_dir=tmp_path, pack="ppocr-v5"))
    assert caught.value.code is ErrorCode.MODEL_UNAVAILABLE
    assert "make models PACK=ppocr-v5" in caught.value.message


def test_unknown_pack_is_model_unavailable() -> None:
    with pytest.raises(OcrError) as caught:
        Engine.load(EngineConfig(pack="ppocr-v99"))
    assert caught.value.code is ErrorCode.MODEL_UNAVAILABLE
    assert "ppocr-v6-small" in caught.value.message


def test_truncated_model_is_model_unavailable(tmp_path: Path) -> None:
    model_dir = copy_pack(tmp_path)
    rec = model_dir / DEFAULT_PACK / "rec.onnx"
    rec.write_bytes(rec.read_bytes()[:1000])
    with pytest.raises(OcrError) as caught:
        Engine.load(EngineConfig(model_dir=model_dir))
    assert caught.value.code is ErrorCode.MODEL_UNAVAILABLE
    assert "corrupt" in caught.value.message and f"make models PACK={DEFAULT_PACK}" in caught.value.message


def test_same_size_garbage_model_is_model_unavailable(tmp_path: Path) -> None:
    model_dir = copy_pack(tmp_path)
    rec = model_dir / DEFAULT_PACK / "rec.onnx"
    rec.write_bytes(b"\0" * rec.stat().st_size)
    with pytest.raises(OcrError) as caught:
        Engine.load(EngineConfig(model_dir=model_dir))
    assert caught.value.code is ErrorCode.MODEL_UNAVAILABLE


def test_fetch_is_idempotent_and_builds_the_cache_on_first_load(tmp_path: Path) -> None:
    model_dir = copy_pack(tmp_path)
    spec = pack_spec(model_dir, DEFAULT_PACK)
    assert fetch_pack(model_dir, spec) is False  # verified by sha256, nothing downloaded
    engine = Engine.load(EngineConfig(model_dir=model_dir, threads=1, backend="onnxruntime"))
    cache = model_dir / DEFAULT_PACK / "cache"
    graphs = list(cache.glob("ort-*/rec.*.onnx"))
    assert len(graphs) == 1 and graphs[0].with_suffix(".weights").stat().st_size > 1_000_000
    assert not list(cache.glob("*/.writing-*")), "staging directories left behind"
    assert engine.info()["packs_installed"] == [DEFAULT_PACK]


def test_a_cached_graph_without_its_weights_is_rebuilt(tmp_path: Path) -> None:
    model_dir = copy_pack(tmp_path)
    config = EngineConfig(model_dir=model_dir, threads=1, backend="onnxruntime")
    expected = Engine.load(config).recognize(render_text(["Weights 42"]), RecognizeOptions(mode="line")).text
    (weights,) = (model_dir / DEFAULT_PACK / "cache").glob("ort-*/rec.*.weights")
    weights.unlink()
    engine = Engine.load(config)
    assert weights.exists()
    assert engine.recognize(render_text(["Weights 42"]), RecognizeOptions(mode="line")).text == expected


def test_a_classic_one_channel_32px_crnn_is_describable() -> None:
    """Any CRNN ONNX model with a charset file can be dropped in: gray input, 32 px high."""
    spec = _parse_pack("crnn-classic", {
        "wheel": None,
        "files": {"rec": {"member": "crnn.onnx", "size": 1, "sha256": "0" * 64},
                  "charset": {"member": "keys.txt", "size": 1, "sha256": "0" * 64}},
        "rec": {"channels": 1, "height": 32, "mean": 0.5, "std": 0.5, "charset": {"file": "charset"},
                "append_space": False},
    })
    assert spec.det is None and spec.cls is None
    assert (spec.rec.channels, spec.rec.height, spec.rec.charset_key) == (1, 32, None)

    class RecordingModel:
        """Stands in for a runtime only to capture the tensor the recogniser builds."""

        def __init__(self) -> None:
            self.seen: list[np.ndarray] = []

        def fit(self, extent: int, multiple: int, limit: int = 0) -> int:
            return extent

        def run(self, inputs: np.ndarray) -> np.ndarray:
            self.seen.append(inputs)
            n, _, _, w = inputs.shape
            return np.zeros((n, w // 4, 3), dtype=np.float32)

    model = RecordingModel()
    recognizer = Recognizer(model, spec, ["", "a", "b"])  # type: ignore[arg-type]
    recognizer.recognize([np.full((64, 200, 3), 255, np.uint8)])
    batch = model.seen[0]
    assert batch.shape[:3] == (1, 1, 32)
    assert batch.dtype == np.float32 and batch.max() <= 1.0


def test_invalid_manifest_entry_is_model_unavailable() -> None:
    with pytest.raises(OcrError) as caught:
        _parse_pack("broken", {"files": {"rec": {"member": "x"}}})
    assert caught.value.code is ErrorCode.MODEL_UNAVAILABLE
