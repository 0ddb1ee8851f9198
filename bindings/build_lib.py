"""Build libcrnnocr.so: cffi's embedding glue around capi.c (C) and bridge.py (Python), linked by gcc.

Run with the project's venv Python (its cffi makes the glue, and the library will import the same
cffi's _cffi_backend at run time):  .venv/bin/python bindings/build_lib.py [--build-dir build]

Writes, under the build directory:
  libcrnnocr.so.0, libcrnnocr.so -> libcrnnocr.so.0   the library (soname libcrnnocr.so.0)
  crnnocr/{ocr_core,models,venv}                      relative symlinks into this checkout: the
                                                      runtime the library finds next to itself
cffi only emits C here (no setuptools): one gcc call with explicit flags is easier to audit.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

import cffi

BINDINGS = Path(__file__).resolve().parent
ROOT = BINDINGS.parent
MODULE = "_crnnocr_cffi"
SONAME = "libcrnnocr.so.0"

# What Python sees of the C side: the option and result structs (bridge.py fills and reads results),
# the bridge_* functions that bridge.py implements and the capi.c helpers it calls. cffi checks these
# against capi.c and crnnocr.h when compiling.
CDEF = """
typedef enum ocr_mode { OCR_MODE_PAGE = 0, OCR_MODE_LINE = 1 } ocr_mode;
typedef struct ocr_options {
    size_t struct_size; const char *model_dir; const char *pack; int threads;
    size_t max_bytes; size_t max_pixels; int det_max_side;
    ocr_mode mode; int use_cls; float min_score; const char *backend; int timeout_ms;
    int dpi; const char *pages; int max_pages;
} ocr_options;
struct ocr_word { char *text; double score; double box[8]; };
struct ocr_line {
    char *text; double score; double box[8]; int block; int row;
    size_t word_count; struct ocr_word *words;
};
struct ocr_page { int number; int width; int height; size_t first_line; size_t line_count; char *text; };
typedef struct ocr_result {
    size_t line_count; struct ocr_line *lines; size_t page_count; struct ocr_page *pages;
    char *text; char *json; char *model; int document; int dpi;
} ocr_result;

extern "Python" int bridge_recognize(const unsigned char *, size_t, char **);
extern "Python" int bridge_engine_new(const ocr_options *, uint64_t *);
extern "Python" int bridge_engine_free(uint64_t);
extern "Python" int bridge_engine_recognize(uint64_t, const unsigned char *, size_t, int, int, float,
                                            const char *, ocr_result **);
extern "Python" int bridge_render(const ocr_result *, int, char **);

void bridge_set_error_detail(int code, const char *message, const char *detail);
char *bridge_strdup(const char *s, size_t n);
void *bridge_calloc(size_t n, size_t size);
void ocr_result_free(ocr_result *r);
const char *bridge_runtime_home(void);
const char *bridge_runtime_venv(void);
"""


def c_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def strerror_table() -> str:
    """ocr_strerror's texts, indexed by ErrorCode.number: the core's summaries, so they cannot drift."""
    sys.path.insert(0, str(ROOT))
    from ocr_core.errors import ErrorCode

    texts = {0: "no error"} | {code.number: code.summary for code in ErrorCode}
    items = ", ".join(c_string(texts[n]) if n in texts else "NULL" for n in range(max(texts) + 1))
    return f"#define STRERROR_TABLE {{ {items} }}\n"


def emit_c(path: Path) -> None:
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    ffi.embedding_init_code((BINDINGS / "bridge.py").read_text(encoding="utf-8"))
    ffi.set_source(MODULE, strerror_table() + (BINDINGS / "capi.c").read_text(encoding="utf-8"))
    ffi.emit_c_code(str(path))


def link(source: Path, target: Path) -> None:
    libdir = sysconfig.get_config_var("LIBDIR")
    pylib = sysconfig.get_config_var("LDLIBRARY")  # libpython3.11.so
    if not pylib.endswith(".so"):
        sys.exit(f"build_lib: {pylib} is not a shared libpython; install libpython3-dev")
    command = [
        os.environ.get("CC", "gcc"),
        "-shared",
        "-fPIC",
        "-O2",
        "-g",
        "-pthread",
        "-std=gnu99",
        "-fvisibility=hidden",
        "-Wall",
        "-Wno-unused-parameter",
        "-Wno-format-truncation",  # error messages are cut to fit on purpose
        f"-I{sysconfig.get_paths()['include']}",
        f"-I{BINDINGS}",
        str(source),
        "-o",
        str(target),
        f"-L{libdir}",
        f"-l{pylib[3:-3]}",
        # The library finds libpython wherever the host program is; ocr_* are its only exports.
        f"-Wl,-rpath,{libdir}",
        f"-Wl,-soname,{SONAME}",
        f"-Wl,--version-script={BINDINGS / 'libcrnnocr.map'}",
        "-Wl,-z,defs",
    ]
    print(shlex.join(command), flush=True)
    subprocess.run(command, check=True)


def symlink(link_path: Path, target: Path) -> None:
    rel = os.path.relpath(target, link_path.parent)
    if link_path.is_symlink() and os.readlink(link_path) == rel:
        return
    if link_path.is_symlink():
        link_path.unlink()
    link_path.symlink_to(rel)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build")
    args = parser.parse_args()
    build = args.build_dir.resolve()
    build.mkdir(parents=True, exist_ok=True)

    source = build / f"{MODULE}.c"
    emit_c(source)
    partial = build / f"{SONAME}.tmp"
    link(source, partial)
    partial.replace(build / SONAME)  # atomic: running programs keep the old inode
    symlink(build / "libcrnnocr.so", build / SONAME)

    runtime = build / "crnnocr"
    runtime.mkdir(exist_ok=True)
    symlink(runtime / "ocr_core", ROOT / "ocr_core")
    symlink(runtime / "models", ROOT / "models")
    symlink(runtime / "venv", Path(sys.prefix))


if __name__ == "__main__":
    main()
