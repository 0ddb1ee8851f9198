"""The README's curl examples, run verbatim against a real lighttpd serving an installed tree.

The examples are the ```sh blocks between ``<!-- cgi-examples:start -->`` and
``<!-- cgi-examples:end -->`` in README.md (CRNNOCR_README names another file). The only change
made to a command is the server address: ``http://localhost:8080`` becomes the test server's.
They run in a temp dir holding ``line.png``, ``receipt.jpg`` and ``scan.pdf`` (three pages),
rendered here, so the expected text is known without any eval data.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.runtime import CHECKOUT
from deploy.servers import Server, installed_tree, missing_models, running_server
from tests.support import cer, render_text, scanned_pdf

README = Path(os.environ.get("CRNNOCR_README") or CHECKOUT / "README.md")
START, END = "<!-- cgi-examples:start -->", "<!-- cgi-examples:end -->"
DOC_BASE = "http://localhost:8080"
LINE = "Invoice 2026: total 42.50 EUR"
RECEIPT = ["CORNER CAFE", "2 x Espresso 5.60", "1 x Croissant 2.10", "TOTAL 7.70"]
CER_MAX = 0.1


def readme_commands() -> list[str]:
    """Shell commands of the examples section; comments dropped, continuation lines joined."""
    text = README.read_text(encoding="utf-8") if README.is_file() else ""
    if START not in text or END not in text:
        return []
    section = text.split(START, 1)[1].split(END, 1)[0]
    commands: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL):
        pending = ""
        for line in block.splitlines():
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            pending += line[:-1] + " " if line.endswith("\\") else line
            if not line.endswith("\\"):
                commands.append(pending)
                pending = ""
    return commands


COMMANDS = readme_commands()


def _simple(text: str) -> str:
    return "".join(text.split()).casefold()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    if not shutil.which("lighttpd") or not shutil.which("curl"):
        pytest.skip("LIGHTTPD OR CURL IS NOT INSTALLED: `make setup` installs them")
    if reason := missing_models():
        pytest.skip(reason)
    with installed_tree() as prefix, running_server("lighttpd", prefix) as srv:
        yield srv


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cgi-examples")
    (path / "line.png").write_bytes(render_text([LINE]))
    (path / "receipt.jpg").write_bytes(render_text(RECEIPT, fmt="JPEG"))
    pages = [render_text(RECEIPT), render_text([LINE]), render_text(RECEIPT)]
    (path / "scan.pdf").write_bytes(scanned_pdf(pages))
    return path


def test_readme_has_cgi_examples() -> None:
    if not COMMANDS:
        pytest.skip(f"NO CGI EXAMPLES IN {README}: the markers {START} / {END} with ```sh blocks are missing")
    assert all(DOC_BASE in command for command in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS or [pytest.param("", marks=pytest.mark.skip(
    reason=f"NO CGI EXAMPLES IN {README} (markers {START} / {END})"))])
def test_readme_example_runs(server: Server, workdir: Path, command: str) -> None:
    run = command.replace(DOC_BASE, server.url.rstrip("/"))
    done = subprocess.run(["bash", "-o", "pipefail", "-c", run], cwd=workdir, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.strip(), f"no output from: {command}"
    expected = LINE if "line.png" in command else "".join(RECEIPT) if "receipt.jpg" in command else None
    if "format=hocr" in command:
        assert out.count("class='ocr_page'") == 3 and "ocrx_word" in out, out[:500]
        return
    if out.startswith("HTTP/"):
        assert out.split()[1].startswith("2"), out
        return
    if out.lstrip().startswith("{"):
        doc = json.loads(out)
        assert doc["ok"] is True, doc
        text = doc.get("text")
    else:
        text = out
    if expected is not None:
        assert text is not None and cer([expected], [text], _simple) <= CER_MAX, text
