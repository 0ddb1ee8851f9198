"""libcrnnocr from C (issue 4): header, install, clients, error paths, threads, memory.

Real compiles (-std=c99 -Wall -Wextra -Werror -pedantic, and g++ for the header), programs linked
through the installed crnnocr.pc, run with no CRNNOCR_*/PYTHON* variables set, and compared with the
Python engine in this process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ocr_core import Engine, EngineConfig, ErrorCode, RecognizeOptions, __version__, backends
from ocr_core.config import DEFAULT_PACK
from ocr_core.image import BYTES_PER_PIXEL
from ocr_core.packs import installed_packs
from tests import crafted
from tests.rss import peak_rss_kb
from tests.support import (
    FONT,
    RECEIPT_CER,
    cer,
    encrypted_pdf,
    eval_file,
    multipage_tiff,
    oversized_pdf,
    receipt_pages,
    render_text,
    scanned_pdf,
    weak_line_png,
)

ROOT = Path(__file__).resolve().parent.parent
C_CLIENT = ROOT / "c_client"
HEADER = ROOT / "bindings" / "crnnocr.h"
C99 = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
LINE_IMAGES = ("sroie_lines_en/images/sroie_040_l1.png", "sroie_lines_en/images/sroie_040_l2.png")
PAGE_IMAGE = "en_screenshots/images/easydict_ocr-en-text-5.png"
RUN_TIMEOUT_S = 300


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without anything that could help the library find Python, and
    with ONNX Runtime for every call, as the ``engine`` fixture: with ``auto``, a host's first call
    and its later ones run on different runtimes (ocr_core/handover.py)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CRNNOCR_", "PYTHON", "LD_")) and k != "VIRTUAL_ENV"
    }
    env["CRNNOCR_BACKEND"] = "onnxruntime"
    env.update(extra)
    return env


def run(
    cmd: list[str | Path],
    *,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = RUN_TIMEOUT_S,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(c) for c in cmd],
        capture_output=True,
        text=True,
        env=env or clean_env(),
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        pytest.fail(f"{cmd} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def records(stdout: str, kind: str) -> list[list[str]]:
    """test_api's tab-separated records of one kind."""
    return [line.split("\t")[1:] for line in stdout.splitlines() if line.split("\t")[0] == kind]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and IHDR claiming width x height, then IEND: a pixel bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@dataclass(frozen=True)
class Install:
    prefix: Path
    work: Path  # scratch directory for programs and inputs
    flags: list[str]  # pkg-config --cflags --libs crnnocr

    @property
    def runtime(self) -> Path:
        return self.prefix / "lib" / "crnnocr"

    def program(self, name: str) -> Path:
        return self.work / name


def _make(*args: str, **vars_: Path | str) -> None:
    run(
        [
            "make",
            "--no-print-directory",
            "-C",
            ROOT,
            "-f",
            "mk/lib.mk",
            *args,
            f"PY={sys.executable}",
            *(f"{k}={v}" for k, v in vars_.items()),
        ],
        env=clean_env(),
    )


@pytest.fixture(scope="module")
def install() -> Iterator[Install]:
    """`make install PREFIX=<temp>` of a fresh build; the C programs compiled through crnnocr.pc."""
    if DEFAULT_PACK not in installed_packs(ROOT / "models"):
        pytest.skip(
            f"model pack {DEFAULT_PACK} is not installed: run `make models` (C library tests need it)"
        )
    with tempfile.TemporaryDirectory(prefix="crnnocr-c-") as tmp:
        base = Path(tmp)
        prefix, work = base / "prefix", base / "work"
        work.mkdir()
        _make("install", BUILD=base / "build", PREFIX=prefix)
        pc_env = clean_env(PKG_CONFIG_PATH=str(prefix / "lib" / "pkgconfig"))
        flags = run(["pkg-config", "--cflags", "--libs", "crnnocr"], env=pc_env).stdout.split()
        for name in ("ocr_file", "test_api", "example"):
            run(["cc", *C99, "-O1", C_CLIENT / f"{name}.c", *flags, "-o", work / name])
        run(["cc", *C99, "-O1", "-pthread", C_CLIENT / "bench_calls.c", *flags, "-o", work / "bench_calls"])
        yield Install(prefix=prefix, work=work, flags=flags)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load(EngineConfig(backend="onnxruntime"))



@pytest.fixture(scope="module")
def rendered_png(install: Install) -> tuple[Path, str]:
    """A two-line page drawn with DejaVu Sans, and the text drawn."""
    from PIL import Image, ImageDraw, ImageFont

    if not FONT.is_file():
        pytest.skip(f"{FONT} missing (Debian fonts-dejavu-core)")
    text = "Invoice 2026-11 total 42.50\nShipped to Berlin by rail"
    font = ImageFont.truetype(str(FONT), 32)
    image = Image.new("RGB", (720, 160), "white")
    ImageDraw.Draw(image).multiline_text((24, 28), text, fill="black", font=font, spacing=24)
    path = install.work / "rendered.png"
    image.save(path)
    return path, text


