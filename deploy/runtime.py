"""Build an installed runtime tree: the one way every install copies code, models and the venv.

A tree holds what crnnocr runs, in the checkout's layout: code packages (``ocr_core``, and for the
web tree ``ocr_http``), ``models/`` (the manifest, each pack and its pre-optimised graphs) and
``venv/``, a copy of the checkout's venv. A venv's ``bin/python`` is a symlink to the base
interpreter and its ``pyvenv.cfg`` names only that interpreter's directory (``home = /usr/bin``),
so the copy runs from its new place. The library's runtime (``$LIBDIR/crnnocr``) and the web
tree (``$PREFIX`` of ``make deploy``, which adds ``cgi-bin/``, ``bin/``, ``www/`` and ``etc/``) are
both built here.

Everything is readable by all, because the server's or the C program's user is rarely the
installer, and compiled up front, because that user cannot write ``__pycache__``.
"""

from __future__ import annotations

import compileall
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent


def ignore_noise(_dir: str, names: list[str]) -> set[str]:
    return {n for n in names if n == "__pycache__" or n.startswith(".") or n.endswith(".pyc")}


def copy_venv(venv: Path, target: Path) -> None:
    """``pyvenv.cfg``, the ``bin/python*`` links and ``lib/python3*`` (site-packages). Console
    scripts are left out: their shebangs name the old place."""
    if not (venv / "pyvenv.cfg").is_file():
        raise SystemExit(f"no venv at {venv}; run `make setup` first")
    target.mkdir(parents=True)
    shutil.copy2(venv / "pyvenv.cfg", target / "pyvenv.cfg")
    (target / "bin").mkdir()
    for entry in (venv / "bin").iterdir():
        if entry.name.startswith("python") and entry.is_symlink():
            os.symlink(os.readlink(entry), target / "bin" / entry.name)
    for libdir in sorted((venv / "lib").glob("python3*")):
        shutil.copytree(libdir, target / "lib" / libdir.name, symlinks=True)
    if (venv / "lib64").is_symlink():
        os.symlink(os.readlink(venv / "lib64"), target / "lib64")


def copy_models(models: Path, target: Path) -> None:
    """The manifest and each pack directory (with its optimised graphs), nothing else."""
    manifest = models / "manifest.json"
    if not manifest.is_file():
        raise SystemExit(f"no {manifest}; run `make models` first")
    target.mkdir(parents=True)
    shutil.copy2(manifest, target / manifest.name)
    for pack in sorted(p for p in models.iterdir() if p.is_dir()):
        shutil.copytree(pack, target / pack.name, ignore=ignore_noise)


# Run by the tree's own Python, so the caches match the runtimes that will load them.
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


def ensure_optimized_models(root: Path) -> None:
    """Every installed runtime's cache for every installed pack (ONNX Runtime's pre-optimised
    graphs, OpenVINO's compiled models; already there unless ``make models`` was skipped): whoever
    runs the tree cannot write them, and without them every start would build them again."""
    subprocess.run([str(root / "venv" / "bin" / "python"), "-I", "-c", _OPTIMIZE, str(root)], check=True,
                   env={**os.environ, "ORT_DISABLE_TELEMETRY": "1"})


def make_world_readable(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            path = Path(dirpath, name)
            if not path.is_symlink():
                mode = path.stat().st_mode
                path.chmod(0o755 if mode & 0o111 else 0o644)


def build_runtime(root: Path, code: Iterable[str], *, source: Path = CHECKOUT, venv: Path | None = None,
                  extra: Iterable[str] = ()) -> None:
    """(Re)build ``root``: the ``code`` packages and ``extra`` directories from ``source``, its
    ``models/`` and a copy of ``venv`` (default ``source/.venv``; ``source/venv`` if that is absent).

    Replaces each part wholesale, so that no stale module of an earlier install survives; other
    files under ``root`` are left alone.
    """
    code, extra = tuple(code), tuple(extra)
    venv = venv or next((v for v in (source / ".venv", source / "venv") if v.exists()), source / ".venv")
    root.mkdir(parents=True, exist_ok=True)
    for name in (*code, *extra, "models", "venv"):
        shutil.rmtree(root / name, ignore_errors=True)
    for name in (*code, *extra):
        shutil.copytree(source / name, root / name, ignore=ignore_noise)
    copy_models(source / "models", root / "models")
    copy_venv(venv.resolve() if venv.is_symlink() else venv, root / "venv")
    ensure_optimized_models(root)
    for name in code:
        compileall.compile_dir(root / name, quiet=1)


def install_script(source: Path, target: Path, python: Path, flags: str) -> None:
    """A script with its shebang naming the tree's Python (``flags``: e.g. ``-I``)."""
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    if not lines or not lines[0].startswith("#!"):
        raise SystemExit(f"{source} has no shebang line to rewrite")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(f"#!{python} {flags}\n" + "".join(lines[1:]), encoding="utf-8")
    target.chmod(0o755)


WEB_CODE = ("ocr_core", "ocr_http")
WEB_EXTRA = ("www",)
CGI_SCRIPT = CHECKOUT / "cgi-bin" / "ocr.cgi"
POOL_SCRIPT = CHECKOUT / "deploy" / "crnnocr-pool"
# The CGI runs without `site` until it knows it must do the work itself (cgi-bin/ocr.cgi).
CGI_FLAGS = "-IS"
POOL_FLAGS = "-I"


def staged(destdir: Path | None, path: Path) -> Path:
    return Path(destdir, *path.parts[1:]) if destdir else path


def install_web(prefix: Path, *, destdir: Path | None = None) -> Path:
    """The tree web servers and the pool run (``make deploy``); returns where it was written.

    ``cgi-bin/ocr.cgi`` and ``bin/crnnocr-pool`` name ``PREFIX/venv/bin/python`` in their
    shebangs, the only absolute path in the tree; ``etc/`` holds the config templates, the
    systemd unit and the pool's environment file (kept if it exists: it is the operator's);
    ``errors/`` the JSON bodies of the refusals lighttpd answers itself.
    """
    from .sites import ERROR_PAGES_DIR, KINDS, PoolConfig, render_pool_env, write_error_pages

    if not prefix.is_absolute():
        raise SystemExit(f"PREFIX must be an absolute path, not {prefix}")
    root = staged(destdir, prefix)
    build_runtime(root, WEB_CODE, extra=WEB_EXTRA)
    python = prefix / "venv" / "bin" / "python"
    shutil.rmtree(root / "cgi-bin", ignore_errors=True)
    install_script(CGI_SCRIPT, root / "cgi-bin" / CGI_SCRIPT.name, python, CGI_FLAGS)
    install_script(POOL_SCRIPT, root / "bin" / POOL_SCRIPT.name, python, POOL_FLAGS)
    write_error_pages(root / ERROR_PAGES_DIR)
    etc = root / "etc"
    etc.mkdir(exist_ok=True)
    for kind in KINDS:
        shutil.copy2(CHECKOUT / "deploy" / f"{kind}.conf", etc / f"{kind}.conf.in")
    (etc / "crnnocr-pool.service").write_text(PoolConfig(prefix).render_unit(), encoding="utf-8")
    if not (etc / "pool.env").exists():
        (etc / "pool.env").write_text(render_pool_env({}), encoding="utf-8")
    make_world_readable(root)
    return root
