"""Server configurations, rendered from the templates in this directory.

``SiteConfig`` describes one site: which server (lighttpd or Apache), how it reaches the OCR
application (``cgi``: ``cgi-bin/ocr.cgi``, which forwards to a pool when one answers on the
site's pool socket; ``fastcgi``: the server talks FastCGI to the pool itself: lighttpd spawns it
with ``bin-path``, Apache proxies to one started by the systemd unit), where it listens and where
its run-time files go; ``pools``: the server spreads requests over pools on other hosts, each
listening on TCP, started there by the unit). ``PoolConfig`` renders that unit. Templates use
``@NAME@`` placeholders and ``#@if MODE [MODE...]`` … ``#@end`` blocks kept only in those modes.
"""

from __future__ import annotations

import grp
import json
import math
import os
import pwd
import re
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

DEPLOY_DIR = Path(__file__).resolve().parent
KINDS = ("lighttpd", "apache")
MODES = ("cgi", "fastcgi", "pools")
Mode = Literal["cgi", "fastcgi", "pools"]
# The CGI's defaults; overrides come from CRNNOCR_* variables and --env.
CGI_TIMEOUT_S = 20
SERVER_SLACK_S = 10
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")
BLOCK = re.compile(r"^#@if ([\w ]+)\n(.*?)^#@end\n", re.DOTALL | re.MULTILINE)
# A pool another host runs: HOST:PORT, HOST a name, an IPv4 address or a bracketed IPv6 one.
POOL_HOST = re.compile(r"(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>\d{1,5})")
# pools: a pool that refuses connections is left out this long (seconds) before it is tried again.
POOL_RETRY_S = 5
STDERR = Path("/dev/stderr")
POOL_DIR = "pool"
# Where the installed tree keeps the servers' own error bodies, and how lighttpd names them
# (server.errorfile-prefix + status + ".html").
ERROR_PAGES_DIR = "errors"
ERROR_PAGE_STEM = "crnnocr-error-"

# What the servers answer themselves, before or instead of the application: the status, the
# ErrorCode (its name in ocr_core/errors.py) and the message. Where no application status is
# the same, the code is the nearest one (README, "Requests": the table says which).
SERVER_ERRORS: dict[int, tuple[str, str]] = {
    400: ("BAD_REQUEST", "the request is malformed"),
    405: ("METHOD_NOT_ALLOWED", "the HTTP method is not allowed"),
    408: ("TIMEOUT", "the request did not arrive in time"),
    411: ("LENGTH_REQUIRED", "the request has no Content-Length"),
    413: ("PAYLOAD_TOO_LARGE", "the request is larger than the server's limit"),
    414: ("BAD_REQUEST", "the URL is too long"),
    417: ("BAD_REQUEST", "the Expect header is not supported"),
    431: ("BAD_REQUEST", "the request's headers are too large"),
    500: ("INTERNAL", "an internal error occurred"),
    501: ("METHOD_NOT_ALLOWED", "the HTTP method is not implemented"),
    502: ("INTERNAL", "the OCR service gave no valid answer"),
    503: ("BUSY", "the OCR service is not available; retry later"),
    504: ("TIMEOUT", "the OCR service did not answer in time"),
}


class ConfigError(SystemExit):
    """A value the configuration cannot be rendered with: one line, no traceback."""


def server_user() -> tuple[str, str]:
    """The user and group the server drops to: www-data when started as root, else ourselves."""
    if os.geteuid() == 0:
        return "www-data", "www-data"
    return pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _request_limit(env: Mapping[str, str]) -> int:
    """Server-side body limit in bytes: the application's largest body (base64 JSON) plus 2 MiB."""
    raw = env.get("CRNNOCR_MAX_BYTES", "").strip() or str(DEFAULT_MAX_BYTES)
    if not (raw.isascii() and raw.isdigit()):
        raise ConfigError(f"CRNNOCR_MAX_BYTES={raw!r} is not a byte count")
    return 4 * math.ceil(int(raw) / 3) + 2 * 1024 * 1024


def _server_timeout(env: Mapping[str, str]) -> int:
    raw = env.get("CRNNOCR_TIMEOUT_S", "").strip()
    try:
        seconds = float(raw) if raw else CGI_TIMEOUT_S
    except ValueError:
        raise ConfigError(f"CRNNOCR_TIMEOUT_S={raw!r} is not a number of seconds") from None
    if not 0 <= seconds < math.inf:
        raise ConfigError(f"CRNNOCR_TIMEOUT_S={raw!r} must be a finite number of seconds, 0 (no limit) "
                          "or more")
    return math.ceil(seconds or CGI_TIMEOUT_S) + SERVER_SLACK_S