# ---- the header: the manual, kept in step with the core ---------------------------------------


def test_header_error_codes_match_the_core_error_codes() -> None:
    header = HEADER.read_text(encoding="utf-8")
    numbers = {m[1]: int(m[2]) for m in re.finditer(r"^\s*OCR_(OK|E_\w+)\s*=\s*(\d+)", header, re.MULTILINE)}
    assert numbers.pop("OK") == 0
    assert numbers == {f"E_{code.name}": code.number for code in ErrorCode}


def test_header_version_is_the_core_version() -> None:
    header = HEADER.read_text(encoding="utf-8")
    macros = dict(re.findall(r"^#define (CRNNOCR_VERSION\w*) (\S+)", header, re.MULTILINE))
    major, minor, patch = (int(p) for p in __version__.split("."))
    assert macros["CRNNOCR_VERSION"] == f'"{__version__}"'
    assert (
        int(macros["CRNNOCR_VERSION_MAJOR"]),
        int(macros["CRNNOCR_VERSION_MINOR"]),
        int(macros["CRNNOCR_VERSION_PATCH"]),
    ) == (major, minor, patch)
    assert int(macros["CRNNOCR_VERSION_NUMBER"]) == major * 10000 + minor * 100 + patch


def test_every_header_function_is_documented_and_exported(install: Install) -> None:
    lines = HEADER.read_text(encoding="utf-8").splitlines()
    declaration = re.compile(r"^[a-z][\w ]*?\**\b(ocr_\w+)\(")
    declared = [m[1] for m in map(declaration.match, lines) if m]
    assert len(declared) == len(set(declared)) >= 20
    for i, line in enumerate(lines):
        if declaration.match(line):  # the comment above it, or above its group of declarations
            above = next(t for t in reversed(lines[:i]) if t.strip() and not declaration.match(t))
            assert above.rstrip().endswith("*/"), line
    lib = install.prefix / "lib" / "libcrnnocr.so.0"
    exported = run(["nm", "-D", "--defined-only", lib]).stdout.split()[2::3]
    assert sorted(exported) == sorted(declared)


def test_header_compiles_as_cxx_and_links(install: Install) -> None:
    source = install.work / "header_test.cpp"
    source.write_text(
        "#include <crnnocr.h>\n#include <cstdio>\n"
        "int main() { ocr_options o; ocr_options_init(&o);\n"
        '  std::printf("%s %d\\n", ocr_version(), static_cast<int>(o.mode)); return OCR_OK; }\n'
    )
    run(
        [
            "g++",
            "-std=c++11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            source,
            *install.flags,
            "-o",
            install.work / "header_test",
        ]
    )
    assert run([install.work / "header_test"]).stdout == f"{__version__} 0\n"


def test_static_api_needs_no_python(install: Install) -> None:
    out = run([install.program("test_api"), "static"]).stdout
    major, minor, patch = (int(p) for p in __version__.split("."))
    assert records(out, "version") == [[__version__, __version__, str(major * 10000 + minor * 100 + patch)]]
    summaries = {int(n): text for n, text in records(out, "strerror")}
    assert summaries[0] == "no error"
    unknown = [n for n in summaries if n not in {0, *(code.number for code in ErrorCode)}]
    assert unknown and all(summaries[n] == "unknown error code" for n in unknown)
    assert all(summaries[code.number] == code.summary for code in ErrorCode)
    # min_score -1: the mode's default (0.5 page, 0 line); timeout_ms -1: CRNNOCR_TIMEOUT_S or 20 s
    assert records(out, "options") == [["1", "-1", "0", "-1.00", "1", "-1"]]
    assert records(out, "null-safe") == [["0", "1"]]


# ---- install -------------------------------------------------------------------------------------


def test_install_is_self_contained(install: Install) -> None:
    pc = (install.prefix / "lib" / "pkgconfig" / "crnnocr.pc").read_text()
    assert f"Version: {__version__}" in pc
    assert str(ROOT) not in pc
    assert f"-Wl,-rpath,{install.prefix / 'lib'}" in install.flags
    for part in ("ocr_core/engine.py", "models/manifest.json", f"models/{DEFAULT_PACK}", "venv/pyvenv.cfg"):
        assert (install.runtime / part).exists(), part
    assert not any(p.is_symlink() for p in install.runtime.iterdir())
    assert (install.prefix / "include" / "crnnocr.h").read_bytes() == HEADER.read_bytes()


