"""What one call may cost: the deadline (checked between stages and batches), the region limit
(a dense page answers too_many_regions at once), and error messages that show nothing inside."""

from __future__ import annotations

import io
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ocr_core import Engine, EngineConfig, RecognizeOptions
from ocr_core.config import DEFAULT_MAX_REGIONS, DEFAULT_TIMEOUT_S
from ocr_core.deadline import Deadline
from ocr_core.errors import ErrorCode, OcrError, client_error
from tests.rendered_pages import two_column_article
from tests.support import CHECKOUT, FONT, png_header_only, render_text
from tests.test_core_models import needs_default_pack

DENSE_SIDE = 1600


def dense_page() -> bytes:
    """~9,600 tiny characters, one every 16 px: a page of thousands of text regions."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(FONT), 11)
    image = Image.new("L", (DENSE_SIDE, DENSE_SIDE), 255)
    draw = ImageDraw.Draw(image)
    rng = random.Random(11)
    for y in range(4, DENSE_SIDE - 14, 16):
        for x in range(4, DENSE_SIDE - 10, 16):
            draw.text((x, y), rng.choice("ABCDEFGHKMNPRSTXZ23456789"), font=font, fill=0)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def page_png() -> bytes:
    return two_column_article(22, 60).png


@pytest.fixture(scope="module")
def engine() -> Engine:
    needs_default_pack()
    return Engine.load(EngineConfig(threads=1, backend="onnxruntime"))


class RecordingDeadline(Deadline):
    """Never expires; records where it was checked."""

    def __init__(self) -> None:
        super().__init__(1.0, float("inf"))
        object.__setattr__(self, "stages", [])

    def check(self, stage: str) -> None:
        self.stages.append(stage)


def test_the_deadline_is_checked_between_stages_and_batches(engine: Engine) -> None:
    deadline = RecordingDeadline()
    result = engine.recognize(page_png(), RecognizeOptions(use_cls=True), deadline=deadline)
    assert len(result.lines) > 10
    stages = deadline.stages
    assert stages[0] == "decoding"
    assert stages.count("text detection") > len(result.lines)  # each region, and after the stage
    assert stages.count("line orientation") >= 2 and stages.count("line recognition") >= 2
    assert stages.index("line orientation") < stages.index("line recognition")


@pytest.mark.parametrize("budget_s", [0.001, 0.15])
def test_a_page_past_its_deadline_stops_with_timeout(engine: Engine, budget_s: float) -> None:
    data = page_png()
    started = time.monotonic()
    with pytest.raises(OcrError) as caught:
        engine.recognize(data, deadline=Deadline.start(budget_s, started_at=started))
    elapsed = time.monotonic() - started
    assert caught.value.code is ErrorCode.TIMEOUT
    assert f"{budget_s:g} s" in caught.value.message
    # The step running at the deadline ends first: at most one detector run or one batch.
    assert elapsed < budget_s + 2.0, elapsed


def test_a_host_engine_that_hands_over_passes_the_deadline_on() -> None:
    from ocr_core.handover import HandoverEngine

    needs_default_pack()
    host = HandoverEngine(EngineConfig(threads=1))
    with pytest.raises(OcrError) as caught:
        host.recognize(page_png(), deadline=Deadline.start(0.001))
    assert caught.value.code is ErrorCode.TIMEOUT


def test_the_engine_deadline_comes_from_its_config(engine: Engine) -> None:
    fast = Engine.load(EngineConfig(threads=1, backend="onnxruntime", timeout_s=0.001))
    with pytest.raises(OcrError) as caught:
        fast.recognize(page_png())
    assert caught.value.code is ErrorCode.TIMEOUT
    assert EngineConfig().timeout_s == DEFAULT_TIMEOUT_S == 20.0
    assert EngineConfig(timeout_s=0).timeout_s == 0  # no limit
    assert len(engine.recognize(page_png(), deadline=Deadline.start(0)).lines) > 10


@pytest.mark.parametrize(("env", "message"), [
    ({"CRNNOCR_TIMEOUT_S": "abc"}, "CRNNOCR_TIMEOUT_S='abc' is not a number"),
    ({"CRNNOCR_TIMEOUT_S": "-1"}, "timeout_s"),
    ({"CRNNOCR_TIMEOUT_S": "nan"}, "timeout_s"),
    ({"CRNNOCR_MAX_REGIONS": "0"}, "max_regions"),
    ({"CRNNOCR_MAX_REGIONS": "many"}, "CRNNOCR_MAX_REGIONS='many' is not an integer"),
])
def test_bad_limits_in_the_environment_are_bad_requests(env: dict[str, str], message: str) -> None:
    with pytest.raises(OcrError) as caught:
        EngineConfig.from_env(environ=env)
    assert caught.value.code is ErrorCode.BAD_REQUEST and message in caught.value.message


def test_a_dense_page_answers_too_many_regions_at_once(engine: Engine) -> None:
    """Without the limit this page reads ~2,000 lines in ~25 s on an idle 2-core machine; with
    it, ~0.7 s: one detector run and the count, and no line cropped or read."""
    deadline = RecordingDeadline()
    started = time.monotonic()
    with pytest.raises(OcrError) as caught:
        engine.recognize(dense_page(), deadline=deadline)
    elapsed = time.monotonic() - started
    assert caught.value.code is ErrorCode.TOO_MANY_REGIONS
    assert f"more than {DEFAULT_MAX_REGIONS} text regions" in caught.value.message
    assert set(deadline.stages) == {"decoding", "text detection"}  # stopped inside detection
    assert elapsed < 30.0, elapsed  # loose: the machine is shared; the stages above are the proof


def test_the_region_limit_is_configurable(engine: Engine) -> None:
    data = page_png()
    lines = len(engine.recognize(data).lines)
    small = Engine.load(EngineConfig.from_env(
        environ={"CRNNOCR_MAX_REGIONS": str(lines - 1)}, threads=1, backend="onnxruntime"))
    with pytest.raises(OcrError) as caught:
        small.recognize(data)
    assert caught.value.code is ErrorCode.TOO_MANY_REGIONS
    assert f"more than {lines - 1}" in caught.value.message
    assert engine.info()["limits"]["max_regions"] == DEFAULT_MAX_REGIONS


def _cli(tmp_path: Path, *args: str) -> tuple[list[dict], str, float]:
    """The CLI in a child process: its JSON records, its stderr and the child's peak RSS in MiB."""
    result = subprocess.run(
        [sys.executable, "-m", "ocr_core", "--jsonl", "--backend", "onnxruntime", *args],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={**os.environ, "PYTHONPATH": str(CHECKOUT)},
    )
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return [json.loads(line) for line in result.stdout.splitlines()], result.stderr, peak_mib


