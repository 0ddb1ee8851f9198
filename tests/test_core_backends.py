"""The two inference runtimes behind one seam: the setting, the auto rule, threads, caches, imports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ocr_core import Engine, EngineConfig, RecognizeOptions, backends
from ocr_core.errors import ErrorCode, OcrError
from ocr_core.packs import installed_packs
from tests.support import render_text

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = EngineConfig().model_dir
DEFAULT_PACK = EngineConfig().pack
PAGE_LINES = ["Invoice 2026-11 total 318.40", "Shipped to Berlin by rail", "Thank you, Alice"]
RUNTIMES = (backends.ONNXRUNTIME, backends.OPENVINO)


def needs_default_pack() -> None:
    if DEFAULT_PACK not in installed_packs(MODEL_DIR):
        pytest.skip(f"SKIPPED LOUDLY: pack {DEFAULT_PACK} not installed; run `make models`")


@pytest.fixture(scope="module")
def engines() -> dict[str, Engine]:
    """One engine per runtime, 1 thread per call (OpenVINO then runs a stream per core)."""
    needs_default_pack()
    return {name: Engine.load(EngineConfig.from_env(backend=name, threads=1)) for name in RUNTIMES}


def python(code: str, env: dict[str, str] | None = None) -> str:
    """Run ``code`` in a fresh interpreter of the project venv; its stdout."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env=env, check=True, timeout=300)
    return done.stdout


# ---- the setting and the rule ----------------------------------------------------------------


def test_backend_setting_is_checked() -> None:
    assert EngineConfig().backend == "auto"
    assert EngineConfig.from_env({"CRNNOCR_BACKEND": "openvino"}).backend == "openvino"
    overridden = EngineConfig.from_env({"CRNNOCR_BACKEND": "openvino"}, backend="onnxruntime")
    assert overridden.backend == "onnxruntime"
    with pytest.raises(OcrError) as caught:
        EngineConfig.from_env({"CRNNOCR_BACKEND": "tensorflow"})
    assert caught.value.code is ErrorCode.BAD_REQUEST and "onnxruntime" in caught.value.message


@pytest.mark.parametrize(
    ("kind", "bf16", "expected"),
    [
        (None, True, "openvino"),  # a long-lived host with bf16: the faster steady state
        ("worker", True, "openvino"),  # a pool worker
        ("one-shot", True, "onnxruntime"),  # the CLI, a CGI hit: the faster start
        (None, False, "onnxruntime"),  # no bf16: OpenVINO's f32 is no faster
    ],
)
def test_auto_picks_by_process_kind_and_cpu(
    monkeypatch: pytest.MonkeyPatch, kind: str | None, bf16: bool, expected: str
) -> None:
    if kind is None:
        monkeypatch.delenv("CRNNOCR_PROCESS", raising=False)
    else:
        monkeypatch.setenv("CRNNOCR_PROCESS", kind)
    monkeypatch.setattr(backends, "cpu_has_bf16", lambda: bf16)
    assert backends.resolve("auto") == expected
    assert backends.plan("auto").backend == expected
    assert backends.plan("auto").precision == ("bf16" if expected == "openvino" else "f32")
    for name in RUNTIMES:
        assert backends.resolve(name) == name


def test_entry_points_state_what_process_they_are() -> None:
    code = (
        "import os; from ocr_core.process import configure_process, process_kind\n"
        "configure_process(side_by_side=True, one_shot=True); print(process_kind())\n"
        "configure_process(side_by_side=True); print(process_kind())\n"
        "configure_process(); print(process_kind())\n"
    )
    # An inherited statement is the parent's, not this process's: configure_process replaces it.
    out = python(code, env={**os.environ, "CRNNOCR_PROCESS": "one-shot"})
    assert out.split() == ["one-shot", "worker", "None"]


def test_cpu_bf16_agrees_with_openvino() -> None:
    from ocr_core import openvino_models

    assert (openvino_models.precision() == "bf16") == backends.cpu_has_bf16()


# ---- both runtimes read alike ------------------------------------------------------------------


