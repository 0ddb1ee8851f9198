"""The benchmark runners' --serve protocol, which the speed section times the engines through."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import render_text

ROOT = Path(__file__).resolve().parents[1]


def test_crnnocr_runner_serves_timing_requests(tmp_path: Path) -> None:
    line = tmp_path / "line.png"
    line.write_bytes(render_text(["Total 42.50"]))
    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("not an image", encoding="utf-8")
    requests = [{"path": str(line), "mode": "line"}, {"path": str(not_an_image), "mode": "page"}]
    proc = subprocess.run(
        [sys.executable, "-m", "bench.engines.crnnocr", "--serve", json.dumps({"threads": 1})],
        cwd=ROOT,
        input="".join(json.dumps(r) + "\n" for r in requests),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    ok, failed = (json.loads(reply) for reply in proc.stdout.splitlines())
    assert ok["ms"] > 0 and "error" not in ok
    assert failed["error"].startswith("OcrError: unsupported_media_type")
