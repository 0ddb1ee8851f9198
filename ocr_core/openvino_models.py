"""OpenVINO: compiled models imported from the pack's cache, in bf16 where the CPU has it.

Imported only when the openvino backend runs (``import openvino`` alone costs ~200 ms).

Cache. ``make models`` (and the deploy step) compile each model of the pack once and export it to
``cache/openvino-<version>/<role>.<sha>.<precision>.blob``, with the model's custom metadata in
JSON beside it (a compiled model keeps none, and the recogniser's charset is there). Importing
a blob takes ~60 ms against ~160 ms to compile from ONNX. For bf16 the weights are stored as
f16 (``compress_to_fp16``), halving the blob and the weights held in memory: peak RSS on the
largest sroie receipt 371 -> 287 MiB; bf16 arithmetic rounds them further anyway. Each entry is
stamped with its checksums (``ocr_core.integrity``) and checked against them before it is
imported; a missing or damaged entry is rebuilt at load from the verified source model when the
directory is writable, atomically as the ONNX Runtime cache is, else the source is compiled in
memory; a model that cannot be compiled at all is ``model_unavailable``.

Settings, each measured on the 2-core test machine (see the README's performance notes):

- ``ENABLE_CPU_PINNING=False``: by default OpenVINO pins its inference threads, and two
  one-thread processes side by side (a pool's workers) were both pinned to the first core:
  83 calls/s together instead of 200.
- ``PERFORMANCE_HINT=LATENCY`` with one stream per concurrent caller. A stream runs one call at a
  time; a process that makes one call at a time (the CLI, a CGI hit, a pool worker) gets one,
  since with two, successive calls alternate between them and each stream compiles kernels
  (and holds memory) for every input shape on its own. Otherwise as many streams as ``threads``
  per call fit on the cores (threads=1 on 2 cores: two callers at once, 2.1x the throughput).
- Input shapes: OpenVINO compiles kernels for each new input shape (~20 ms for the recogniser,
  ~50 ms for the detector) and keeps them, with ~6-9 MB (recogniser) and ~38 MB (detector) per
  shape. On real pages nearly every recogniser batch had a new width (480 shapes over the 35
  sroie receipts; RSS reached 1.6 GiB), which is why the gain vanished in the first probe.
  ``fit`` pads each variable dimension up a ladder of sizes with three significant bits (at most
  25% more, ~9% on average): 15-25 shapes over the same pages.
- The detector's working memory (~100 MB for a 960 px page) is given back after each run
  (``release_memory``, then glibc's ``malloc_trim``): ~25 ms a page, and a page's peak is the
  larger of the two stages instead of their sum.
"""

from __future__ import annotations

import functools
import json
import os
import queue
import tempfile
import threading
from pathlib import Path

import numpy as np
import openvino as ov

from .backends import OPENVINO, RuntimeInfo
from .errors import OcrError
from .integrity import (
    STAGING_PREFIX,
    CacheState,
    remove_abandoned_staging,
    verify_cache,
    verify_model_file,
    write_stamp,
)
from .packs import PackSpec, compiled_model_path, metadata_path, unloadable
from .process import ONE_SHOT, WORKER, available_cores, process_kind, release_free_memory

VERSION = ov.__version__.split("-", 1)[0]  # "2026.4.1-22982-<hash>-releases/2026/4" -> "2026.4.1"
# Significant bits of a padded dimension (in units of its multiple): sizes 4..7 x 2^k.
LADDER_BITS = 3

Properties = dict[str, object]  # OpenVINO compile/import properties
Metadata = dict[str, str]


@functools.cache
def _core() -> ov.Core:
    return ov.Core()


@functools.cache
def precision() -> str:
    """bf16 when OpenVINO's CPU plugin can compute in it here, f32 otherwise."""
    return "bf16" if "BF16" in _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES") else "f32"


def _source_metadata(model: ov.Model) -> Metadata:
    """The ONNX file's metadata_props, which OpenVINO's reader keeps under rt_info["framework"]."""
    if not model.has_rt_info("framework"):
        return {}
    return {key: value.astype(str) for key, value in model.get_rt_info()["framework"].items()}


def _compile(source: Path, staging: Path, config: Properties) -> tuple[ov.CompiledModel, Metadata]:
    """Compile the source model for this CPU's precision; ``staging`` holds the f16 copy."""
    core = _core()
    model = core.read_model(source)
    metadata = _source_metadata(model)
    if precision() == "bf16":
        compressed = staging / "model.xml"
        ov.save_model(model, compressed, compress_to_fp16=True)
        model = core.read_model(compressed)
    return core.compile_model(model, "CPU", config), metadata


def _write_cache(source: Path, blob: Path, metadata: Path) -> None:
    """Compile, then move the metadata and the compiled model into place, metadata first, and
    stamp them: a reader that finds the stamp finds what it describes. Concurrent writers each
    stage their own."""
    blob.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_staging(blob.parent)
    with tempfile.TemporaryDirectory(dir=blob.parent, prefix=STAGING_PREFIX) as tmp:
        staging = Path(tmp)
        compiled, meta = _compile(source, staging, {"INFERENCE_PRECISION_HINT": precision()})
        staged_meta, staged_blob = staging / metadata.name, staging / blob.name
        staged_meta.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        staged_blob.write_bytes(compiled.export_model().getvalue())
        for staged, final in ((staged_meta, metadata), (staged_blob, blob)):
            staged.chmod(0o644)
            os.replace(staged, final)
    write_stamp((blob, metadata))