def test_destdir_stages_a_tree_that_still_works_when_moved(install: Install) -> None:
    with tempfile.TemporaryDirectory(prefix="crnnocr-stage-") as tmp:
        stage = Path(tmp)
        _make("install", BUILD=install.work.parent / "build", PREFIX="/opt/crnnocr-test", DESTDIR=stage)
        root = stage / "opt" / "crnnocr-test"
        pc = (root / "lib" / "pkgconfig" / "crnnocr.pc").read_text()
        assert "libdir=/opt/crnnocr-test/lib" in pc and str(stage) not in pc
        # Nothing absolute is baked in: the staged library finds its runtime next to itself.
        program = stage / "test_api"
        run(
            [
                "cc",
                *C99,
                C_CLIENT / "test_api.c",
                f"-I{root / 'include'}",
                f"-L{root / 'lib'}",
                f"-Wl,-rpath,{root / 'lib'}",
                "-lcrnnocr",
                "-o",
                program,
            ]
        )
        out = run([program, "maps", eval_file(LINE_IMAGES[0])]).stdout
        assert records(out, "call")[0][1] == "0"
        assert all(path.startswith(str(root)) for (path,) in records(out, "mapped") if "_cffi" in path)


# ---- the Python environment the library runs ------------------------------------------------------


def test_cffi_backend_is_the_installed_venvs(install: Install) -> None:
    out = run([install.program("test_api"), "maps", eval_file(LINE_IMAGES[0])]).stdout
    backends = {path.strip() for (path,) in records(out, "mapped") if "_cffi_backend" in path}
    assert backends and all(b.startswith(str(install.runtime / "venv")) for b in backends), backends


@pytest.mark.parametrize("preset", [None, "2"])
def test_host_environment_is_left_as_it_was(install: Install, preset: str | None) -> None:
    """The library limits OpenBLAS to one thread only around its imports (numpy's and OpenCV's copies)."""
    env = clean_env()
    env.pop("OPENBLAS_NUM_THREADS", None)
    if preset is not None:
        env["OPENBLAS_NUM_THREADS"] = preset
    out = run([install.program("test_api"), "maps", eval_file(LINE_IMAGES[0])], env=env).stdout
    assert records(out, "call")[0][1] == "0", out
    assert records(out, "env") == [["OPENBLAS_NUM_THREADS", preset or "(unset)"]]


