"""The CGI application's side of the core's limits, without a server: its remaining time reaches
the core, and health reports the state of the models (the servers' tests are in test_cgi.py)."""

from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path

import pytest

from ocr_core.deadline import Deadline
from ocr_http.app import respond
from ocr_http.settings import CgiSettings
from tests.support import render_text
from tests.test_core_models import DEFAULT_PACK, copy_pack, needs_default_pack


class _Body:
    """A request body as a gateway hands it to ``respond`` (ocr_http.app.RequestBody)."""

    def __init__(self, data: bytes = b"") -> None:
        self._data = io.BytesIO(data)

    def read_exactly(self, length: int) -> bytes:
        return self._data.read(length)

    def read_unsized(self, cap: int) -> bytes:
        raise AssertionError("these requests carry a Content-Length")


def _post(data: bytes, deadline: Deadline) -> tuple[int, dict]:
    environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": "image/png", "CONTENT_LENGTH": str(len(data))}
    response = respond(environ, _Body(data), CgiSettings(timeout_s=5), deadline=deadline)
    return response.status, json.loads(response.body)


def test_the_requests_remaining_time_bounds_the_core(monkeypatch: pytest.MonkeyPatch) -> None:
    needs_default_pack()
    monkeypatch.setenv("CRNNOCR_BACKEND", "onnxruntime")
    data = render_text(["Deadline 7"])
    status, body = _post(data, Deadline.start(5, started_at=time.monotonic() - 5))  # all spent
    assert status == 503 and body["error"]["code"] == "timeout"
    assert "the time limit of 5 s passed during decoding" in body["error"]["message"]
    status, body = _post(data, Deadline.start(5))
    assert status == 200 and body["text"] == "Deadline 7"


def test_a_page_over_the_region_limit_is_422(monkeypatch: pytest.MonkeyPatch) -> None:
    needs_default_pack()
    monkeypatch.setenv("CRNNOCR_BACKEND", "onnxruntime")
    monkeypatch.setenv("CRNNOCR_MAX_REGIONS", "2")
    status, body = _post(render_text(["one", "two", "three"]), Deadline.start(5))
    assert status == 422 and body["error"]["code"] == "too_many_regions"


def test_health_reports_the_models_and_refuses_a_damaged_pack(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    model_dir = copy_pack(tmp_path)
    monkeypatch.setenv("CRNNOCR_MODEL_DIR", str(model_dir))
    monkeypatch.setenv("CRNNOCR_BACKEND", "onnxruntime")
    health = respond({"REQUEST_METHOD": "GET"}, _Body(), CgiSettings())
    body = json.loads(health.body)
    assert health.status == 200 and body["limits"]["max_regions"] == 1000
    assert set(body["models"]) == {"det", "rec", "cls"}
    assert all("rebuilt on first use" in state for state in body["models"].values())  # no cache yet
    shutil.rmtree(model_dir / DEFAULT_PACK / "cache", ignore_errors=True)
    rec = model_dir / DEFAULT_PACK / "rec.onnx"
    rec.write_bytes(b"\0" * rec.stat().st_size)
    health = respond({"REQUEST_METHOD": "GET"}, _Body(), CgiSettings())
    body = json.loads(health.body)
    assert health.status == 503 and body["error"]["code"] == "model_unavailable"
    assert "sha256" in body["error"]["message"] and str(model_dir) not in body["error"]["message"]
