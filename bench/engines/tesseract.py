"""Tesseract 5 runner: Debian's ``tesseract`` CLI, one process per image, as a shell user would call it.

``--psm 7`` (one text line) for line mode, Tesseract's default page segmentation for pages;
``OMP_THREAD_LIMIT=1`` as in the issue's peer figures.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from bench.harness import Recognize, main


def make_recognize(options: dict[str, Any]) -> Recognize:
    langs = options.get("langs", "chi_sim+eng")
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}

    def recognize(data: bytes, path: Path, mode: str) -> str:
        psm = ["--psm", "7"] if mode == "line" else []
        proc = subprocess.run(
            ["tesseract", "stdin", "stdout", "-l", langs, *psm],
            input=data,
            capture_output=True,
            env=env,
            timeout=120,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.decode(errors="replace").strip()[-300:])
        # Tesseract separates blocks with blank lines and ends pages with a form feed.
        lines = proc.stdout.decode("utf-8", errors="replace").replace("\f", "").splitlines()
        return "\n".join(line for line in lines if line.strip())

    return recognize


if __name__ == "__main__":
    main(make_recognize, "tesseract")
