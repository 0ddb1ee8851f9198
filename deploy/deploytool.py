#!/usr/bin/env python3
"""Install what the web server runs, render the server configs, run a server in the foreground.

    deploytool.py install --prefix /opt/crnnocr [--destdir STAGING]
    deploytool.py render lighttpd|apache --prefix P --port N --run-dir R [--env KEY=VALUE ...]
    deploytool.py serve  lighttpd|apache --prefix P --port N --run-dir R [--env KEY=VALUE ...]

The installed tree mirrors the checkout, so the CGI finds ``ocr_core``, ``ocr_http`` and
``models/`` next to its own ``cgi-bin/``; the only path baked in is the shebang of
``cgi-bin/ocr.cgi``, which names the tree's own copy of the venv. A checkout may sit where the
server's user cannot enter (a clone under /root): the install is what the server reads, and its
files are world-readable, like any package's.

Stdlib only: ``tests/servers.py`` and the benchmarks import this file.
"""

from __future__ import annotations

import argparse
import compileall
import grp
import math
import os
import pwd
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
DEPLOY_DIR = CHECKOUT / "deploy"
# The installed tree: code and data the CGI reads, in the checkout's layout.
CODE_DIRS = ("ocr_core", "ocr_http", "www")
KINDS = ("lighttpd", "apache")
CGI_NAME = "ocr.cgi"
# The CGI's defaults; `serve` and `render` take overrides from CRNNOCR_* variables and --env.
CGI_TIMEOUT_S = 20
SERVER_SLACK_S = 10
PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")
STDERR = Path("/dev/stderr")


def _ignore_noise(_dir: str, names: list[str]) -> set[str]:
    return {n for n in names if n == "__pycache__" or n.startswith(".") or n.endswith(".pyc")}


def _copy_venv(venv: Path, target: Path) -> None:
    """A copy of the venv that runs from its new place.

    A venv's ``bin/python`` is a symlink to the base interpreter and ``pyvenv.cfg`` names only
    that interpreter's directory (``home = /usr/bin``), so the copy's ``bin/python`` finds the
    copy's own site-packages. Console scripts are not copied: their shebangs name the old place.
    """
    target.mkdir(parents=True)
    shutil.copy2(venv / "pyvenv.cfg", target / "pyvenv.cfg")
    (target / "bin").mkdir()
    for entry in (venv / "bin").iterdir():
        if entry.name.startswith("python"):
            os.symlink(os.readlink(entry), target / "bin" / entry.name)
    for libdir in sorted((venv / "lib").glob("python3*")):
        shutil.copytree(libdir, target / "lib" / libdir.name, symlinks=True)
    if (venv / "lib64").is_symlink():
        os.symlink(os.readlink(venv / "lib64"), target / "lib64")


def _install_cgi(source: Path, target: Path, python: Path) -> None:
    """The CGI script with its shebang pointing at the installed venv (``-I``: ignore PYTHON*)."""
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    if not lines or not lines[0].startswith("#!"):
        raise SystemExit(f"{source} has no shebang line to rewrite")
    target.write_text(f"#!{python} -I\n" + "".join(lines[1:]), encoding="utf-8")
    target.chmod(0o755)


# Run by the installed tree's own Python, so the cache matches the ONNX Runtime the CGI will use.
_OPTIMIZE = """
import sys
from pathlib import Path
root = Path(sys.argv[1])
sys.path.insert(0, str(root))
from ocr_core.packs import installed_packs, pack_spec
from ocr_core.backends import build_caches
for name in installed_packs(root / "models"):
    build_caches(root / "models", pack_spec(root / "models", name))
"""


def _ensure_optimized_models(root: Path) -> None:
    """Pre-optimised graphs for every installed pack: the server's user cannot write them later,
    and without them every CGI hit would optimise the graphs again."""
    subprocess.run([str(root / "venv" / "bin" / "python"), "-I", "-c", _OPTIMIZE, str(root)], check=True,
                   env={**os.environ, "ORT_DISABLE_TELEMETRY": "1"})


