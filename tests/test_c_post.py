"""ocr_post (c_client/ocr_post.c), the libc-only HTTP client, against the real lighttpd CGI (issue 4)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.servers import Server, free_port, installed_tree, missing_models, running_server
from ocr_core import Engine, EngineConfig, RecognizeOptions
from tests.support import eval_file

ROOT = Path(__file__).resolve().parent.parent
LINE_IMAGE = "sroie_lines_en/images/sroie_040_l1.png"
PAGE_IMAGE = "en_screenshots/images/easydict_ocr-en-text-5.png"
C99 = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    """Scratch space removed after the module (pytest's work would keep it)."""
    with tempfile.TemporaryDirectory(prefix="crnnocr-post-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="module")
def ocr_post(work: Path) -> Path:
    program = work / "ocr_post"
    subprocess.run(
        ["cc", *C99, "-O1", str(ROOT / "c_client" / "ocr_post.c"), "-o", str(program)],
        check=True,
        capture_output=True,
    )
    return program


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    if shutil.which("lighttpd") is None:
        pytest.skip("lighttpd missing (Debian package lighttpd)")
    if reason := missing_models():
        pytest.skip(reason)
    with installed_tree() as prefix, running_server("lighttpd", prefix) as running:
        yield running


@pytest.fixture(scope="module")
def engine() -> Engine:
    """The engine a CGI hit runs: a one-shot process, so `auto` gives ONNX Runtime."""
    if reason := missing_models():
        pytest.skip(reason)
    return Engine.load(EngineConfig(backend="onnxruntime"))



def post(program: Path, *args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(program), *map(str, args)], capture_output=True, timeout=timeout, check=False)


def test_links_nothing_but_libc(ocr_post: Path) -> None:
    dynamic = subprocess.run(
        ["readelf", "-d", str(ocr_post)], capture_output=True, text=True, check=True
    ).stdout
    needed = {line.split("[")[1].rstrip("]") for line in dynamic.splitlines() if "(NEEDED)" in line}
    assert needed == {"libc.so.6"}


@pytest.mark.parametrize("form", [[], ["--multipart"]], ids=["raw", "multipart"])
def test_same_text_as_the_python_engine(
    ocr_post: Path, server: Server, engine: Engine, form: list[str]
) -> None:
    line = eval_file(LINE_IMAGE)
    reply = post(ocr_post, *form, f"{server.cgi_url}?format=text&mode=line", line)
    assert reply.returncode == 0, reply.stderr
    want = engine.recognize(line.read_bytes(), RecognizeOptions(mode="line")).text
    assert reply.stdout.decode().rstrip("\n") == want

    page = eval_file(PAGE_IMAGE)
    reply = post(ocr_post, *form, "--type", "image/png", server.cgi_url, page)
    assert reply.returncode == 0, reply.stderr
    assert json.loads(reply.stdout)["text"] == engine.recognize(page.read_bytes()).text


def test_http_errors_exit_22_and_still_print_the_body(ocr_post: Path, server: Server, work: Path) -> None:
    junk = work / "junk.bin"
    junk.write_bytes(os.urandom(2048))
    reply = post(ocr_post, server.cgi_url, junk)
    assert reply.returncode == 22
    assert json.loads(reply.stdout)["error"]["code"] == "unsupported_media_type"
    assert b"415" in reply.stderr


def test_connection_refused_exits_7(ocr_post: Path, work: Path) -> None:
    image = work / "x.png"
    image.write_bytes(b"\x89PNG")
    reply = post(ocr_post, "--connect-timeout", "2", f"http://127.0.0.1:{free_port()}/cgi-bin/ocr.cgi", image)
    assert reply.returncode == 7, reply.stderr


def test_a_silent_server_times_out_with_28(ocr_post: Path, work: Path) -> None:
    image = work / "x.png"
    image.write_bytes(b"\x89PNG")
    with socket.socket() as listener:  # accepts (via the backlog) and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/x"
        reply = post(ocr_post, "--timeout", "0.5", url, image, timeout=30)
    assert reply.returncode == 28, reply.stderr
    assert b"timed out" in reply.stderr


def test_usage_and_unreadable_file(ocr_post: Path, work: Path) -> None:
    assert post(ocr_post).returncode == 2
    assert post(ocr_post, "https://127.0.0.1/x", work).returncode == 2
    assert post(ocr_post, "http://127.0.0.1:9/x", work / "missing.png").returncode == 26