def test_both_runtimes_read_a_page_and_a_line(engines: dict[str, Engine]) -> None:
    page, line = render_text(PAGE_LINES), render_text(["Order 1187 shipped"])
    for name, engine in engines.items():
        assert engine.backend == name
        assert engine.recognize(page).text.splitlines() == PAGE_LINES, name
        assert engine.recognize(line, RecognizeOptions(mode="line")).text == "Order 1187 shipped", name
        info = engine.info()["backend"]
        expected = "bf16" if name == "openvino" and backends.cpu_has_bf16() else "f32"
        assert info["name"] == name and info["precision"] == expected and info["version"]


@pytest.mark.parametrize("name", RUNTIMES)
def test_one_engine_many_threads_gives_the_serial_text(engines: dict[str, Engine], name: str) -> None:
    """8 threads x 20 calls on one engine, page and line mode mixed: the lines of serial calls,
    text, boxes and scores (the thread-safety promise of ocr_core.engine, for each runtime)."""
    engine = engines[name]
    inputs = [render_text(PAGE_LINES), render_text(["Line mode 123"]), render_text(["Total 9.99", "EDGE"])]
    modes = ["page", "line", "page"]

    def lines(k: int) -> object:
        return engine.recognize(inputs[k], RecognizeOptions(mode=modes[k])).to_dict()["lines"]

    expected = [lines(k) for k in range(len(inputs))]
    start = threading.Barrier(8)

    def worker(seed: int) -> list[bool]:
        start.wait()
        return [lines(k) == expected[k] for k in ((seed + i) % len(inputs) for i in range(20))]

    with ThreadPoolExecutor(8) as pool:
        outcomes = [ok for result in pool.map(worker, range(8)) for ok in result]
    assert len(outcomes) == 160 and all(outcomes)


def test_openvino_pads_to_a_short_ladder_of_sizes() -> None:
    """Every size OpenVINO sees costs a compile and memory: a few sizes cover all widths."""
    from ocr_core.openvino_models import OpenVinoModel

    fit = OpenVinoModel.fit.__get__(object.__new__(OpenVinoModel))
    sizes = {fit(width, 1) for width in range(96, 3865)}
    assert len(sizes) <= 25
    for width in range(1, 4000):
        padded = fit(width, 1)
        assert width <= padded <= max(4, width * 1.25)
    for extent in range(1, 961):
        padded = fit(extent, 32, 960)
        assert padded % 32 == 0 and extent <= padded <= 960
    assert fit(960, 32, 960) == 960  # the detector's longest side is not padded beyond its limit
    assert fit(1000, 32, 960) >= 1000


def test_onnxruntime_pads_only_to_the_multiple(engines: dict[str, Engine]) -> None:
    model = engines["onnxruntime"]._recognizer._model
    assert [model.fit(n, 32, 960) for n in (1, 32, 33, 700)] == [32, 32, 64, 704]
    assert model.fit(517, 1) == 517


# ---- a long-lived host: a fast first call, then the fast steady state --------------------------


def needs_openvino_with_bf16() -> None:
    if backends.resolve(backends.AUTO) != backends.OPENVINO:
        pytest.skip("SKIPPED LOUDLY: auto keeps ONNX Runtime here (no bf16 or no openvino)")


def test_a_host_reads_its_first_call_on_onnxruntime_and_the_next_on_openvino() -> None:
    from ocr_core.handover import HandoverEngine, load_for_host

    needs_default_pack()
    needs_openvino_with_bf16()
    engine = load_for_host(EngineConfig.from_env(backend="auto", threads=1))
    assert isinstance(engine, HandoverEngine)
    page = render_text(PAGE_LINES)
    first = engine.recognize(page)
    assert first.text == "\n".join(PAGE_LINES) and engine.runtime.backend == backends.ONNXRUNTIME
    assert engine.recognize(page).text == first.text
    assert engine.runtime.backend == backends.OPENVINO
    # The stages the first call used came loaded; the one it did not use still waits.
    assert engine._engine._detector.built and not engine._engine._classifier.built


