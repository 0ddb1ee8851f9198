"""Real lighttpd, Apache and worker pools serving an installed crnnocr tree, and what to send them.

For ``make serve``, the tests and the benchmark:

    from deploy.servers import installed_tree, serving, call
    with installed_tree() as prefix, serving("apache", "fastcgi", prefix) as server:
        call(server, "GET")

``serving`` runs one of the three ways in (``PATHS``): ``cgi`` (``ocr.cgi`` does the work itself:
no pool answers on its socket), ``cgi-pool`` (a pool runs; ``ocr.cgi`` forwards to it) and
``fastcgi`` (the server speaks FastCGI to the pool: lighttpd spawns it, Apache proxies to one
started here as the systemd unit would). More than one machine: ``tcp_pools`` starts pools that
listen on TCP (one per HOST:PORT, loopback addresses standing for hosts) and ``serving_pools``
puts a server in front of them (mode ``pools``). Everything is cleaned up afterwards: servers and pools
are stopped (SIGTERM, then SIGKILL) by PID, temporary directories removed (the shared install
when the process exits).
"""

from __future__ import annotations

import atexit
import contextlib
import grp
import http.client
import json
import os
import pwd
import shlex
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
from typing import Any, Literal

from .runtime import CHECKOUT, install_web
from .sites import STDERR, Mode, PoolConfig, SiteConfig, render_pool_env

ServerKind = Literal["lighttpd", "apache"]
Way = Literal["cgi", "cgi-pool", "fastcgi"]
KINDS: tuple[ServerKind, ...] = ("lighttpd", "apache")
PATHS: tuple[Way, ...] = ("cgi", "cgi-pool", "fastcgi")
START_TIMEOUT_S = 15.0
POOL_START_TIMEOUT_S = 90.0  # workers load the engine: seconds each on a busy 2-core machine
STOP_TIMEOUT_S = 40.0


def _others_can_enter(path: Path) -> bool:
    return all(p.stat().st_mode & 0o001 for p in (path, *path.parents))


def world_traversable_tempdir(prefix: str) -> Path:
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


def servers_available() -> list[ServerKind]:
    """Which of the two servers are installed here."""
    found = {"lighttpd": shutil.which("lighttpd") or os.path.exists("/usr/sbin/lighttpd"),
             "apache": shutil.which("apache2") or os.path.exists("/usr/sbin/apache2")}
    return [kind for kind in KINDS if found[kind]]


