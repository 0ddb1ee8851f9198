"""RapidOCR runner for both peer releases, each in its own venv (they pin different OpenCV wheels):

* ``rapidocr`` 3.x (PP-OCRv6-small bundled; import name ``rapidocr``), in .venv-bench/v6;
* ``rapidocr_onnxruntime`` 1.4.x (PP-OCRv4 bundled), in .venv-bench/v4.

Library defaults except the ONNX thread count. Line mode is recognition only (no detection, no
classifier); page mode is the full default pipeline (detection + 0/180° classifier + recognition).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bench.harness import Recognize, main


def _v3(threads: int) -> Recognize:
    from rapidocr import RapidOCR

    engine = RapidOCR(
        params={"Global.log_level": "error", "EngineConfig.onnxruntime.intra_op_num_threads": threads}
    )

    def recognize(data: bytes, path: Path, mode: str) -> str:
        # Call flags are sticky in rapidocr 3 (they update the engine), so pass all of them every time.
        if mode == "line":
            out = engine(data, use_det=False, use_cls=False, use_rec=True)
        else:
            out = engine(data, use_det=True, use_cls=True, use_rec=True)
        return "\n".join(out.txts or ())

    return recognize


def _v1(threads: int) -> Recognize:
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR(intra_op_num_threads=threads)

    def recognize(data: bytes, path: Path, mode: str) -> str:
        if mode == "line":
            result, _ = engine(data, use_det=False, use_cls=False, use_rec=True)
            return "\n".join(text for text, _score in result or ())
        result, _ = engine(data, use_det=True, use_cls=True, use_rec=True)
        return "\n".join(text for _box, text, _score in result or ())

    return recognize


def make_recognize(options: dict[str, Any]) -> Recognize:
    logging.disable(logging.INFO)
    threads = int(options.get("threads", 2))
    package = options.get("package", "rapidocr")
    if package == "rapidocr":
        return _v3(threads)
    if package == "rapidocr_onnxruntime":
        return _v1(threads)
    raise ValueError(f"unknown RapidOCR package {package!r}")


if __name__ == "__main__":
    main(make_recognize, "rapidocr")