def test_cli_dense_page_and_timeout_answer_their_codes_fast_and_small(tmp_path: Path) -> None:
    needs_default_pack()
    (tmp_path / "dense.png").write_bytes(dense_page())
    (tmp_path / "page.png").write_bytes(page_png())
    started = time.monotonic()
    records, _err, peak_mib = _cli(tmp_path, "dense.png")
    assert records[0]["error"]["code"] == "too_many_regions"
    assert time.monotonic() - started < 15.0  # cold start included
    assert peak_mib < 1024, peak_mib  # RUSAGE_CHILDREN: the largest child so far
    records, _err, _peak = _cli(tmp_path, "--timeout", "0.001", "page.png")
    assert records[0]["error"]["code"] == "timeout"


def test_cli_error_messages_show_no_paths_or_addresses(tmp_path: Path) -> None:
    needs_default_pack()
    files = {
        "random.bin": os.urandom(4096),
        "truncated.png": render_text(["Cut short"])[:300],
        "bomb.png": png_header_only(30000, 30000),
        "empty.png": b"",
        "text.png": b"GIF89a" + os.urandom(64),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    records, _err, _peak = _cli(tmp_path, *files, "missing.png")
    assert len(records) == len(files) + 1 and all(not r.get("ok", True) for r in records)
    for record in records:
        message = record["error"]["message"]
        assert "0x" not in message and not any(w.startswith("/") for w in message.split()), message


def test_client_error_is_the_one_place_that_makes_exceptions_safe() -> None:
    safe = OcrError(ErrorCode.DECODE_FAILED, "truncated")
    assert client_error(safe) is safe
    error = client_error(ValueError("bad thing at 0x7f3a12 in /opt/crnnocr/ocr_core/detect.py"))
    assert error.code is ErrorCode.INTERNAL
    assert "0x" not in error.message and "/" not in error.message
    assert "ValueError" in error.detail and "/opt/crnnocr" in error.detail
    assert "\n" not in OcrError(ErrorCode.INTERNAL, "x", "line one\nline two").log_line()
    assert client_error(MemoryError()).message == "out of memory"