def server_error_bodies() -> dict[int, str]:
    """The JSON body of each status in ``SERVER_ERRORS``, with the code from the one ErrorCode table."""
    if str(DEPLOY_DIR.parent) not in sys.path:
        sys.path.insert(0, str(DEPLOY_DIR.parent))
    from ocr_core.errors import ErrorCode

    return {status: json.dumps({"ok": False, "error": {"code": ErrorCode[name].value, "message": message}})
            for status, (name, message) in SERVER_ERRORS.items()}


def write_error_pages(directory: Path) -> None:
    """lighttpd's ``server.errorfile-prefix`` files, one per status."""
    directory.mkdir(parents=True, exist_ok=True)
    for status, body in server_error_bodies().items():
        (directory / f"{ERROR_PAGE_STEM}{status}.html").write_text(body + "\n", encoding="utf-8")


def _apache_error_documents() -> str:
    # A quoted ErrorDocument is sent as it is (with Apache's text/html type: apache.conf sets it).
    bodies = server_error_bodies()
    return "\n".join(f"ErrorDocument {status} {_quote(body)}" for status, body in bodies.items())


def render_template(name: str, values: Mapping[str, str], mode: str) -> str:
    template = (DEPLOY_DIR / name).read_text(encoding="utf-8")
    template = BLOCK.sub(lambda m: m.group(2) if mode in m.group(1).split() else "", template)
    missing = sorted(set(PLACEHOLDER.findall(template)) - set(values))
    if missing:
        raise ConfigError(f"{name} has placeholders with no value: {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


@dataclass(frozen=True)
class SiteConfig:
    """Everything a rendered server config depends on."""

    kind: str
    prefix: Path
    port: int
    run_dir: Path
    mode: Mode = "cgi"
    bind: str = "127.0.0.1"
    env: Mapping[str, str] = field(default_factory=dict)
    error_log: Path | None = None  # None: RUN_DIR/KIND-error.log; STDERR: the server's stderr
    pool_socket: Path | None = None  # None: RUN_DIR/pool/pool.sock
    pool_hosts: tuple[str, ...] = ()  # mode pools: HOST:PORT of each pool

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"server kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if (self.mode == "pools") != bool(self.pool_hosts):
            raise ConfigError("pool hosts (HOST:PORT) go with mode pools, and mode pools needs at least one")
        for address in self.pool_hosts:
            match = POOL_HOST.fullmatch(address)
            if match is None or not 0 < int(match["port"]) < 65536:
                raise ConfigError(f"pool host {address!r}: expected HOST:PORT")

    @property
    def pool_dir(self) -> Path:
        return self.run_dir / POOL_DIR

    @property
    def socket(self) -> Path:
        return self.pool_socket or self.pool_dir / "pool.sock"

    @property
    def app_env(self) -> dict[str, str]:
        """The application's environment (CGI and pool alike): the defaults, then ``env``."""
        return {
            "CRNNOCR_THREADS": "1",
            "CRNNOCR_TIMEOUT_S": str(CGI_TIMEOUT_S),
            "CRNNOCR_POOL_SOCKET": str(self.socket),
            "CRNNOCR_CGI_SLOT_DIR": str(self.run_dir / "slots"),
            "TMPDIR": str(self.run_dir / "tmp"),
            **self.env,
        }

    @property
    def log_path(self) -> Path:
        return self.error_log or self.run_dir / f"{self.kind}-error.log"

    def render(self) -> str:
        env = self.app_env
        log = self.log_path
        user, group = server_user()
        limit = _request_limit(env)
        values = {
            "BIND": self.bind,
            "PORT": str(self.port),
            "PREFIX": str(self.prefix),
            "RUN_DIR": str(self.run_dir),
            "POOL_DIR": str(self.pool_dir),
            "POOL_SOCKET": str(self.socket),
            "ERROR_LOG": str(log),
            "LIGHTTPD_ERRORLOG": "" if log == STDERR else f"server.errorlog = {_quote(str(log))}",
            "USER": user,
            "GROUP": group,
            "MAX_REQUEST_BYTES": str(limit),
            "MAX_REQUEST_KB": str(math.ceil(limit / 1024)),
            "SERVER_TIMEOUT_S": str(_server_timeout(env)),
            "LIGHTTPD_ENV": "\n".join(f"    {_quote(k)} => {_quote(v)}," for k, v in sorted(env.items())),
            "ERROR_PAGES": str(self.prefix / ERROR_PAGES_DIR),
            "ERROR_PAGE_STEM": ERROR_PAGE_STEM,
            "LIGHTTPD_ERROR_TYPES": "\n".join(f'  "{ERROR_PAGE_STEM}{status}.html" => "application/json; '
                                               'charset=utf-8",' for status in SERVER_ERRORS),
            "APACHE_ERROR_DOCUMENTS": _apache_error_documents(),
            "APACHE_ERROR_STATUSES": "|".join(str(s) for s in SERVER_ERRORS),
            "APACHE_ENV": "\n".join(f"    SetEnv {k} {_quote(v)}" for k, v in sorted(env.items())),
            "POOL_RETRY_S": str(POOL_RETRY_S),
            "LIGHTTPD_POOL_HOSTS": "\n".join(
                f'    ("host" => {_quote(m["host"].strip("[]"))}, "port" => {int(m["port"])}, '
                f'"check-local" => "disable", "disable-time" => {POOL_RETRY_S}, '
                f'"tcp-fin-propagate" => "enable", "connect-timeout" => 5, '
                f'"read-timeout" => {_server_timeout(env)}, "write-timeout" => {_server_timeout(env)}),'
                for m in map(POOL_HOST.fullmatch, self.pool_hosts) if m),
            "APACHE_POOL_MEMBERS": "\n".join(
                f'    BalancerMember "fcgi://{address}" retry={POOL_RETRY_S} connectiontimeout=5 '
                f'timeout={_server_timeout(env)}' for address in self.pool_hosts),
        }
        return render_template(f"{self.kind}.conf", values, self.mode)

    def make_dirs(self) -> None:
        """The run directory.

        ``tmp`` (the application's TMPDIR), ``upload`` (lighttpd's body buffer), ``slots`` (the
        CGI's concurrency slots) and ``pool`` (the pool's socket, status, metrics and cache)
        belong to the server's user; the error log is created up front so that it is writable
        after the privilege drop.
        """
        user, group = server_user()
        uid, gid = pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.chmod(0o755)
        for sub, mode in (("tmp", 0o700), ("upload", 0o700), ("slots", 0o700), (POOL_DIR, 0o755)):
            (self.run_dir / sub).mkdir(exist_ok=True)
            os.chown(self.run_dir / sub, uid, gid)
            (self.run_dir / sub).chmod(mode)
        if self.log_path != STDERR:
            self.log_path.touch()
            os.chown(self.log_path, uid, gid)

    def prepare(self) -> tuple[Path, list[str]]:
        """Write the run directory and the config; return the config path and the server argv."""
        self.make_dirs()
        config = self.run_dir / f"{self.kind}.conf"
        config.write_text(self.render(), encoding="utf-8")
        if self.kind == "lighttpd":
            argv = [shutil.which("lighttpd") or "/usr/sbin/lighttpd", "-D", "-f", str(config)]
        else:
            argv = [shutil.which("apache2") or "/usr/sbin/apache2", "-f", str(config), "-DFOREGROUND"]
        return config, argv


@dataclass(frozen=True)
class PoolConfig:
    """The systemd unit of a pool serving the tree at ``prefix``."""

    prefix: Path
    socket: Path = Path("/run/crnnocr/pool.sock")
    run_dir: Path = Path("/run/crnnocr")
    env_file: Path | None = None  # None: PREFIX/etc/pool.env
    tcp: str | None = None  # HOST:PORT to listen on too, for web servers on other hosts

    @property
    def environment_file(self) -> Path:
        return self.env_file or self.prefix / "etc" / "pool.env"

    def render_unit(self) -> str:
        user, group = server_user()
        runtime = self.run_dir.relative_to("/run") if self.run_dir.is_relative_to("/run") else None
        values = {
            "PREFIX": str(self.prefix),
            "POOL_SOCKET": str(self.socket),
            "POOL_DIR": str(self.run_dir),
            "ENV_FILE": str(self.environment_file),
            "TCP": f" --tcp {self.tcp}" if self.tcp else "",
            "USER": user,
            "GROUP": group,
            "RUNTIME_DIRECTORY": f"RuntimeDirectory={runtime}" if runtime else f"# {self.run_dir} is made by "
                                 "whoever starts the unit",
        }
        return render_template("crnnocr-pool.service", values, "unit")


def render_pool_env(env: Mapping[str, str]) -> str:
    """An environment file for the pool: the given values, then the settings it reads, commented."""
    lines = [f"{k}={v}" for k, v in sorted(env.items())]
    return (DEPLOY_DIR / "pool.env").read_text(encoding="utf-8") + "\n".join(lines) + ("\n" if lines else "")