def _cache_paths(model_dir: Path, spec: PackSpec, role: str) -> tuple[Path, Path]:
    return (compiled_model_path(model_dir, spec, role, VERSION, precision()),
            metadata_path(model_dir, spec, role, VERSION))


def build_compiled_cache(model_dir: Path, spec: PackSpec) -> None:
    """Write the compiled model of every model in the pack that has none, or a damaged one, for
    this CPU; every entry's checksums are verified (``make models``, the deploy step)."""
    for role in spec.files:
        if role == "charset":
            continue
        blob, metadata = _cache_paths(model_dir, spec, role)
        if verify_cache((blob, metadata), always_hash=True).state is not CacheState.OK:
            verify_model_file(model_dir, spec, role)
            _write_cache(spec.path(model_dir, role), blob, metadata)


def _runtime_config(threads: int) -> Properties:
    per_call = threads or available_cores()
    callers = 1 if process_kind() in (ONE_SHOT, WORKER) else max(1, available_cores() // per_call)
    return {
        "INFERENCE_PRECISION_HINT": precision(),
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": callers,
        "INFERENCE_NUM_THREADS": callers * per_call,
        "ENABLE_CPU_PINNING": False,
    }


def _import(blob: Path, metadata: Path, config: Properties) -> tuple[ov.CompiledModel, Metadata]:
    meta = json.loads(metadata.read_text(encoding="utf-8"))
    return _core().import_model(blob.read_bytes(), "CPU", config), meta


def _load(model_dir: Path, spec: PackSpec, role: str,
          config: Properties) -> tuple[ov.CompiledModel, Metadata]:
    """From the cache once it checks out; a missing or damaged cache is rebuilt from the verified
    source model, or bypassed when it cannot be written."""
    source = spec.path(model_dir, role)
    blob, metadata = _cache_paths(model_dir, spec, role)
    if verify_cache((blob, metadata), always_hash=process_kind() != ONE_SHOT).state is CacheState.OK:
        try:
            return _import(blob, metadata, config)
        except (RuntimeError, OSError, ValueError):
            pass  # stamped, yet OpenVINO refuses it (e.g. written for another CPU): rebuilt below
    verify_model_file(model_dir, spec, role)
    if os.access(source.parent, os.W_OK):
        try:
            _write_cache(source, blob, metadata)
            return _import(blob, metadata, config)
        except OSError:
            pass  # The cache only saves time; a read-only or full disk must not stop OCR.
    with tempfile.TemporaryDirectory(prefix="crnnocr-openvino-") as tmp:
        return _compile(source, Path(tmp), config)


class OpenVinoModel:
    """An ``InferenceModel`` (ocr_core.backends) on an OpenVINO compiled model.

    A compiled model is shared; an infer request is not: each call takes an idle request from a
    pool (one per caller running at once), so ``run`` is thread-safe.
    """

    def __init__(self, compiled: ov.CompiledModel, metadata: Metadata, keep_working_memory: bool) -> None:
        self._compiled = compiled
        self._idle: queue.SimpleQueue[ov.InferRequest] = queue.SimpleQueue()
        self._keep_working_memory = keep_working_memory
        self._running = 0
        self._lock = threading.Lock()
        self.metadata = metadata
        last = compiled.outputs[0].get_partial_shape()[-1]
        self.output_dim = last.get_length() if last.is_static else None
        used = compiled.get_property("INFERENCE_PRECISION_HINT")
        self.runtime = RuntimeInfo(OPENVINO, VERSION, "bf16" if used == ov.Type.bf16 else "f32")

    def run(self, inputs: np.ndarray) -> np.ndarray:
        with self._lock:
            self._running += 1
        try:
            request = self._idle.get_nowait()
        except queue.Empty:
            request = self._compiled.create_infer_request()
        try:
            # share_inputs: no copy of the batch; the output is copied out of the request.
            return request.infer({0: inputs}, share_inputs=True)[0]
        finally:
            self._idle.put(request)
            with self._lock:
                self._running -= 1
                if not self._keep_working_memory and not self._running:
                    self._release_working_memory()

    def _release_working_memory(self) -> None:
        """Hand the activations back: OpenVINO frees them, glibc returns the pages."""
        self._compiled.release_memory()
        release_free_memory()

    def fit(self, extent: int, multiple: int, limit: int = 0) -> int:
        units = -(-extent // multiple)
        shift = max(0, units.bit_length() - LADDER_BITS)
        size = (-(-units >> shift) << shift) * multiple
        if limit and units * multiple <= limit:
            size = min(size, limit)
        return size


def load_model(model_dir: Path, spec: PackSpec, role: str, threads: int, *, keep_working_memory: bool = True
               ) -> OpenVinoModel:
    """One model of the pack on OpenVINO's CPU plugin, from the compiled cache when it checks out."""
    try:
        compiled, meta = _load(model_dir, spec, role, _runtime_config(threads))
        return OpenVinoModel(compiled, meta, keep_working_memory)
    except OcrError:
        raise
    except Exception as exc:  # openvino raises RuntimeError and its own types for unreadable models
        raise unloadable(spec, role, f"OpenVINO on {spec.path(model_dir, role)}: {exc}") from None
