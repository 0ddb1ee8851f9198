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


def test_report_sets_the_runtimes_side_by_side(tmp_path: Path) -> None:
    """The backend table: OpenVINO / ONNX Runtime per thread count, with issue 10's page targets."""
    from bench.accuracy import EngineRun
    from bench.engines.specs import crnnocr
    from bench.report import RunResult, backend_table

    pack = "ppocr-v6-small"
    ort, ov = crnnocr(pack, "onnxruntime"), crnnocr(pack, "openvino")
    runs = [EngineRun(ort, "0.1.0 (onnxruntime 1.32.0, f32)", {}, {}, 1.0),
            EngineRun(ov, "0.1.0 (openvino 2026.4.1, bf16)", {}, {}, 1.0)]
    page, line = "sroie_receipts_en@page", "sroie_lines_en@line"
    warm = {
        ort.key: {page: 700.0, line: 12.0}, ov.key: {page: 600.0, line: 6.0},  # 2 threads: 0.86x
        crnnocr(pack, "onnxruntime", 1).key: {page: 1100.0}, crnnocr(pack, "openvino", 1).key: {page: 440.0},
    }
    result = RunResult([], [], runs, {}, warm, [], tmp_path, ort.key)
    table = "\n".join(backend_table(result, line, page))
    assert "| page (sroie_receipts_en) | 1 | 1100 ms | 440 ms | 0.40× | ≤ 0.7× | ✅ pass |" in table
    assert "| page (sroie_receipts_en) | 2 | 700 ms | 600 ms | 0.86× | ≤ 0.8× | ❌ FAIL |" in table
    assert "| line (sroie_lines_en) | 2 | 12.0 ms | 6.0 ms | 0.50× | – | – |" in table
    assert "openvino 2026.4.1, bf16" in table
