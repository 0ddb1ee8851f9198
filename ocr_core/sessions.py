"""ONNX Runtime: sessions created from pre-optimised graphs when the cache has them.

Graph optimisation is most of the cost of creating a session; every CGI hit creates sessions,
so ``make models`` optimises once and stores the result. The stored graph is optimised at
ORT_ENABLE_EXTENDED, which stays portable across CPUs; ORT_ENABLE_ALL's CPU-specific layout
transforms are applied at load, where they are cheap and make inference ~15% faster.

The cached graph keeps its weights in a file beside it (ONNX external data) rather than inline:
ONNX Runtime then reads them without first parsing and copying them out of the protobuf, and
the pages it maps come from the page cache, shared by every process on the machine. Recogniser
session creation on the default pack: ~65 -> ~40 ms, half the page faults, 13 MiB less RSS.

All sessions draw their working memory from one CPU arena registered with ONNX Runtime's
environment, not from an arena each. An arena keeps what it has grown to for the life of the
process, so with one per session a page's peak was the detector's peak plus the recogniser's
(~80 MiB each on a receipt); shared, the recogniser reuses the blocks the detector has released.
Largest sroie receipt, fresh process: peak RSS median 310 -> 243 MiB; warm page time unchanged.

The cache is checked against the stamp written with it (``ocr_core.integrity``) before a session
is built from it: a damaged entry (truncated graph, emptied or zeroed weights) is rebuilt from the
pack's model, verified by its sha256 first, or bypassed (that model loaded directly) where the
directory cannot be written. A damaged cache never reaches ONNX Runtime, which would run zeroed
weights and answer with empty text.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .backends import ONNXRUNTIME, RuntimeInfo
from .integrity import (
    STAGING_PREFIX,
    CacheState,
    remove_abandoned_staging,
    verify_cache,
    verify_model_file,
    write_stamp,
)
from .packs import PackSpec, optimized_model_path, unloadable, weights_path
from .process import ONE_SHOT, available_cores, process_kind

# Tensors from this size up go to the cache's weights file, which ONNX Runtime maps rather than
# copies (see the module docstring).
EXTERNAL_MIN_BYTES = 1024
_EXTERNAL_FILE_KEY = "session.optimized_model_external_initializers_file_name"
_EXTERNAL_MIN_BYTES_KEY = "session.optimized_model_external_initializers_min_size_in_bytes"


@functools.cache
def _register_shared_arena() -> None:
    """Register the process's shared CPU arena with ONNX Runtime's environment (once: cached).

    A session asks for it with ``session.use_env_allocators``; if registration failed, ONNX
    Runtime falls back to the session's own arena, so failure costs memory, never OCR. Two
    threads racing here at most try twice; the second attempt fails and is ignored.
    """
    cpu = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
    try:
        ort.create_and_register_allocator(cpu, None)  # None: ONNX Runtime's default arena settings
    except Exception:  # onnxruntime's own exception types; e.g. the host registered one already
        pass


def _options(threads: int, optimization: ort.GraphOptimizationLevel) -> ort.SessionOptions:
    options = ort.SessionOptions()
    # 0 ("all cores") is resolved here rather than left to ONNX Runtime, whose default counts every
    # physical core of the machine, ignoring the affinity mask (a container's cpuset, taskset), and
    # pins its workers to cores; an explicit count gets workers the OS places beside the caller. On
    # the 2-core test machine a caller that landed on the pinned worker's core ran its first line
    # ~10 ms slower.
    options.intra_op_num_threads = threads or available_cores()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = optimization
    options.log_severity_level = 3
    options.add_session_config_entry("session.use_env_allocators", "1")
    return options


def cache_files(target: Path) -> tuple[Path, Path]:
    """The files of one cache entry: the optimised graph and its weights."""
    return target, weights_path(target)


def _write_optimized(source: Path, target: Path) -> None:
    """Let ONNX Runtime write the optimised graph and its weights file, move both into place, and
    stamp them.

    Weights go first, the stamp last: a reader that finds the stamp finds the files it describes.
    Concurrent writers (two first hits) each work in their own temp directory.
    """
    import tempfile  # only here: a cold start with the cache in place need not import it

    weights = weights_path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_staging(target.parent)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=STAGING_PREFIX) as tmp:
        staged_graph, staged_weights = Path(tmp, target.name), Path(tmp, weights.name)
        options = _options(1, ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)
        options.optimized_model_filepath = str(staged_graph)
        options.add_session_config_entry(_EXTERNAL_FILE_KEY, weights.name)
        options.add_session_config_entry(_EXTERNAL_MIN_BYTES_KEY, str(EXTERNAL_MIN_BYTES))
        ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        staged_weights.touch()  # a model with no large tensor gets an empty one
        for staged, final in ((staged_weights, weights), (staged_graph, target)):
            staged.chmod(0o644)
            os.replace(staged, final)
    write_stamp(cache_files(target))


def build_optimized_cache(model_dir: Path, spec: PackSpec) -> None:
    """Write the optimised graph of every model in the pack that has none, or a damaged one;
    every entry's checksums are verified (``make models``, the deploy step)."""
    for role in spec.files:
        if role == "charset":
            continue
        target = optimized_model_path(model_dir, spec, role, ort.__version__)
        if verify_cache(cache_files(target), always_hash=True).state is not CacheState.OK:
            verify_model_file(model_dir, spec, role)
            _write_optimized(spec.path(model_dir, role), target)


class OnnxRuntimeModel:
    """An ``InferenceModel`` (ocr_core.backends) on an ONNX Runtime session, which is thread-safe."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session
        self._input = session.get_inputs()[0].name
        self.runtime = RuntimeInfo(ONNXRUNTIME, ort.__version__, "f32")
        self.metadata = dict(session.get_modelmeta().custom_metadata_map)
        last = session.get_outputs()[0].shape[-1]
        self.output_dim = last if isinstance(last, int) else None

    def run(self, inputs: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: inputs})[0]

    def fit(self, extent: int, multiple: int, limit: int = 0) -> int:
        # Any shape costs the same to ONNX Runtime: no padding beyond the multiple.
        return -(-extent // multiple) * multiple


def _cached_or_source(model_dir: Path, spec: PackSpec, role: str) -> Path:
    """The graph to load: the cache entry once it checks out (rebuilt if it must be and can be),
    else the pack's model itself, verified."""
    source = spec.path(model_dir, role)
    cached = optimized_model_path(model_dir, spec, role, ort.__version__)
    check = verify_cache(cache_files(cached), always_hash=process_kind() != ONE_SHOT)
    if check.state is CacheState.OK:
        return cached
    verify_model_file(model_dir, spec, role)
    if os.access(source.parent, os.W_OK):
        try:
            _write_optimized(source, cached)
            return cached
        except Exception:  # OSError, or ONNX Runtime failing to write: a full or read-only disk
            pass  # The cache only saves time: the verified model loads, more slowly.
    return source


def load_model(
    model_dir: Path, spec: PackSpec, role: str, threads: int, *, keep_working_memory: bool = True
) -> OnnxRuntimeModel:
    """A CPU session for one model of the pack, from the optimised cache when it checks out.

    ``keep_working_memory`` is moot here: all sessions share one arena (module docstring)."""
    path = _cached_or_source(model_dir, spec, role)
    try:
        _register_shared_arena()
        session = ort.InferenceSession(
            str(path), _options(threads, ort.GraphOptimizationLevel.ORT_ENABLE_ALL),
            providers=["CPUExecutionProvider"],
        )
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable graphs
        raise unloadable(spec, role, f"ONNX Runtime on {path}: {exc}") from None
    return OnnxRuntimeModel(session)
