"""The inference seam: each model of a pack runs on ONNX Runtime or OpenVINO behind one protocol.

detect, recognize and classify see an ``InferenceModel``: ``run`` a batch, read the model's
``metadata`` (the recogniser's charset lives there), ``fit`` a variable input dimension. Each
runtime has a module of its own, imported only when it runs: ``sessions`` (ONNX Runtime) and
``openvino_models`` (OpenVINO). This module is stdlib only: the CGI's health check imports it.

``backend="auto"`` chooses per process (``resolve``), from measurements on a 2-core Xeon with
AMX (bf16), PP-OCRv6 small (README: Inference backends):

- a long-lived process (a Python program, a C host, a pool worker) reads a sroie receipt in
  ~0.43x ONNX Runtime's time on OpenVINO with bf16, at 1 and at 2 threads, once its input shapes
  are warm; forced to f32 (a CPU without bf16) OpenVINO is no faster, so auto keeps ONNX Runtime;
- a one-shot process (the CLI, a CGI hit) pays ``import openvino`` (~140 ms) and a compile per new
  input shape: a cold line takes 311 ms against 197 ms, so auto keeps ONNX Runtime there.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .errors import ErrorCode, OcrError
from .process import ONE_SHOT, process_kind

if TYPE_CHECKING:
    import numpy as np

    from .packs import PackSpec

ONNXRUNTIME, OPENVINO, AUTO = "onnxruntime", "openvino", "auto"


@dataclass(frozen=True)
class RuntimeInfo:
    """Which runtime runs a model, its version, and the precision of its arithmetic."""

    backend: str
    version: str
    precision: str  # "f32" or "bf16"

    def to_dict(self) -> dict[str, str]:
        return {"name": self.backend, "version": self.version, "precision": self.precision}


class InferenceModel(Protocol):
    """One model of a pack, loaded by a runtime. ``run`` may be called from many threads at once."""

    runtime: RuntimeInfo
    metadata: Mapping[str, str]  # the model file's custom metadata (ONNX metadata_props)
    output_dim: int | None  # size of the first output's last axis, when the model fixes it

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """The first output for ``inputs`` fed to the first input."""
        ...

    def fit(self, extent: int, multiple: int, limit: int = 0) -> int:
        """The size to give a variable input dimension that needs ``extent``: a multiple of
        ``multiple``, at least ``extent``, and not beyond ``limit`` (a multiple too) when
        ``extent`` fits under it. Padding up to it is the caller's, with its own fill."""
        ...


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bfloat16 (AVX-512 BF16 or AMX), read from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve(requested: str) -> str:
    """The runtime a request for ``requested`` gets in this process.

    ``auto``: OpenVINO in a long-lived process on a CPU with bf16 when OpenVINO is installed,
    ONNX Runtime otherwise (see the module docstring for the measurements).
    """
    if requested != AUTO:
        return requested
    if process_kind() == ONE_SHOT or not cpu_has_bf16() or importlib.util.find_spec(OPENVINO) is None:
        return ONNXRUNTIME
    return OPENVINO


def plan(requested: str) -> RuntimeInfo:
    """What ``resolve`` picks here, its version and precision, without importing any runtime."""
    from importlib.metadata import PackageNotFoundError, version  # ~10 ms: not on the OCR path

    backend = resolve(requested)
    try:
        installed = version(backend)
    except PackageNotFoundError:
        installed = "not installed"
    precision = "bf16" if backend == OPENVINO and cpu_has_bf16() else "f32"
    return RuntimeInfo(backend, installed, precision)


class ModelLoader(Protocol):
    def __call__(
        self, model_dir: Path, spec: PackSpec, role: str, threads: int, *, keep_working_memory: bool = True
    ) -> InferenceModel: ...


def loader(backend: str) -> ModelLoader:
    """The function that loads a pack's models on ``backend`` (a resolved name); imports the runtime.

    ``loader(...)(model_dir, spec, role, threads)`` loads one model from the runtime's cache.
    ``keep_working_memory=False`` is for a model run once per call with large activations (the
    detector): a runtime that would hold them between calls gives them back after each run.
    Loading raises OcrError(model_unavailable) when the model or the runtime cannot be loaded.
    """
    if backend != OPENVINO:
        from .sessions import load_model as load_onnxruntime

        return load_onnxruntime
    try:
        from .openvino_models import load_model as load_openvino
    except ImportError as exc:
        raise OcrError(
            ErrorCode.MODEL_UNAVAILABLE,
            "the openvino backend cannot start; install requirements.txt (`make setup`) "
            "or set CRNNOCR_BACKEND=onnxruntime",
            f"import openvino: {exc}",
        ) from None
    return load_openvino


def build_caches(model_dir: Path, spec: PackSpec) -> None:
    """Write every installed runtime's cache for the pack (``make models``, the deploy step)."""
    from .sessions import build_optimized_cache

    build_optimized_cache(model_dir, spec)
    if importlib.util.find_spec(OPENVINO) is not None:
        from .openvino_models import build_compiled_cache

        build_compiled_cache(model_dir, spec)