def test_a_failed_handover_keeps_the_host_on_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    from ocr_core import handover

    needs_default_pack()
    needs_openvino_with_bf16()
    engine = handover.HandoverEngine(EngineConfig.from_env(backend="auto", threads=1))

    def unloadable(config: EngineConfig) -> Engine:
        raise OcrError(ErrorCode.MODEL_UNAVAILABLE, "the openvino backend cannot start")

    monkeypatch.setattr(handover.Engine, "load", staticmethod(unloadable))
    line = render_text(["Thank you, Alice"])
    for _ in range(3):
        assert engine.recognize(line, RecognizeOptions(mode="line")).text == "Thank you, Alice"
        assert engine.runtime.backend == backends.ONNXRUNTIME


@pytest.mark.parametrize(
    ("backend", "kind"), [("auto", "one-shot"), ("auto", "worker"), ("openvino", None), ("onnxruntime", None)]
)
def test_only_an_auto_host_hands_over(
    monkeypatch: pytest.MonkeyPatch, backend: str, kind: str | None
) -> None:
    """A one-shot process never leaves ONNX Runtime; a pool worker loads OpenVINO before it serves."""
    from ocr_core.handover import HandoverEngine, load_for_host

    needs_default_pack()
    monkeypatch.setenv("CRNNOCR_PROCESS", kind or "")
    engine = load_for_host(EngineConfig.from_env(backend=backend, threads=1))
    assert not isinstance(engine, HandoverEngine)
    assert engine.backend == backends.resolve(backend)


# ---- imports: each process pays only for its runtime -----------------------------------------


def test_a_cold_line_imports_only_what_it_needs() -> None:
    """A one-shot process keeps today's cold start: ONNX Runtime, never openvino, pypdfium2 or
    numpy.ma (np.median's first call imports it: ~9 ms of a cold line)."""
    command = [sys.executable, "-X", "importtime", "-m", "ocr_core", "--mode", "line", "samples/receipt.png"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if not k.startswith("CRNNOCR_")})
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "onnxruntime" in imported
    assert not imported & {"openvino", "pypdfium2", "numpy.ma"}


def test_an_openvino_engine_does_not_import_onnxruntime() -> None:
    needs_default_pack()
    code = (
        "import sys; from ocr_core import Engine, EngineConfig\n"
        "e = Engine.load(EngineConfig.from_env(backend='openvino')); e._detector.get()\n"
        "print(e.backend, 'onnxruntime' in sys.modules)"
    )
    assert python(code).split() == ["openvino", "False"]


def test_jsonl_says_which_runtime_ran_and_home_stays_empty(tmp_path: Path) -> None:
    """Neither runtime writes under HOME (a service user may have none): no telemetry id or consent."""
    image = str(ROOT / "samples" / "receipt.png")
    home = tmp_path / "home"
    home.mkdir()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CRNNOCR_")}, "HOME": str(home)}
    for flag, name in (([], "onnxruntime"), (["--backend", "openvino"], "openvino")):
        done = subprocess.run([sys.executable, "-m", "ocr_core", "--jsonl", "--mode", "line", *flag, image],
                              capture_output=True, text=True, cwd=ROOT, env=env, check=True, timeout=120)
        record = json.loads(done.stdout)
        assert record["ok"] and record["backend"]["name"] == name and record["backend"]["precision"]
    assert list(home.iterdir()) == []


def test_health_says_which_runtime_a_request_gets(monkeypatch: pytest.MonkeyPatch) -> None:
    needs_default_pack()
    from ocr_http.app import NO_SERVICES, health
    from ocr_http.settings import CgiSettings

    monkeypatch.setenv("CRNNOCR_PROCESS", "one-shot")
    document = json.loads(health(CgiSettings.from_env(), NO_SERVICES).body)
    assert document["backend"] == backends.plan("auto").to_dict()
    assert document["backend"]["name"] == "onnxruntime"


def test_a_missing_openvino_is_model_unavailable() -> None:
    code = (
        "import sys; sys.modules['openvino'] = None\n"
        "from ocr_core import Engine, EngineConfig, OcrError\n"
        "try: Engine.load(EngineConfig.from_env(backend='openvino'))\n"
        "except OcrError as e: print(e.code.value, 'CRNNOCR_BACKEND=onnxruntime' in e.message)"
    )
    assert python(code).split() == ["model_unavailable", "True"]


