"""crnnocr runner (the project's own engine), run with the project's .venv.

Options: ``pack``, ``threads``, ``backend`` (the runner is a long-lived process: without
``backend``, auto would pick OpenVINO on a CPU with bf16, so the bench always names it), ``worker``
(true: configured as a pool worker is, ``configure_process(side_by_side=True)``: one call at a time,
one OpenVINO stream, ``backend`` as the pool's ``auto`` picks it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.harness import Recognize, main


def make_recognize(options: dict[str, Any]) -> Recognize:
    from ocr_core.process import configure_process

    if options.get("worker"):  # before numpy loads: it sets OPENBLAS_NUM_THREADS
        configure_process(side_by_side=True)
    from ocr_core import Engine, EngineConfig, RecognizeOptions

    threads = int(options["threads"]) if "threads" in options else None  # None: CRNNOCR_THREADS
    engine = Engine.load(
        EngineConfig.from_env(pack=options.get("pack"), threads=threads, backend=options.get("backend"))
    )
    by_mode = {mode: RecognizeOptions(mode=mode) for mode in ("line", "page")}

    def recognize(data: bytes, path: Path, mode: str) -> str:
        return engine.recognize(data, by_mode[mode]).text

    return recognize


if __name__ == "__main__":
    main(make_recognize, "crnnocr")
