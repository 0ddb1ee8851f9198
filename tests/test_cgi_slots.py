"""The pure CGI's cap on concurrent recognitions (issue 11): flock'd slot files the kernel frees."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.servers import Server, call, installed_tree, missing_models, serving
from ocr_core.errors import ErrorCode, OcrError
from ocr_http.slots import recognition_slot, take_slot
from tests.support import render_text

HOLD = "import sys, time; sys.path.insert(0, sys.argv[2]); from ocr_http.slots import take_slot; " \
       "assert take_slot(sys.argv[1], 1) is not None; print('held', flush=True); time.sleep(60)"


def test_slots_run_out_and_come_back(tmp_path: Path) -> None:
    slots = str(tmp_path / "slots")
    held = [take_slot(slots, 2), take_slot(slots, 2)]
    assert None not in held and take_slot(slots, 2) is None
    with pytest.raises(OcrError) as refused, recognition_slot(slots, 2):
        pass
    assert refused.value.code is ErrorCode.BUSY
    os.close(held.pop())
    with recognition_slot(slots, 2):
        assert take_slot(slots, 2) is None
    assert (tmp_path / "slots").stat().st_mode & 0o777 == 0o700


def test_a_killed_holder_frees_its_slot(tmp_path: Path) -> None:
    slots = str(tmp_path / "slots")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, slots, str(Path(__file__).parent.parent)],
                              stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        assert take_slot(slots, 1) is None
    finally:
        holder.kill()
        holder.wait()
    assert take_slot(slots, 1) is not None


def test_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    with pytest.raises(OcrError) as refused:
        take_slot(str(shared), 1)
    assert refused.value.code is ErrorCode.INTERNAL and str(shared) not in refused.value.message


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    if not shutil.which("lighttpd"):
        pytest.skip("LIGHTTPD IS NOT INSTALLED: `make setup` installs it")
    if reason := missing_models():
        pytest.skip(reason)
    with installed_tree() as prefix, serving("lighttpd", "cgi", prefix, env={"CRNNOCR_CGI_SLOTS": "1"}) as s:
        yield s


def test_past_the_cap_a_hit_is_503_busy_at_once(server: Server) -> None:
    png = render_text(["Slot check 42"])
    slot = server.run_dir / "slots" / "slot-0"
    fd = os.open(slot, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        owner = (server.run_dir / "slots").stat()
        os.fchown(fd, owner.st_uid, owner.st_gid)
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a recognition in another CGI process would
        started = time.monotonic()
        reply = call(server, "POST", "mode=line", png, {"Content-Type": "image/png"})
        assert reply.status == 503 and reply.json()["error"]["code"] == "busy"
        assert reply.headers["retry-after"] == "1" and time.monotonic() - started < 5
        assert call(server, "GET").status == 200  # a health check needs no slot
    finally:
        os.close(fd)
    reply = call(server, "POST", "mode=line", png, {"Content-Type": "image/png"})
    assert reply.status == 200 and reply.json()["text"]
    assert "busy" not in server.error_log_text()  # the server working as designed: nothing to log
