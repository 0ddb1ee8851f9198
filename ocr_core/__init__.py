"""crnnocr core: image bytes in, text lines with boxes and confidences out.

Knows nothing of HTTP or C; ``cgi-bin/`` and ``bindings/`` are thin adapters over it.
Names are imported lazily, so that ``ocr_core.errors`` or ``ocr_core.config`` alone does not pay
for numpy, OpenCV and ONNX Runtime (a CGI health check should not).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from .process import apply_always

# Before anything imports onnxruntime (see ocr_core.process).
apply_always()

_EXPORTS = {
    "Engine": "engine",
    "get_engine": "engine",
    "EngineConfig": "config",
    "RecognizeOptions": "config",
    "ErrorCode": "errors",
    "OcrError": "errors",
    "OcrResult": "result",
    "TextLine": "result",
    "Timings": "result",
}

__all__ = [*_EXPORTS, "__version__"]

if TYPE_CHECKING:
    from .config import EngineConfig as EngineConfig
    from .config import RecognizeOptions as RecognizeOptions
    from .engine import Engine as Engine
    from .engine import get_engine as get_engine
    from .errors import ErrorCode as ErrorCode
    from .errors import OcrError as OcrError
    from .result import OcrResult as OcrResult
    from .result import TextLine as TextLine
    from .result import Timings as Timings


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
