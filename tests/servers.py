"""Real lighttpd and Apache serving an installed crnnocr tree, for tests and benchmarks.

    from tests.servers import installed_tree, running_server
    with installed_tree() as prefix, running_server("lighttpd", prefix) as server:
        urllib.request.urlopen(server.cgi_url)

Both helpers clean up after themselves: the server is stopped (SIGTERM, then SIGKILL) and the
temporary directories are removed.
"""

from __future__ import annotations

import contextlib
import importlib.util
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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal

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


def _world_traversable_tempdir(prefix: str) -> Path:
    """A temp dir the server's user can enter (mkdtemp makes them 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


@contextlib.contextmanager
def installed_tree() -> Iterator[Path]:
    """``make deploy`` into a fresh temp dir; yields the install prefix."""
    base = _world_traversable_tempdir("crnnocr-deploy-")
    try:
        prefix = base / "crnnocr"
        deploytool.install(prefix)
        yield prefix
    finally:
        shutil.rmtree(base, ignore_errors=True)


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