def test_runs_without_debians_python_packages(install: Install) -> None:
    """Debian's python3-cffi-backend (1.15, not the venv's cffi) hidden: the library must not need it."""
    dist_packages = Path("/usr/lib/python3/dist-packages")
    script = f"mount -t tmpfs none {dist_packages} && exec {install.program('test_api')} maps {{image}}"
    probe = run(["unshare", "--mount", "sh", "-c", f"mount -t tmpfs none {dist_packages}"], check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot hide {dist_packages} in a mount namespace: {probe.stderr.strip()}")
    out = run(["unshare", "--mount", "sh", "-c", script.format(image=eval_file(LINE_IMAGES[0]))]).stdout
    assert records(out, "call")[0][1] == "0", out


def test_missing_runtime_is_an_error_with_a_remedy(install: Install) -> None:
    image = eval_file(LINE_IMAGES[0])
    out = run(
        [install.program("test_api"), "inputs", image], env=clean_env(CRNNOCR_VENV="/nonexistent/venv")
    ).stdout
    for _name, code, message, _text in (c for c in records(out, "call") if c[0] == "good"):
        assert code == str(ErrorCode.MODEL_UNAVAILABLE.number)
        assert "CRNNOCR_VENV" in message and "/nonexistent" not in message  # safe to show
    out = run(
        [install.program("test_api"), "engine", image], env=clean_env(CRNNOCR_VENV="/nonexistent/venv"),
        check=False,
    ).stdout
    _name, code, _message, detail = records(out, "engine")[0]
    assert code == str(ErrorCode.MODEL_UNAVAILABLE.number) and "/nonexistent/venv" in detail  # the log's
    empty_home = install.work / "empty-home"
    empty_home.mkdir(exist_ok=True)
    env = clean_env(CRNNOCR_HOME=str(empty_home), CRNNOCR_VENV=str(install.runtime / "venv"))
    out = run([install.program("test_api"), "inputs", image], env=env).stdout
    _name, code, message, _text = records(out, "call")[1]
    assert code == str(ErrorCode.MODEL_UNAVAILABLE.number)
    assert "engine cannot be imported" in message and "CRNNOCR_HOME" in message


def test_a_venv_without_cffi_is_an_error_not_a_crash(install: Install) -> None:
    """cffi imports _cffi_backend before any of our Python runs: a venv lacking it must fail cleanly."""
    bare = install.work / "bare-venv"
    if not bare.exists():
        run(["/usr/bin/python3", "-m", "venv", "--without-pip", bare])
    result = run(
        [install.program("ocr_file"), "--line", eval_file(LINE_IMAGES[0])],
        env=clean_env(CRNNOCR_VENV=str(bare)),
        check=False,
    )
    assert result.returncode == ErrorCode.MODEL_UNAVAILABLE.number
    assert "No module named '_cffi_backend'" in result.stderr  # cffi's own report
    assert "CRNNOCR_VENV" in result.stderr.splitlines()[-1]  # ours, with the remedy


def test_crnnocr_home_may_name_a_checkout(install: Install) -> None:
    out = run(
        [install.program("test_api"), "maps", eval_file(LINE_IMAGES[0])],
        env=clean_env(CRNNOCR_HOME=str(ROOT)),
    ).stdout
    assert records(out, "call")[0][1] == "0"
    assert any(p.startswith(str(ROOT / ".venv")) for (p,) in records(out, "mapped") if "_cffi" in p)


# ---- results equal the Python engine's ------------------------------------------------------------


def test_ocr_file_matches_the_python_engine_on_eval_images(install: Install, engine: Engine) -> None:
    lines = [eval_file(p) for p in LINE_IMAGES]
    page = eval_file(PAGE_IMAGE)
    out = run([install.program("ocr_file"), "--json", "--line", *lines]).stdout.splitlines()
    for path, document in zip(lines, out, strict=True):
        want = engine.recognize(path.read_bytes(), RecognizeOptions(mode="line")).to_dict()
        got = json.loads(document)
        assert got["text"] == want["text"] and got["text"]
        assert [line["box"] for line in got["lines"]] == [line["box"] for line in want["lines"]]
    want_page = engine.recognize(page.read_bytes()).text
    assert run([install.program("ocr_file"), page]).stdout == want_page + "\n"
    assert len(want_page.splitlines()) >= 5


def test_ocr_file_matches_the_python_engine_on_a_rendered_page(
    install: Install, engine: Engine, rendered_png: tuple[Path, str]
) -> None:
    path, drawn = rendered_png
    want = engine.recognize(path.read_bytes()).text
    assert run([install.program("ocr_file"), path]).stdout == want + "\n"
    assert want.replace(" ", "") == drawn.replace(" ", "")


def test_engine_api_results_match_the_python_engine(install: Install, engine: Engine) -> None:
    image = eval_file(LINE_IMAGES[0])
    out = run([install.program("test_api"), "engine", image]).stdout
    assert "inconsistent" not in out
    want = engine.recognize(image.read_bytes())
    assert records(out, "result") == [[str(len(want.lines)), str(want.width), str(want.height)]]
    for (code, score, box, text), line in zip(records(out, "line"), want.lines, strict=True):
        assert code == "0" and text == line.text
        assert float(score) == pytest.approx(line.score, abs=1e-3)
        assert [float(v) for v in box.split(",")] == pytest.approx([v for p in line.box for v in p], abs=0.1)
    assert records(out, "out_of_range") == [["1", "-1.0", str(ErrorCode.BAD_REQUEST.number)]]
    assert records(out, "text") == [[want.text]]
    document = json.loads(records(out, "json")[0][0])
    expected = want.to_dict()
    assert document.keys() == expected.keys()
    assert {k: v for k, v in document.items() if k != "timing_ms"} == {
        k: v for k, v in expected.items() if k != "timing_ms"
    }
    assert records(out, "recognize")[-1] == [
        "line",
        "0",
        engine.recognize(image.read_bytes(), RecognizeOptions(mode="line", min_score=0)).text,
    ]


# ---- errors ------------------------------------------------------------------------------------------


def test_bad_inputs_fail_with_the_right_code_and_the_next_call_works(install: Install) -> None:
    good = eval_file(LINE_IMAGES[0])
    cases = {
        "random.bin": (os.urandom(4096), ErrorCode.UNSUPPORTED_MEDIA_TYPE, "not a JPEG, PNG"),
        "truncated.png": (good.read_bytes()[:200], ErrorCode.DECODE_FAILED, "truncated"),
        "bomb.png": (png_header_only(30000, 30000), ErrorCode.IMAGE_TOO_LARGE, "pixels"),
    }
    for name, (data, _code, _text) in cases.items():
        (install.work / name).write_bytes(data)
    out = run([install.program("test_api"), "inputs", good, *(install.work / n for n in cases)]).stdout
    assert "inconsistent" not in out
    calls = records(out, "call")
    want = [("null", ErrorCode.BAD_REQUEST, "NULL"), ("empty", ErrorCode.BAD_REQUEST, "0 bytes")]
    want += [(str(install.work / n), code, text) for n, (_d, code, text) in cases.items()]
    failures = [c for c in calls if c[0] != "good"]
    assert len(failures) == len(want)
    for (name, code, message, text), (want_name, want_code, want_text) in zip(failures, want, strict=True):
        assert (name, int(code), text) == (want_name, want_code.number, "(null)")
        assert want_text in message, message
    goods = [c for c in calls if c[0] == "good"]
    assert len(goods) == len(want)
    assert all(
        code == "0" and message == "" and text == "BIZDATE:12/03/2018" for _n, code, message, text in goods
    )


def test_hostile_classes_get_their_codes_quickly_and_quietly(install: Install, tmp_path: Path) -> None:
    """Issue 11's classes (scan bombs, data that ends early, a damaged TIFF, header bombs of every
    format) through ocr_recognize: the core's code for each, a safe message, the next call works,
    nothing on the host's stderr, and a time bound on the whole run."""
    good = tmp_path / "good.png"
    good.write_bytes(render_text(["Hostile 11"]))
    refused = crafted.refused()
    for name, (data, _code) in refused.items():
        (tmp_path / name).write_bytes(data)
    started = time.monotonic()
    done = run([install.program("test_api"), "inputs", good, *(tmp_path / name for name in refused)])
    elapsed = time.monotonic() - started
    assert done.stderr == "" and "inconsistent" not in done.stdout
    calls = records(done.stdout, "call")
    failures = [c for c in calls if c[0] not in ("good", "null", "empty")]
    assert [(name, int(code)) for name, code, _message, _text in failures] == \
        [(str(tmp_path / name), code.number) for name, (_data, code) in refused.items()]
    # No address or path in a message a client may see.
    messages = [message for _name, _code, message, _text in failures]
    assert all(message and not re.search(r"0x[0-9a-fA-F]{6,}|/\w", message) for message in messages)
    assert all(c[1] == "0" and c[3] == "Hostile 11" for c in calls if c[0] == "good")
    assert elapsed < 60  # one cold start, then milliseconds each; a scan bomb decoded takes minutes


def test_byte_limit_from_the_environment(install: Install) -> None:
    image = eval_file(LINE_IMAGES[0])
    out = run([install.program("test_api"), "inputs", image], env=clean_env(CRNNOCR_MAX_BYTES="100")).stdout
    _name, code, message, _text = records(out, "call")[1]
    assert int(code) == ErrorCode.PAYLOAD_TOO_LARGE.number and "limit" in message


def test_bad_engine_options_are_refused(install: Install) -> None:
    out = run([install.program("test_api"), "engine", eval_file(LINE_IMAGES[0])]).stdout
    engines = {name: (int(code), message, detail) for name, code, message, detail in records(out, "engine")}
    for _code, message, _detail in engines.values():  # safe to show an end user
        assert "0x" not in message and not any(w.startswith("/") for w in message.split()), message
    assert engines["missing_model_dir"][0] == ErrorCode.MODEL_UNAVAILABLE.number
    assert "CRNNOCR_MODEL_DIR" in engines["missing_model_dir"][1]
    assert "/nonexistent/crnnocr-models" in engines["missing_model_dir"][2]  # the operator's detail
    assert engines["unknown_pack"][0] == ErrorCode.MODEL_UNAVAILABLE.number
    assert "no-such-pack" in engines["unknown_pack"][1]
    for name in ("bad_threads", "bad_min_score", "bad_backend", "bad_timeout", "uninitialised_options",
                 "null_out"):
        assert engines[name][0] == ErrorCode.BAD_REQUEST.number and engines[name][1], name
    assert "timeout_ms" in engines["bad_timeout"][1]
    assert "onnxruntime" in engines["bad_backend"][1]
    assert engines["defaults"] == (0, "", "")
    recognize = {name: rest for name, *rest in records(out, "recognize")}
    for name in ("null_bytes", "null_engine", "bad_mode"):
        assert recognize[name] == [str(ErrorCode.BAD_REQUEST.number), "1"], name
    assert recognize["bad_min_score"][0] == str(ErrorCode.BAD_REQUEST.number)


def test_backend_option_and_older_option_layouts(install: Install, engine: Engine) -> None:
    """options.backend picks the runtime; a struct from before the field existed is read up to its
    struct_size only (its stale "backend" bytes would be a bad option if read)."""
    image = eval_file(LINE_IMAGES[0])
    want = engine.recognize(image.read_bytes(), RecognizeOptions(mode="line")).text
    out = run([install.program("test_api"), "backends", image]).stdout
    assert {name: (code, text) for name, code, text in records(out, "backend")} == {
        name: ("0", want) for name in ("onnxruntime", "openvino", "auto", "null", "old_layout",
                                       "old_layout_timeout")
    }


def test_timeout_ms_and_the_mode_default_min_score(install: Install, tmp_path: Path) -> None:
    """timeout_ms stops a page with OCR_E_TIMEOUT (1 ms: at the first check, after decoding) and 0
    lifts the limit; line mode keeps a weak line by default, as the CLI and the CGI do."""
    page = eval_file(PAGE_IMAGE)
    line = tmp_path / "weak_line.png"
    line.write_bytes(weak_line_png())
    python = Engine.load(EngineConfig(backend="onnxruntime", threads=1))
    weak = python.recognize(line.read_bytes(), RecognizeOptions(mode="line")).lines
    assert len(weak) == 1 and weak[0].score < 0.5  # else this image tests nothing
    out = run([install.program("test_api"), "limits", page, line]).stdout
    limits = {name: (int(code), text, float(ms)) for name, code, text, ms in records(out, "limit")}
    code, message, ms = limits["timeout_1ms"]
    assert code == ErrorCode.TIMEOUT.number and "time limit" in message, message
    assert ms < 5000  # decoding plus one step, not the whole page
    assert limits["no_timeout"][0] == 0 and int(limits["no_timeout"][1]) > 5
    assert limits["default_score_line"][:2] == (0, "1")
    out = run([install.program("test_api"), "inputs", page], env=clean_env(CRNNOCR_MAX_REGIONS="3")).stdout
    _name, code, message, _text = records(out, "call")[1]
    assert int(code) == ErrorCode.TOO_MANY_REGIONS.number and "more than 3 text regions" in message


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_the_runtime_that_runs_is_the_one_asked_for(install: Install, backend: str) -> None:
    """Read from the host's own memory map: only the asked-for runtime's library is loaded."""
    image = eval_file(LINE_IMAGES[0])
    out = run([install.program("test_api"), "maps", image], env=clean_env(CRNNOCR_BACKEND=backend)).stdout
    assert records(out, "call")[0][1] == "0", out
    mapped = {"openvino" if "openvino" in path else "onnxruntime" for (path,) in records(out, "runtime")}
    assert mapped == {backend}


def test_a_host_on_auto_moves_to_openvino_at_its_second_call(install: Install, engine: Engine) -> None:
    if backends.resolve(backends.AUTO) != backends.OPENVINO:
        pytest.skip("SKIPPED LOUDLY: auto keeps ONNX Runtime here (no bf16 or no openvino)")
    image = eval_file(LINE_IMAGES[0])
    want = engine.recognize(image.read_bytes()).text
    for calls, runtimes in ((1, {"onnxruntime"}), (2, {"onnxruntime", "openvino"})):
        command = [install.program("test_api"), "maps", image, str(calls)]
        out = run(command, env=clean_env(CRNNOCR_BACKEND="auto")).stdout
        assert [(code, text) for _name, code, _message, text in records(out, "call")] == [("0", want)] * calls
        mapped = {"openvino" if "openvino" in path else "onnxruntime" for (path,) in records(out, "runtime")}
        assert mapped == runtimes


def test_ocr_file_exit_status(install: Install) -> None:
    ocr_file = install.program("ocr_file")
    assert run([ocr_file], check=False).returncode == 64
    assert run([ocr_file, install.work / "no-such-file.png"], check=False).returncode == 66
    (install.work / "junk.bin").write_bytes(b"not an image at all")
    result = run([ocr_file, install.work / "junk.bin"], check=False)
    assert result.returncode == ErrorCode.UNSUPPORTED_MEDIA_TYPE.number
    assert "junk.bin" in result.stderr


def test_readme_example(install: Install) -> None:
    example = install.program("example")
    assert run([example, eval_file(LINE_IMAGES[0])]).stdout == "BIZDATE:12/03/2018\n"
    failed = run([example], check=False)
    assert failed.returncode == 1 and "ocr failed (1)" in failed.stderr
    readme = (ROOT / "README.md").read_text(encoding="utf-8") if (ROOT / "README.md").is_file() else ""
    if "ocr_recognize(image, len)" in readme:  # the README shows this very program
        assert (C_CLIENT / "example.c").read_text(encoding="utf-8") in readme


# ---- threads -----------------------------------------------------------------------------------------


def _bench(install: Install, *args: str | Path) -> dict:
    result = run([install.program("bench_calls"), *args], check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_eight_threads_share_one_engine(install: Install, engine: Engine) -> None:
    image = eval_file(LINE_IMAGES[1])
    expect = install.work / "expect-line.txt"
    expect.write_text(engine.recognize(image.read_bytes(), RecognizeOptions(mode="line")).text)
    report = _bench(
        install,
        "--mode",
        "line",
        "--threads",
        "8",
        "--calls",
        "20",
        "--ort-threads",
        "1",
        "--expect",
        expect,
        image,
    )
    assert (report["errors"], report["mismatches"], report["threads"]) == (0, 0, 8)


def test_eight_threads_first_call_at_once_through_ocr_recognize(install: Install, engine: Engine) -> None:
    image = eval_file(LINE_IMAGES[0])
    expect = install.work / "expect-page.txt"
    expect.write_text(engine.recognize(image.read_bytes()).text)
    report = _bench(
        install,
        "--api",
        "simple",
        "--threads",
        "8",
        "--warmup",
        "0",
        "--calls",
        "20",
        "--ort-threads",
        "1",
        "--expect",
        expect,
        image,
    )
    assert (report["errors"], report["mismatches"]) == (0, 0)


# ---- memory ------------------------------------------------------------------------------------------


def test_rss_stays_flat_over_many_calls(install: Install) -> None:
    """300 calls after 100 of warm-up (ONNX Runtime's arena grows ~5 MB over the first ~200 calls, in
    Python too). `make bench` runs 2000. The 4 MiB bound catches a leak of ~14 KB a call, such as a
    decoded image (17 KB here); smaller leaks are for bench's 2000 calls and valgrind."""
    report = _bench(
        install,
        "--mode",
        "line",
        "--warmup",
        "100",
        "--calls",
        "300",
        "--ort-threads",
        "1",
        eval_file(LINE_IMAGES[0]),
    )
    growth_kb = report["rss_kb_after"] - report["rss_kb_before"]
    print(f"RSS growth over 300 line calls: {growth_kb} KiB")
    assert growth_kb < 4 * 1024, report


def test_peak_memory_follows_the_pixels(install: Install, tmp_path: Path) -> None:
    """Issue 11: ocr_file over a decompression bomb of every format and a large text page peaks at
    most 8 B/px (+ a fixed 16 MiB) above ocr_file over as many small pages (see test_core_memory)."""
    side = 4000
    large, references = crafted.memory_workload(tmp_path, side)
    ocr_file = install.program("ocr_file")
    base_kb, _ = peak_rss_kb([ocr_file, *references], env=clean_env(), timeout=RUN_TIMEOUT_S)
    peak_kb, stderr = peak_rss_kb([ocr_file, *large], env=clean_env(), timeout=RUN_TIMEOUT_S)
    print(f"libcrnnocr: {(peak_kb - base_kb) * 1024 / side ** 2:.2f} B/px above small pages")
    assert stderr == ""
    assert peak_kb - base_kb <= BYTES_PER_PIXEL * side * side / 1024 + 16 * 1024


MEMCHECK = os.environ.get("CRNNOCR_VALGRIND") == "1"


@pytest.fixture(scope="module", autouse=True)
def memcheck(install: Install) -> Iterator[subprocess.Popen[bytes] | None]:
    """The valgrind run, started with the module: it needs ~3 CPU minutes on one core (valgrind
    runs a program's threads one at a time), so it runs beside this module's other tests, on the
    other core, instead of after them. ``test_valgrind_ocr_file`` waits for it and reads its log."""
    if not MEMCHECK or shutil.which("valgrind") is None:
        yield None
        return
    command = [
        "valgrind",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite",
        "--undef-value-errors=no",
        f"--suppressions={C_CLIENT / 'valgrind.supp'}",
        "--error-exitcode=99",
        f"--log-file={install.work / 'valgrind.log'}",
        str(install.program("ocr_file")),
        "--line",
        *(str(eval_file(p)) for p in LINE_IMAGES),
    ]
    # memcheck runs the engine tens of times slower than its time limit allows
    process = subprocess.Popen(command, env=clean_env(CRNNOCR_TIMEOUT_S="0"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


@pytest.mark.skipif(
    not MEMCHECK,
    reason="SKIPPED LOUDLY: the valgrind run needs ~3 CPU minutes (Python and its runtime in memcheck); "
    "`make test` and `make c-memcheck` set CRNNOCR_VALGRIND=1 to run it",
)
def test_valgrind_ocr_file(install: Install, memcheck: subprocess.Popen[bytes] | None) -> None:
    """No invalid access anywhere, no definitely-lost block; suppressions: c_client/valgrind.supp."""
    if memcheck is None:
        pytest.fail("valgrind missing (Debian package valgrind)")
    returncode = memcheck.wait(timeout=900)
    text = (install.work / "valgrind.log").read_text()
    findings = "\n\n".join(
        block for block in text.split("==\n") if "Invalid" in block or "definitely lost in" in block
    )
    assert returncode == 0 and "ERROR SUMMARY: 0 errors" in text, findings[:8000] or text[-4000:]
    assert "definitely lost: 0 bytes" in text


# ---- documents and formats (issue 13) --------------------------------------------------------------


def test_pdf_pages_through_ocr_file(install: Install, norm) -> None:
    receipts = receipt_pages(3)
    pdf = install.work / "receipts.pdf"
    pdf.write_bytes(scanned_pdf([s.read() for s in receipts]))
    pages = run([install.program("ocr_file"), pdf]).stdout.removesuffix("\n").split("\f")
    assert cer([s.text for s in receipts], pages, norm) <= RECEIPT_CER
    tiff = install.work / "receipts.tif"
    tiff.write_bytes(multipage_tiff([s.read() for s in receipts]))
    second = run([install.program("ocr_file"), "--pages", "2", tiff]).stdout.removesuffix("\n")
    assert second == pages[1] or cer([receipts[1].text], [second], norm) <= RECEIPT_CER


def test_document_accessors_and_every_format_match_python(install: Install, engine: Engine) -> None:
    pdf_bytes = scanned_pdf([render_text(["First page words"]), render_text(["Second page", "two rows"]),
                             render_text(["Third page"])])
    pdf = install.work / "three.pdf"
    pdf.write_bytes(pdf_bytes)
    out = run([install.program("test_api"), "document", pdf, "2-3"]).stdout
    expected = engine.recognize(pdf_bytes, RecognizeOptions(pages="2-3"))
    assert records(out, "recognize") == [["0", ""]]
    assert records(out, "document") == [["1", "2", str(len(expected.lines))]]
    first = 0
    for (_p, number, width, height, start, count, code), page in zip(records(out, "page"), expected.pages,
                                                                      strict=True):
        assert (int(number), int(width), int(height)) == (page.number, page.width, page.height)
        assert (int(start), int(count), code) == (first, len(page.lines), "0")
        first += len(page.lines)
    assert all(f"page_text\t{i}\t{page.text}\n" in out for i, page in enumerate(expected.pages))
    assert records(out, "page_out_of_range") == [["0", "1", str(ErrorCode.BAD_REQUEST.number)]]
    words = records(out, "word")
    assert [w[1] for w in words] == [w.text for line in expected.lines for w in line.words]
    assert all(w[3] == "0" for w in words)
    past_the_end = ["1", "-1.0", str(ErrorCode.BAD_REQUEST.number)]
    assert all(r[1:] == past_the_end for r in records(out, "word_out_of_range"))
    renders = {name: (code, size) for name, code, size in records(out, "render")}
    assert renders["unknown"] == (str(ErrorCode.BAD_REQUEST.number), "1")
    assert renders["null"] == (str(ErrorCode.BAD_REQUEST.number), "1")
    for fmt in ("text", "hocr", "alto", "tsv"):
        assert renders[fmt][0] == "0"
        assert Path(f"{pdf}.{fmt}").read_text(encoding="utf-8") == expected.render(fmt), fmt
    from_c = json.loads(Path(f"{pdf}.json").read_text(encoding="utf-8"))
    mine = expected.to_dict()
    from_c.pop("timing_ms")
    mine.pop("timing_ms")
    assert from_c == mine


def test_document_errors_in_c(install: Install, tmp_path: Path) -> None:
    good = eval_file(LINE_IMAGES[0])
    two_pages = scanned_pdf([render_text(["One"]), render_text(["Two"]), render_text(["Three"])])
    cases = {
        "encrypted.pdf": (encrypted_pdf(two_pages, tmp_path), ErrorCode.DOCUMENT_ENCRYPTED, "password"),
        "broken.pdf": (b"%PDF-1.7\n" + bytes(range(256)) * 8, ErrorCode.DECODE_FAILED, "PDF"),
        "huge.pdf": (oversized_pdf(), ErrorCode.IMAGE_TOO_LARGE, "40000×40000"),
        "three.pdf": (two_pages, ErrorCode.TOO_MANY_PAGES, "limit is 2"),
    }
    for name, (data, _code, _text) in cases.items():
        (install.work / name).write_bytes(data)
    env = clean_env(CRNNOCR_MAX_PAGES="2")
    inputs = [install.work / n for n in cases]
    out = run([install.program("test_api"), "inputs", good, *inputs], env=env).stdout
    failures = [c for c in records(out, "call") if c[0] not in ("good", "null", "empty")]
    for (name, code, message, text), (want_code, want_text) in zip(
            failures, [(c, t) for _d, c, t in cases.values()], strict=True):
        assert (int(code), text) == (want_code.number, "(null)"), name
        assert want_text in message, message
    ocr_file = install.program("ocr_file")
    for name, (_data, code, _text) in cases.items():
        result = run([ocr_file, install.work / name], env=env, check=False)
        assert result.returncode == code.number, (name, result.stderr)
    beyond = run([ocr_file, "--pages", "9", install.work / "three.pdf"], check=False)
    assert beyond.returncode == ErrorCode.BAD_REQUEST.number and "past the end" in beyond.stderr
    assert run([ocr_file, "--pages", "1-2", install.work / "three.pdf"], env=env).stdout == "One\fTwo\n"
