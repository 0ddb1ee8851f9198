"""``python -m deploy``: install what the web server runs, render its configs, serve in the foreground.

    python -m deploy install --prefix /opt/crnnocr [--destdir STAGING]
    python -m deploy install-lib|uninstall-lib [--prefix /usr/local] [--libdir L] [--includedir I]
                                               [--destdir STAGING] [--build-dir build]
    python -m deploy render lighttpd|apache --prefix P [--mode cgi|fastcgi] [--port N] --run-dir R
                                            [--env KEY=VALUE ...]
    python -m deploy render lighttpd|apache --mode pools --pool HOST:PORT [--pool HOST:PORT ...] ...
    python -m deploy render unit --prefix P [--socket S] [--run-dir R] [--tcp HOST:PORT]
    python -m deploy serve lighttpd|apache --prefix P [--path fastcgi|cgi-pool|cgi] [--port N]
                                           [--env KEY=VALUE ...]

CRNNOCR_* variables of the caller reach the application too (then --env). ``serve`` runs the
server (and for Apache, or ``--path cgi-pool``, the worker pool) in the foreground until Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import library
from .runtime import CHECKOUT, install_web
from .servers import PATHS, serving
from .sites import KINDS, MODES, STDERR, PoolConfig, SiteConfig


def _env(args: argparse.Namespace) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.startswith("CRNNOCR_")}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--env {item!r}: expected KEY=VALUE")
        env[key] = value
    return env


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    inst = sub.add_parser("install", help="install the CGI, the pool, code, venv and models under PREFIX")
    inst.add_argument("--prefix", type=Path, required=True)
    inst.add_argument("--destdir", type=Path)
    for name, what in (("install-lib", "install libcrnnocr, crnnocr.h, crnnocr.pc and the library's runtime"),
                       ("uninstall-lib", "remove what install-lib installed")):
        lib = sub.add_parser(name, help=what)
        lib.add_argument("--prefix", type=Path, default=Path("/usr/local"))
        lib.add_argument("--libdir", type=Path, help="default: PREFIX/lib")
        lib.add_argument("--includedir", type=Path, help="default: PREFIX/include")
        lib.add_argument("--destdir", type=Path, help="staging root (packaging); paths inside stay PREFIX's")
        lib.add_argument("--build-dir", type=Path, default=CHECKOUT / "build")
    render = sub.add_parser("render", help="print a server config or the pool's systemd unit")
    render.add_argument("kind", choices=(*KINDS, "unit"))
    render.add_argument("--mode", choices=MODES, default="cgi")
    render.add_argument("--socket", type=Path, help="the pool's socket (default: RUN_DIR/pool/pool.sock; "
                        "for the unit /run/crnnocr/pool.sock)")
    render.add_argument("--pool", action="append", default=[], metavar="HOST:PORT",
                        help="mode pools: a pool on another host (repeatable)")
    render.add_argument("--tcp", metavar="HOST:PORT",
                        help="unit: listen on TCP too, for web servers on other hosts (a private address)")
    serve = sub.add_parser("serve", help="run a server (and its pool) in the foreground")
    serve.add_argument("kind", choices=KINDS)
    serve.add_argument("--path", choices=PATHS, default="fastcgi",
                       help="fastcgi: the server speaks FastCGI to the pool (default); cgi-pool: ocr.cgi "
                       "forwards to a pool; cgi: ocr.cgi does the work itself")
    for cmd in (render, serve):
        cmd.add_argument("--prefix", type=Path, required=True)
        cmd.add_argument("--port", type=int, default=8080)
        cmd.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                         help="extra environment for the application (repeatable)")
    render.add_argument("--run-dir", type=Path)
    args = parser.parse_args(argv)

    if args.command == "install":
        root = install_web(args.prefix.absolute(), destdir=args.destdir)
        print(f"installed crnnocr into {root}")
        return 0
    if args.command in ("install-lib", "uninstall-lib"):
        return _library(args)
    prefix = args.prefix.resolve()
    if args.command == "render":
        if args.kind == "unit":
            unit = PoolConfig(prefix, **({"socket": args.socket} if args.socket else {}),
                              **({"run_dir": args.run_dir.resolve()} if args.run_dir else {}), tcp=args.tcp)
            sys.stdout.write(unit.render_unit())
            return 0
        if args.run_dir is None:
            raise SystemExit("render: --run-dir is required for a server config")
        site = SiteConfig(kind=args.kind, prefix=prefix, port=args.port, run_dir=args.run_dir.resolve(),
                          mode=args.mode, env=_env(args), pool_socket=args.socket,
                          pool_hosts=tuple(args.pool))
        sys.stdout.write(site.render())
        return 0
    with serving(args.kind, args.path, prefix, env=_env(args), port=args.port, error_log=STDERR) as server:
        print(f"{args.kind} ({args.path}) on {server.url} (run directory {server.run_dir}); Ctrl-C stops it",
              flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopping", flush=True)
    return 0


def _library(args: argparse.Namespace) -> int:
    for name in ("prefix", "libdir", "includedir"):
        value = getattr(args, name)
        if value is not None and not value.is_absolute():
            raise SystemExit(f"--{name} must be an absolute path, not {value}")
    libdir = args.libdir or args.prefix / "lib"
    includedir = args.includedir or args.prefix / "include"
    destdir = args.destdir if args.destdir and str(args.destdir) else None
    if args.command == "uninstall-lib":
        library.uninstall(libdir, includedir, destdir)
    else:
        library.install(args.prefix, libdir, includedir, destdir, args.build_dir.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
