"""An engine for a long-lived host that starts on the runtime that loads fastest and moves to the one
that runs fastest.

A Python program or a C program (process kind unset, ``ocr_core.process``) with ``backend=auto``
on a CPU with bf16 wants OpenVINO's steady state (a page in ~0.43x ONNX Runtime's time), but its
first call would pay ``import openvino`` and the compiles (~250 ms more than ONNX Runtime's
~190 ms), and many C programs call once and exit. ``HandoverEngine`` answers the first call on
ONNX Runtime; the next call loads the same pack on OpenVINO (with the stages already used) before
it runs, and every later call runs there. Both runtimes read alike within the eval gate's bound
(tests/test_core_eval.py). If OpenVINO cannot load, the engine stays on ONNX Runtime.

The load runs inside a caller's call, not in a thread of its own: a host may exit right after its
first call, and a thread still compiling in OpenVINO while the host's exit handlers run its
libraries' destructors crashes the host (seen: SIGSEGV in TBB, 3 exits out of 6).

Pool workers load OpenVINO before they serve (their start is not a request's), and one-shot
processes never leave ONNX Runtime, so ``load_for_host`` gives them a plain ``Engine``.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from .backends import AUTO, ONNXRUNTIME, OPENVINO, RuntimeInfo, resolve
from .config import EngineConfig, RecognizeOptions
from .deadline import Deadline
from .engine import Engine, Progress
from .packs import PackSpec
from .process import process_kind
from .result import DocumentResult, OcrResult


class HandoverEngine:
    """Serves its first call on ONNX Runtime and every call after it on OpenVINO; thread-safe.

    Each call runs entirely on one engine; the switch is one reference assignment. While one
    caller loads OpenVINO, calls from other threads keep running on ONNX Runtime.
    """

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._engine = Engine.load(dataclasses.replace(config, backend=ONNXRUNTIME))
        self._first_call_done = False
        self._handed_over = False
        self._handover_lock = threading.Lock()

    @property
    def spec(self) -> PackSpec:
        return self._engine.spec

    @property
    def pack(self) -> str:
        return self._engine.pack

    @property
    def runtime(self) -> RuntimeInfo:
        """The runtime that the next call runs on."""
        return self._engine.runtime

    def info(self) -> dict[str, Any]:
        return self._engine.info()

    def recognize(self, data: bytes, options: RecognizeOptions | None = None, *,
                  deadline: Deadline | None = None, progress: Progress | None = None,
                  ) -> OcrResult | DocumentResult:
        """As ``Engine.recognize``; a ``deadline`` the caller brings counts the hand-over too."""
        if self._first_call_done and not self._handed_over:
            self._hand_over()
        try:
            return self._engine.recognize(data, options, deadline=deadline, progress=progress)
        finally:
            self._first_call_done = True

    def _hand_over(self) -> None:
        if not self._handover_lock.acquire(blocking=False):
            return  # another caller is loading OpenVINO: this call runs on ONNX Runtime
        try:
            if self._handed_over:
                return
            target = Engine.load(dataclasses.replace(self.config, backend=OPENVINO))
            target.load_stages_like(self._engine)
            self._engine = target
        except Exception:  # any failure keeps the engine on the runtime that works
            pass
        finally:
            self._handed_over = True
            self._handover_lock.release()


def load_for_host(config: EngineConfig) -> Engine | HandoverEngine:
    """The engine ``config`` asks for in this process: a HandoverEngine where ``auto`` would take
    OpenVINO in a long-lived host, an ``Engine`` everywhere else."""
    if config.backend == AUTO and process_kind() is None and resolve(AUTO) == OPENVINO:
        return HandoverEngine(config)
    return Engine.load(config)