def children(pid: int) -> list[int]:
    """The live children of ``pid`` (of any of its threads); none once it is gone."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(child) for child in (task / "children").read_text().split()]
    return found


def process_tree(roots: Iterable[int]) -> list[int]:
    """The roots and all their descendants alive now (what a server or a pool is running)."""
    found: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found and Path(f"/proc/{pid}").exists():
            found.add(pid)
            todo.extend(children(pid))
    return sorted(found)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


_shared_prefix: Path | None = None


def _install_into_temp() -> Path:
    base = world_traversable_tempdir("crnnocr-deploy-")
    try:
        install_web(base / "crnnocr")
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


def _stop(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- the pool ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pool:
    run_dir: Path  # status, metrics, result cache
    socket: Path
    log: Path  # its stderr: its own file, or the server's error log when lighttpd spawned it

    def status(self) -> Any:
        """The supervisor's status board (``ocr_http.pool_status.PoolSnapshot``)."""
        sys.path.insert(0, str(CHECKOUT))
        from ocr_http.pool_status import StatusBoard

        board = StatusBoard.open(self.run_dir)
        try:
            return board.snapshot()
        finally:
            board.close()

    @property
    def pid(self) -> int:
        """The supervisor's."""
        return int(self.status().counters["pid"])

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = POOL_START_TIMEOUT_S, process: subprocess.Popen[bytes] | None = None
                   ) -> None:
        """Until every worker the pool wants is loaded and serving, and none is left over."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"the pool exited ({process.returncode}):\n{self.log_text()[-3000:]}")
            with contextlib.suppress(OSError, ValueError):
                snap = self.status()
                target = snap.counters["workers_target"]
                if target and snap.counters["alive"] == target == len(snap.workers):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"the pool in {self.run_dir} did not get ready in {timeout:g} s:\n"
                           f"{self.log_text()[-3000:]}")


def _unit_command(unit: str) -> tuple[list[str], str, str]:
    """ExecStart, User and Group of a rendered unit (no systemd here: run as it would)."""
    lines = [line for line in unit.splitlines() if "=" in line and not line.startswith("#")]
    values = dict(line.split("=", 1) for line in lines)
    return shlex.split(values["ExecStart"]), values["User"], values["Group"]


@contextlib.contextmanager
def running_pool(prefix: Path, site: SiteConfig, *, tcp: str | None = None) -> Iterator[Pool]:
    """The pool of ``site`` (its socket, its application environment) started in the foreground
    with the command, user and group of the shipped systemd unit, ready when this yields;
    listening on ``tcp`` (HOST:PORT) too when given."""
    run_dir = site.pool_dir
    env_file = run_dir / "pool.env"
    env_file.write_text(render_pool_env(site.app_env), encoding="utf-8")
    unit = PoolConfig(prefix, socket=site.socket, run_dir=run_dir, env_file=env_file, tcp=tcp).render_unit()
    argv, user, group = _unit_command(unit)
    log = STDERR if site.log_path == STDERR else run_dir / "pool.log"
    pool = Pool(run_dir=run_dir, socket=site.socket, log=log)
    options: dict[str, Any] = {"env": {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}}
    if os.geteuid() == 0:
        options |= {"user": pwd.getpwnam(user).pw_uid, "group": grp.getgrnam(group).gr_gid,
                    "extra_groups": []}
    with contextlib.ExitStack() as files:
        if log != STDERR:
            out = files.enter_context(log.open("ab"))
            options |= {"stdout": out, "stderr": out}
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **options)
    try:
        pool.wait_ready(process=process)
        yield pool
    finally:
        _stop(process)


# --- the servers -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Server:
    kind: str
    path: str  # which way in: one of PATHS
    url: str  # base URL, ending in "/"
    port: int
    run_dir: Path
    error_log: Path
    tmp_dir: Path  # the application's TMPDIR
    pid: int
    pool: Pool | None = None

    @property
    def cgi_url(self) -> str:
        return self.url + "cgi-bin/ocr.cgi"

    def error_log_text(self) -> str:
        return self.error_log.read_text(encoding="utf-8", errors="replace")


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> bool:
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


@contextlib.contextmanager
def running_server(kind: ServerKind, prefix: Path, *, env: Mapping[str, str] | None = None,
                   port: int | None = None, mode: Mode = "cgi", run_dir: Path | None = None,
                   error_log: Path | None = None, pool_hosts: tuple[str, ...] = ()) -> Iterator[Server]:
    """Run ``kind`` with the shipped config on 127.0.0.1, serving the tree installed at ``prefix``.

    ``env`` adds to the application's environment (e.g. ``{"CRNNOCR_TIMEOUT_S": "0.05"}``). A free
    port is picked when none is given; a port taken between picking and binding is retried. A
    given ``run_dir`` is used and left in place; otherwise a temporary one is made and removed.
    """
    own_dir = run_dir is None
    run_dir = run_dir or world_traversable_tempdir(f"crnnocr-{kind}-")
    try:
        for attempt in range(3):
            site = SiteConfig(kind=kind, prefix=Path(prefix), port=port or free_port(), run_dir=run_dir,
                              mode=mode, env=dict(env or {}), error_log=error_log, pool_hosts=pool_hosts)
            _, argv = site.prepare()
            # lighttpd in the foreground hands its stderr to CGI scripts and the pool it spawns:
            # send it to the error log too, so that one file has everything.
            if site.log_path == STDERR:
                process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
            else:
                with site.log_path.open("ab") as log:
                    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            url = f"http://127.0.0.1:{site.port}/"
            if _wait_ready(url, process):
                break
            _stop(process)
            if port is not None or attempt == 2:
                log_text = site.log_path.read_text() if site.log_path != STDERR else ""
                raise RuntimeError(f"{kind} did not start on port {site.port}:\n{log_text}")
        try:
            yield Server(kind=kind, path="cgi", url=url, port=site.port, run_dir=run_dir,
                         error_log=site.log_path, tmp_dir=run_dir / "tmp", pid=process.pid)
        finally:
            _stop(process)
    finally:
        if own_dir:
            shutil.rmtree(run_dir, ignore_errors=True)


@contextlib.contextmanager
def serving(kind: ServerKind, path: Way, prefix: Path, *, env: Mapping[str, str] | None = None,
            port: int | None = None, error_log: Path | None = None) -> Iterator[Server]:
    """``kind`` answering ``/cgi-bin/ocr.cgi`` by way of ``path`` (see the module's docstring)."""
    if path not in PATHS:
        raise ValueError(f"path must be one of {', '.join(PATHS)}, not {path!r}")
    run_dir = world_traversable_tempdir(f"crnnocr-{kind}-{path}-")
    try:
        mode: Mode = "fastcgi" if path == "fastcgi" else "cgi"
        # The pool's side of the site: the same run directory and application environment.
        site = SiteConfig(kind=kind, prefix=Path(prefix), port=0, run_dir=run_dir, mode=mode,
                          env=dict(env or {}), error_log=error_log)
        site.render()  # a bad setting is refused in one line before anything starts
        site.make_dirs()
        with contextlib.ExitStack() as stack:
            pool = None
            if path == "cgi-pool" or (path == "fastcgi" and kind == "apache"):
                pool = stack.enter_context(running_pool(Path(prefix), site))
            server = stack.enter_context(running_server(kind, prefix, env=env, port=port, mode=mode,
                                                        run_dir=run_dir, error_log=error_log))
            if pool is None and path == "fastcgi":  # lighttpd spawned it; its stderr is lighttpd's
                pool = Pool(run_dir=site.pool_dir, socket=site.socket, log=server.error_log)
                pool.wait_ready()
            yield Server(**{**server.__dict__, "path": path, "pool": pool})
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


@contextlib.contextmanager
def tcp_pools(prefix: Path, hosts: Iterable[str], *, env: Mapping[str, str] | None = None
              ) -> Iterator[tuple[Pool, ...]]:
    """One pool per HOST:PORT of ``hosts``, as the unit on each host would start it (``--tcp``),
    each with a run directory of its own; loopback addresses (127.0.0.1, 127.0.0.2) stand for hosts."""
    run_dir = world_traversable_tempdir("crnnocr-hosts-")
    try:
        with contextlib.ExitStack() as stack:
            pools = []
            for number, address in enumerate(hosts):
                site = SiteConfig(kind="lighttpd", prefix=Path(prefix), port=0, mode="fastcgi",
                                  run_dir=run_dir / f"host{number}", env=dict(env or {}))
                site.make_dirs()
                pools.append(stack.enter_context(running_pool(Path(prefix), site, tcp=address)))
            yield tuple(pools)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


@contextlib.contextmanager
def serving_pools(kind: ServerKind, prefix: Path, hosts: Iterable[str], *,
                  env: Mapping[str, str] | None = None) -> Iterator[Server]:
    """``kind`` in mode ``pools``: ``/cgi-bin/ocr.cgi`` spread over the pools at ``hosts``
    (HOST:PORT each; started elsewhere, e.g. by ``tcp_pools``)."""
    with running_server(kind, prefix, env=env, mode="pools", pool_hosts=tuple(hosts)) as server:
        yield Server(**{**server.__dict__, "path": "pools"})


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

