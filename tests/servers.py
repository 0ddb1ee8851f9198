"""Real lighttpd and Apache serving an installed crnnocr tree, and what to send them.

For the CGI tests, the upload-page test and the benchmarks.

    from tests.servers import installed_tree, running_server
    with installed_tree() as prefix, running_server("lighttpd", prefix) as server:
        urllib.request.urlopen(server.cgi_url)

Both helpers clean up after themselves: the server is stopped (SIGTERM, then SIGKILL) and the
temporary directories are removed (the shared install when the process exits).
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

# Test data helpers live in tests/support.py; re-exported for the CGI tests and the bench.
from tests.support import EVAL_DIR as EVAL_DIR
from tests.support import FONT as FONT
from tests.support import Sample as Sample
from tests.support import cer as cer
from tests.support import eval_samples as eval_samples
from tests.support import load_score as load_score
from tests.support import png_header_only as png_header_only
from tests.support import render_text as render_text

CHECKOUT = Path(__file__).resolve().parent.parent
ServerKind = Literal["lighttpd", "apache"]
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


def _load_deploytool() -> ModuleType:
    """deploy/deploytool.py is a script, not a package module: load it by path, once."""
    if "crnnocr_deploytool" in sys.modules:
        return sys.modules["crnnocr_deploytool"]
    spec = importlib.util.spec_from_file_location("crnnocr_deploytool", CHECKOUT / "deploy" / "deploytool.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


deploytool = _load_deploytool()


def _others_can_enter(path: Path) -> bool:
    return all(p.stat().st_mode & 0o001 for p in (path, *path.parents))


def _world_traversable_tempdir(prefix: str) -> Path:
    """A temp dir the server's user can enter: mkdtemp makes 0700 dirs, and TMPDIR may point
    into a home directory that www-data cannot pass through (then /tmp is used instead)."""
    base = Path(tempfile.gettempdir())
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base if _others_can_enter(base) else "/tmp"))
    path.chmod(0o755)
    return path


def missing_models() -> str | None:
    """Why the checkout cannot serve OCR (its default model pack is not installed), or None."""
    sys.path.insert(0, str(CHECKOUT))
    from ocr_core.config import EngineConfig
    from ocr_core.packs import installed_packs

    config = EngineConfig.from_env()
    if config.pack in installed_packs(config.model_dir):
        return None
    return f"MODEL PACK {config.pack} IS NOT INSTALLED in {config.model_dir}: run `make models`"


_shared_prefix: Path | None = None


def _install_into_temp() -> Path:
    base = _world_traversable_tempdir("crnnocr-deploy-")
    try:
        deploytool.install(base / "crnnocr")
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    return base / "crnnocr"


@contextlib.contextmanager
def installed_tree(*, fresh: bool = False) -> Iterator[Path]:
    """``make deploy`` into a temp dir; yields the install prefix.

    An install copies ~500 MB (venv and models), so by default the process installs once, on
    first use, and removes the tree when it exits; ``fresh=True`` gives a private tree, removed
    when the block ends.
    """
    global _shared_prefix
    if fresh:
        prefix = _install_into_temp()
        try:
            yield prefix
        finally:
            shutil.rmtree(prefix.parent, ignore_errors=True)
        return
    if _shared_prefix is None:
        _shared_prefix = _install_into_temp()
        atexit.register(shutil.rmtree, _shared_prefix.parent, ignore_errors=True)
    yield _shared_prefix


@dataclass(frozen=True)
class Server:
    kind: str
    url: str  # base URL, ending in "/"
    port: int
    run_dir: Path
    error_log: Path
    tmp_dir: Path  # the CGI's TMPDIR
    pid: int

    @property
    def cgi_url(self) -> str:
        return self.url + "cgi-bin/ocr.cgi"

    def error_log_text(self) -> str:
        return self.error_log.read_text(encoding="utf-8", errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def running_server(kind: ServerKind, prefix: Path, *, env: Mapping[str, str] | None = None,
                   port: int | None = None) -> Iterator[Server]:
    """Run ``kind`` with the shipped config on 127.0.0.1, serving the tree installed at ``prefix``.

    ``env`` adds to the CGI's environment (e.g. ``{"CRNNOCR_TIMEOUT_S": "0.05"}``). A free port is
    picked when none is given; a port taken between picking and binding is retried.
    """
    run_dir = _world_traversable_tempdir(f"crnnocr-{kind}-")
    try:
        for attempt in range(3):
            site = deploytool.SiteConfig(kind=kind, prefix=Path(prefix), port=port or free_port(),
                                         run_dir=run_dir, env=dict(env or {}))
            _, argv = site.prepare()
            # lighttpd in the foreground hands its stderr to CGI scripts: send it to the error log
            # too, so that one file has everything the server and the CGI said.
            with site.log_path.open("ab") as log:
                process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            url = f"http://127.0.0.1:{site.port}/"
            if _wait_ready(url, process, site.log_path):
                break
            _stop(process)
            if port is not None or attempt == 2:
                raise RuntimeError(f"{kind} did not start on port {site.port}:\n{site.log_path.read_text()}")
        try:
            yield Server(kind=kind, url=url, port=site.port, run_dir=run_dir, error_log=site.log_path,
                         tmp_dir=run_dir / "tmp", pid=process.pid)
        finally:
            _stop(process)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def servers_available() -> list[str]:
    """Which of the two servers are installed here."""
    found = {"lighttpd": shutil.which("lighttpd") or os.path.exists("/usr/sbin/lighttpd"),
             "apache": shutil.which("apache2") or os.path.exists("/usr/sbin/apache2")}
    return [kind for kind, ok in found.items() if ok]


# --- A small HTTP client over http.client (chunked bodies, any method, raw headers) ------------

@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(server: Server, method: str, query: str = "", body: bytes | Iterable[bytes] | None = None,
         headers: Mapping[str, str] | None = None, *, path: str = "cgi-bin/ocr.cgi",
         chunked: bool = False, timeout: float = 120) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        target = "/" + path + (f"?{query}" if query else "")
        conn.request(method, target, body=body, headers=dict(headers or {}), encode_chunked=chunked)
        reply = conn.getresponse()
        data = reply.read()
        return Reply(reply.status, {k.lower(): v for k, v in reply.getheaders()}, data)
    finally:
        conn.close()


def multipart(field: str, data: bytes, filename: str = "upload.png",
              content_type: str = "image/png") -> tuple[bytes, str]:
    """A multipart/form-data body with one file part; returns (body, Content-Type header)."""
    boundary = "crnnocr-test-boundary-7f3a"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"
