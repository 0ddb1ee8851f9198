"""Install libcrnnocr with the runtime it needs (``make install [PREFIX=/usr/local] [DESTDIR=staging]``,
which runs ``python -m deploy install-lib``; ``make uninstall``: ``uninstall-lib``).

Layout (paths under DESTDIR):
  $LIBDIR/libcrnnocr.so.0, libcrnnocr.so -> libcrnnocr.so.0
  $LIBDIR/crnnocr/{ocr_core,models,venv}   what the library runs: found next to the library file
                                             itself, so the whole tree may be staged or moved
  $INCLUDEDIR/crnnocr.h
  $LIBDIR/pkgconfig/crnnocr.pc
The runtime is built by ``runtime.build_runtime``, as every installed tree is: the build's
``ocr_core`` and ``models`` and a copy of the venv the library was built with (same cffi, numpy,
onnxruntime...).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .runtime import CHECKOUT, build_runtime, make_world_readable, staged

BINDINGS = CHECKOUT / "bindings"
SONAME = "libcrnnocr.so.0"


def _version() -> str:
    for line in (BINDINGS / "crnnocr.h").read_text(encoding="utf-8").splitlines():
        if line.startswith("#define CRNNOCR_VERSION "):
            return line.split()[2].strip('"')
    raise SystemExit("crnnocr.h has no CRNNOCR_VERSION")


def install(prefix: Path, libdir: Path, includedir: Path, destdir: Path | None, build: Path) -> None:
    library = build / SONAME
    runtime = build / "crnnocr"
    if not library.is_file() or not (runtime / "venv" / "pyvenv.cfg").is_file():
        raise SystemExit(f"no {library} or {runtime}/venv; run `make lib` (after `make setup`) first")
    lib_out = staged(destdir, libdir)
    include_out = staged(destdir, includedir)
    pkgconfig_out = lib_out / "pkgconfig"
    runtime_out = lib_out / "crnnocr"
    for directory in (lib_out, include_out, pkgconfig_out):
        directory.mkdir(parents=True, exist_ok=True)

    # Replace the runtime wholesale, so no stale module of an earlier install survives.
    shutil.rmtree(runtime_out, ignore_errors=True)
    build_runtime(runtime_out, ("ocr_core",), source=runtime, venv=runtime / "venv")
    make_world_readable(runtime_out)

    shutil.copy2(BINDINGS / "crnnocr.h", include_out / "crnnocr.h")
    partial = lib_out / f"{SONAME}.tmp"
    shutil.copy2(library, partial)
    partial.replace(lib_out / SONAME)  # atomic: running programs keep the old file
    link = lib_out / "libcrnnocr.so"
    link.unlink(missing_ok=True)
    link.symlink_to(SONAME)

    values = {
        "PREFIX": str(prefix),
        "LIBDIR": str(libdir),
        "INCLUDEDIR": str(includedir),
        "VERSION": _version(),
    }
    text = (BINDINGS / "crnnocr.pc.in").read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    (pkgconfig_out / "crnnocr.pc").write_text(text, encoding="utf-8")
    print(f"installed libcrnnocr {values['VERSION']} into {staged(destdir, prefix)}")


def uninstall(libdir: Path, includedir: Path, destdir: Path | None) -> None:
    lib_out = staged(destdir, libdir)
    shutil.rmtree(lib_out / "crnnocr", ignore_errors=True)
    for path in (
        lib_out / SONAME,
        lib_out / "libcrnnocr.so",
        lib_out / "pkgconfig" / "crnnocr.pc",
        staged(destdir, includedir) / "crnnocr.h",
    ):
        path.unlink(missing_ok=True)