def _make_world_readable(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            path = Path(dirpath, name)
            if not path.is_symlink():
                mode = path.stat().st_mode
                path.chmod(0o755 if mode & 0o111 else 0o644)


def install(prefix: Path, *, destdir: Path | None = None, checkout: Path = CHECKOUT,
            venv: Path | None = None) -> Path:
    """Install into ``destdir/prefix`` (``prefix`` when no destdir); return the tree's path.

    Replaces the parts of an earlier install wholesale so no stale module survives.
    """
    prefix = Path(prefix)
    if not prefix.is_absolute():
        raise SystemExit(f"PREFIX must be an absolute path, not {prefix}")
    root = Path(destdir, *prefix.parts[1:]) if destdir else prefix
    venv = venv or checkout / ".venv"
    if not (venv / "pyvenv.cfg").is_file():
        raise SystemExit(f"no venv at {venv}; run `make setup` first")
    manifest = checkout / "models" / "manifest.json"
    if not manifest.is_file():
        raise SystemExit(f"no {manifest}; run `make models` first")

    root.mkdir(parents=True, exist_ok=True)
    for name in (*CODE_DIRS, "cgi-bin", "models", "venv", "etc"):
        shutil.rmtree(root / name, ignore_errors=True)
    for name in CODE_DIRS:
        shutil.copytree(checkout / name, root / name, ignore=_ignore_noise)
    (root / "cgi-bin").mkdir()
    python = prefix / "venv" / "bin" / "python"
    _install_cgi(checkout / "cgi-bin" / CGI_NAME, root / "cgi-bin" / CGI_NAME, python)
    # Models: the manifest and each pack directory (with its pre-optimised cache), nothing else.
    (root / "models").mkdir()
    shutil.copy2(manifest, root / "models" / manifest.name)
    for pack in sorted(p for p in (checkout / "models").iterdir() if p.is_dir()):
        shutil.copytree(pack, root / "models" / pack.name, ignore=_ignore_noise)
    (root / "etc").mkdir()
    for kind in KINDS:
        shutil.copy2(DEPLOY_DIR / f"{kind}.conf", root / "etc" / f"{kind}.conf.in")
    _copy_venv(venv, root / "venv")
    _ensure_optimized_models(root)
    # Bytecode now, as root: the server's user could not write __pycache__ and would recompile
    # on every hit.
    for name in ("ocr_core", "ocr_http"):
        compileall.compile_dir(root / name, quiet=1)
    _make_world_readable(root)
    return root


def server_user() -> tuple[str, str]:
    """The user and group the server drops to: www-data when started as root, else ourselves."""
    if os.geteuid() == 0:
        return "www-data", "www-data"
    return pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _request_limit(cgi_env: Mapping[str, str]) -> int:
    """Server-side body limit in bytes: the CGI's largest accepted body (base64 JSON) plus 1 MiB."""
    raw = cgi_env.get("CRNNOCR_MAX_BYTES") or str(20 * 1024 * 1024)
    if not raw.isdigit():
        raise SystemExit(f"CRNNOCR_MAX_BYTES={raw!r} is not a byte count")
    max_bytes = int(raw)
    return 4 * math.ceil(max_bytes / 3) + 2 * 1024 * 1024


@dataclass(frozen=True)
class SiteConfig:
    """Everything a rendered server config depends on."""

    kind: str
    prefix: Path
    port: int
    run_dir: Path
    bind: str = "127.0.0.1"
    env: Mapping[str, str] = field(default_factory=dict)
    error_log: Path | None = None  # None: RUN_DIR/KIND-error.log; STDERR: the server's stderr

    @property
    def cgi_env(self) -> dict[str, str]:
        """Environment of every CGI hit: the defaults, then ``env``."""
        return {
            "CRNNOCR_THREADS": "1",
            "CRNNOCR_TIMEOUT_S": str(CGI_TIMEOUT_S),
            "TMPDIR": str(self.run_dir / "tmp"),
            **self.env,
        }

    @property
    def log_path(self) -> Path:
        return self.error_log or self.run_dir / f"{self.kind}-error.log"

    def render(self) -> str:
        if self.kind not in KINDS:
            raise SystemExit(f"server kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        env = self.cgi_env
        log = self.log_path
        user, group = server_user()
        limit = _request_limit(env)
        timeout = math.ceil(float(env["CRNNOCR_TIMEOUT_S"] or 0) or CGI_TIMEOUT_S) + SERVER_SLACK_S
        values = {
            "BIND": self.bind,
            "PORT": str(self.port),
            "PREFIX": str(self.prefix),
            "RUN_DIR": str(self.run_dir),
            "ERROR_LOG": str(log),
            "LIGHTTPD_ERRORLOG": "" if self.log_path == STDERR else f"server.errorlog = {_quote(str(log))}",
            "USER": user,
            "GROUP": group,
            "MAX_REQUEST_BYTES": str(limit),
            "MAX_REQUEST_KB": str(math.ceil(limit / 1024)),
            "SERVER_TIMEOUT_S": str(timeout),
            "LIGHTTPD_ENV": "\n".join(f"    {_quote(k)} => {_quote(v)}," for k, v in sorted(env.items())),
            "APACHE_ENV": "\n".join(f"    SetEnv {k} {_quote(v)}" for k, v in sorted(env.items())),
        }
        template = (DEPLOY_DIR / f"{self.kind}.conf").read_text(encoding="utf-8")
        missing = sorted(set(PLACEHOLDER.findall(template)) - set(values))
        if missing:
            raise SystemExit(f"{self.kind}.conf has placeholders with no value: {', '.join(missing)}")
        return PLACEHOLDER.sub(lambda m: values[m.group(1)], template)

    def prepare(self) -> tuple[Path, list[str]]:
        """Write the config and the run directory; return the config path and the server argv.

        ``tmp`` (the CGI's TMPDIR) and ``upload`` (lighttpd's body buffer) belong to the server's
        user; the error log is created up front so that it is writable after the privilege drop.
        """
        user, group = server_user()
        uid, gid = pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.chmod(0o755)
        for sub in ("tmp", "upload"):
            (self.run_dir / sub).mkdir(exist_ok=True)
            os.chown(self.run_dir / sub, uid, gid)
            (self.run_dir / sub).chmod(0o700)
        if self.log_path != STDERR:
            self.log_path.touch()
            os.chown(self.log_path, uid, gid)
        config = self.run_dir / f"{self.kind}.conf"
        config.write_text(self.render(), encoding="utf-8")
        if self.kind == "lighttpd":
            argv = [shutil.which("lighttpd") or "/usr/sbin/lighttpd", "-D", "-f", str(config)]
        else:
            argv = [shutil.which("apache2") or "/usr/sbin/apache2", "-f", str(config), "-DFOREGROUND"]
        return config, argv


def _site_from_args(args: argparse.Namespace) -> SiteConfig:
    """From the command line, CRNNOCR_* variables of the caller also reach the CGI (then --env)."""
    env = {k: v for k, v in os.environ.items() if k.startswith("CRNNOCR_")}
    env.update(item.split("=", 1) for item in args.env)
    return SiteConfig(
        kind=args.kind, prefix=Path(args.prefix).resolve(), port=args.port,
        run_dir=Path(args.run_dir).resolve(), env=env,
        error_log=Path(args.error_log) if args.error_log else None,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    inst = sub.add_parser("install", help="install the CGI, code, venv and models under PREFIX")
    inst.add_argument("--prefix", required=True)
    inst.add_argument("--destdir", default="")
    for name in ("render", "serve"):
        cmd = sub.add_parser(name, help=f"{name} a server config for an installed PREFIX")
        cmd.add_argument("kind", choices=KINDS)
        cmd.add_argument("--prefix", required=True)
        cmd.add_argument("--port", type=int, default=8080)
        cmd.add_argument("--run-dir", required=True)
        cmd.add_argument("--error-log", default="",
                         help=f"default: RUN_DIR/KIND-error.log; {STDERR} for the server's stderr")
        cmd.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                         help="extra environment for the CGI (repeatable)")
    args = parser.parse_args(argv)

    if args.command == "install":
        root = install(Path(args.prefix), destdir=Path(args.destdir) if args.destdir else None)
        print(f"installed crnnocr into {root}")
        return 0
    site = _site_from_args(args)
    if args.command == "render":
        sys.stdout.write(site.render())
        return 0
    config, server = site.prepare()
    print(f"{args.kind} on http://{site.bind}:{site.port}/ (config {config}); Ctrl-C stops it", flush=True)
    os.execv(server[0], server)


if __name__ == "__main__":
    sys.exit(main())