# ---- OpenVINO's compiled-model cache -----------------------------------------------------------


def copy_pack(tmp_path: Path) -> Path:
    needs_default_pack()
    shutil.copy(MODEL_DIR / "manifest.json", tmp_path / "manifest.json")
    shutil.copytree(MODEL_DIR / DEFAULT_PACK, tmp_path / DEFAULT_PACK, ignore=shutil.ignore_patterns("cache"))
    return tmp_path


def openvino_line(model_dir: Path) -> str:
    engine = Engine.load(EngineConfig(model_dir=model_dir, backend="openvino", threads=1))
    return engine.recognize(render_text(["Cache 2026"]), RecognizeOptions(mode="line")).text


def test_openvino_cache_is_written_once_and_then_imported(tmp_path: Path) -> None:
    model_dir = copy_pack(tmp_path)
    assert openvino_line(model_dir) == "Cache 2026"
    cache = model_dir / DEFAULT_PACK / "cache"
    (blob,) = cache.glob("openvino-*/rec.*.blob")
    (metadata,) = cache.glob("openvino-*/rec.*.metadata.json")
    assert blob.stat().st_size > 1_000_000 and "character" in json.loads(metadata.read_text())
    assert not list(cache.glob("*/.writing-*")), "staging directories left behind"
    written = blob.stat().st_mtime_ns
    assert openvino_line(model_dir) == "Cache 2026"
    assert blob.stat().st_mtime_ns == written


def test_make_models_writes_both_caches(tmp_path: Path) -> None:
    model_dir = copy_pack(tmp_path)
    command = [sys.executable, "-m", "ocr_core.models", "fetch", DEFAULT_PACK, "--model-dir", str(model_dir)]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=600)
    cache = model_dir / DEFAULT_PACK / "cache"
    for role in ("det", "rec", "cls"):
        assert list(cache.glob(f"ort-*/{role}.*.onnx")), role
        assert list(cache.glob(f"openvino-*/{role}.*.blob")), role


def test_a_damaged_openvino_cache_is_rebuilt(tmp_path: Path) -> None:
    model_dir = copy_pack(tmp_path)
    assert openvino_line(model_dir) == "Cache 2026"
    (blob,) = (model_dir / DEFAULT_PACK / "cache").glob("openvino-*/rec.*.blob")
    blob.write_bytes(blob.read_bytes()[:4096])
    assert openvino_line(model_dir) == "Cache 2026"
    assert blob.stat().st_size > 1_000_000


def test_a_cache_that_cannot_be_written_only_costs_time(tmp_path: Path) -> None:
    model_dir = copy_pack(tmp_path)
    (model_dir / DEFAULT_PACK / "cache").write_text("a file where the cache directory would go")
    assert openvino_line(model_dir) == "Cache 2026"


def test_a_corrupt_model_is_model_unavailable_on_openvino(tmp_path: Path) -> None:
    model_dir = copy_pack(tmp_path)
    rec = model_dir / DEFAULT_PACK / "rec.onnx"
    rec.write_bytes(b"\0" * rec.stat().st_size)
    with pytest.raises(OcrError) as caught:
        Engine.load(EngineConfig(model_dir=model_dir, backend="openvino"))
    assert caught.value.code is ErrorCode.MODEL_UNAVAILABLE
    assert f"make models PACK={DEFAULT_PACK}" in caught.value.message


def test_openvino_without_bf16_runs_f32_from_its_own_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CPU without bf16 gets f32 models (compiled from the f32 weights), cached apart from bf16 ones."""
    from ocr_core import openvino_models

    monkeypatch.setattr(openvino_models, "precision", lambda: "f32")
    model_dir = copy_pack(tmp_path)
    engine = Engine.load(EngineConfig(model_dir=model_dir, backend="openvino", threads=1))
    assert engine.runtime.precision == "f32"
    assert engine.recognize(render_text(["Cache 2026"]), RecognizeOptions(mode="line")).text == "Cache 2026"
    blobs = (model_dir / DEFAULT_PACK / "cache").glob("openvino-*/*.blob")
    assert [blob.name.split(".")[2] for blob in blobs] == ["f32"]
