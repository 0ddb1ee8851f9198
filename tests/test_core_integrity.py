"""Model integrity: damaged runtime caches are rebuilt (never run), damaged packs and manifests are
model_unavailable with a message that shows no path, and the health check says which."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ocr_core import Engine, EngineConfig, RecognizeOptions
from ocr_core.backends import OPENVINO, plan
from ocr_core.errors import ErrorCode, OcrError
from ocr_core.integrity import cache_entry, check_pack, stamp_path
from ocr_core.packs import load_manifest, pack_spec
from tests.support import CHECKOUT, render_text
from tests.test_core_models import DEFAULT_PACK, copy_pack

LINE = render_text(["Integrity 42"])
BACKENDS = ["onnxruntime", pytest.param(OPENVINO, marks=pytest.mark.skipif(
    plan(OPENVINO).version == "", reason="SKIPPED LOUDLY: openvino is not installed"))]


def _zero(path: Path) -> None:
    path.write_bytes(b"\0" * path.stat().st_size)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _assert_safe(message: str) -> None:
    """A client-facing message: no absolute path, no address."""
    assert "0x" not in message and not any(word.startswith("/") for word in message.split()), message


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("damage", "which"), [(_truncate, 0), (_zero, 0), (_zero, 1), (_empty, 1)],
                         ids=["graph-truncated", "graph-zeroed", "weights-zeroed", "weights-emptied"])
def test_a_damaged_cache_is_rebuilt_and_health_says_so(tmp_path: Path, backend: str, damage, which: int
                                                        ) -> None:
    """(For OpenVINO the "graph" is the compiled model and the "weights" its metadata file.)"""
    model_dir = copy_pack(tmp_path)
    config = EngineConfig(model_dir=model_dir, threads=1, backend=backend)
    expected = Engine.load(config).recognize(LINE, RecognizeOptions(mode="line")).text
    assert expected == "Integrity 42"
    spec, runtime = pack_spec(model_dir, DEFAULT_PACK), plan(backend)
    entry = cache_entry(model_dir, spec, "rec", runtime)
    assert stamp_path(entry).exists()
    assert check_pack(model_dir, spec, runtime)["rec"] == "ok"

    damage(entry[which])
    state = check_pack(model_dir, spec, runtime)["rec"]
    assert state.startswith("cache damaged") and "rebuilt on first use" in state, state
    _assert_safe(state)
    assert Engine.load(config).recognize(LINE, RecognizeOptions(mode="line")).text == expected
    assert check_pack(model_dir, spec, runtime)["rec"] == "ok"
    assert not list((model_dir / DEFAULT_PACK / "cache").glob("*/.writing-*")), "staging left behind"


def test_a_same_size_rewrite_that_kept_its_mtime_is_caught_by_the_checksum(tmp_path: Path) -> None:
    """A long-lived process hashes each cache file it loads: zeroed weights whose mtime was put
    back (what a stat check cannot see) are rebuilt, not run to answer empty text. (A one-shot
    process trusts a matching stat: see ocr_core.integrity.)"""
    model_dir = copy_pack(tmp_path)
    config = EngineConfig(model_dir=model_dir, threads=1, backend="onnxruntime")
    Engine.load(config)
    weights = cache_entry(model_dir, pack_spec(model_dir, DEFAULT_PACK), "rec", plan("onnxruntime"))[1]
    before = weights.stat()
    _zero(weights)
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert Engine.load(config).recognize(LINE, RecognizeOptions(mode="line")).text == "Integrity 42"
    assert any(weights.read_bytes()[: 1 << 20])


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_zeroed_model_without_a_cache_is_model_unavailable_everywhere(tmp_path: Path, backend: str) -> None:
    model_dir = copy_pack(tmp_path)
    _zero(model_dir / DEFAULT_PACK / "rec.onnx")  # same size: only its sha256 tells
    spec = pack_spec(model_dir, DEFAULT_PACK)
    for attempt in (lambda: Engine.load(EngineConfig(model_dir=model_dir, threads=1, backend=backend)),
                    lambda: check_pack(model_dir, spec, plan(backend))):
        with pytest.raises(OcrError) as caught:
            attempt()
        assert caught.value.code is ErrorCode.MODEL_UNAVAILABLE
        assert "sha256" in caught.value.message and f"make models PACK={DEFAULT_PACK}" in caught.value.message
        _assert_safe(caught.value.message)
        assert str(model_dir) in (caught.value.detail or "")  # the operator's log gets the path


@pytest.mark.parametrize(("change", "field"), [
    (lambda m: m["packs"][DEFAULT_PACK]["files"]["rec"].update(size="big"), "files.rec.size"),
    (lambda m: m["packs"][DEFAULT_PACK]["rec"].update(channels="3"), "rec.channels"),
    (lambda m: m["packs"][DEFAULT_PACK]["det"].update(mean=[0.5, None, 0.5]), "det.mean"),
    (lambda m: m["packs"][DEFAULT_PACK].update(rec=[]), "rec must be an object"),
    (lambda m: m["packs"][DEFAULT_PACK]["files"]["det"].update(sha256=7), "files.det.sha256"),
    (lambda m: m.update(packs=[1, 2]), "packs must be an object"),
])
def test_a_manifest_with_wrong_field_types_is_model_unavailable(tmp_path: Path, change, field: str) -> None:
    model_dir = copy_pack(tmp_path)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    change(manifest)
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(OcrError) as caught:
        load_manifest(model_dir)
    assert caught.value.code is ErrorCode.MODEL_UNAVAILABLE and field in caught.value.message
    _assert_safe(caught.value.message)


def test_a_manifest_that_is_not_json_is_model_unavailable(tmp_path: Path) -> None:
    model_dir = copy_pack(tmp_path)
    (model_dir / "manifest.json").write_bytes(b"{\"packs\": \xff")
    with pytest.raises(OcrError) as caught:
        Engine.load(EngineConfig(model_dir=model_dir))
    assert caught.value.code is ErrorCode.MODEL_UNAVAILABLE
    _assert_safe(caught.value.message)


def test_cli_errors_show_no_paths_and_put_the_detail_on_stderr(tmp_path: Path) -> None:
    model_dir = copy_pack(tmp_path)
    shutil.rmtree(model_dir / DEFAULT_PACK / "cache", ignore_errors=True)
    _zero(model_dir / DEFAULT_PACK / "rec.onnx")
    image = tmp_path / "line.png"
    image.write_bytes(LINE)
    result = subprocess.run(
        [sys.executable, "-m", "ocr_core", "--jsonl", "--mode", "line", str(image)],
        capture_output=True, text=True, cwd=CHECKOUT, timeout=60,
        env={**os.environ, "CRNNOCR_MODEL_DIR": str(model_dir), "CRNNOCR_BACKEND": "onnxruntime"},
    )
    assert result.returncode == 1
    record = json.loads(result.stdout)
    assert record["error"]["code"] == "model_unavailable"
    _assert_safe(record["error"]["message"])
    assert str(model_dir) in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_staging_left_by_a_killed_writer_is_removed_by_the_next(tmp_path: Path) -> None:
    model_dir = copy_pack(tmp_path)
    config = EngineConfig(model_dir=model_dir, threads=1, backend="onnxruntime")
    Engine.load(config)
    entry = cache_entry(model_dir, pack_spec(model_dir, DEFAULT_PACK), "rec", plan("onnxruntime"))
    abandoned, live = entry[0].parent / ".writing-killed", entry[0].parent / ".writing-live"
    for staging in (abandoned, live):
        staging.mkdir()
        (staging / entry[0].name).write_bytes(b"half a graph")
    old = time.time() - 3600
    os.utime(abandoned, (old, old))
    entry[1].unlink()  # the next load writes the entry again
    Engine.load(config)
    assert not abandoned.exists() and live.exists()  # a writer still at work keeps its directory
