"""The engines a benchmark run compares, and how to start each one in its own process."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BENCH_VENV = ROOT / ".venv-bench"
ONNX_THREADS = 2  # every ONNX engine gets the same intra-op thread count (the machine has 2 cores)
CRNNOCR_BACKENDS = ("onnxruntime", "openvino")  # crnnocr's inference runtimes, each benched


@dataclass(frozen=True)
class EngineSpec:
    key: str  # short name used for file names and --engines
    title: str  # how the report names it
    python: Path
    module: str  # runner module, run as ``python -m MODULE JOB.json``
    options: dict[str, Any] = field(default_factory=dict)
    version_of: str = ""  # distribution whose version the report shows
    install_hint: str = ""
    env: dict[str, str] = field(default_factory=dict)
    is_ours: bool = False

    def command(self, job: Path) -> list[str]:
        return [str(self.python), "-m", self.module, str(job)]

    def unavailable(self) -> str | None:
        """Why this engine cannot run here, or None when it can."""
        if not self.python.exists():
            return f"{self.python.relative_to(ROOT)} missing ({self.install_hint})"
        if self.is_ours:
            return self._engine_load_error()
        if self.module == "bench.engines.tesseract":
            if shutil.which("tesseract") is None:
                return f"tesseract not installed ({self.install_hint})"
            langs = subprocess.run(
                ["tesseract", "--list-langs"], capture_output=True, text=True, check=False
            ).stdout
            missing = [lang for lang in self.options["langs"].split("+") if lang not in langs.split()]
            if missing:
                return f"tesseract languages missing: {', '.join(missing)} ({self.install_hint})"
        return None

    def _engine_load_error(self) -> str | None:
        code = (
            "import sys\nfrom ocr_core import Engine, EngineConfig\n"
            "Engine.load(EngineConfig.from_env(pack=sys.argv[1], backend=sys.argv[2]))"
        )
        proc = subprocess.run(
            [str(self.python), "-c", code, self.options["pack"], self.options["backend"]],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode == 0:
            return None
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return f"Engine.load failed: {last} ({self.install_hint})"

    def version(self) -> str:
        if self.module == "bench.engines.tesseract":
            out = subprocess.run(["tesseract", "--version"], capture_output=True, text=True, check=False)
            return (out.stdout or out.stderr).split("\n", 1)[0].replace("tesseract ", "")
        if self.is_ours:  # the version, and the runtime and precision that actually run
            code = (
                "import ocr_core; from ocr_core import Engine, EngineConfig\n"
                f"r = Engine.load(EngineConfig.from_env(backend={self.options['backend']!r})).runtime\n"
                "print(f'{ocr_core.__version__} ({r.backend} {r.version}, {r.precision})')"
            )
        else:
            code = f"import importlib.metadata as m; print(m.version({self.version_of!r}))"
        out = subprocess.run(
            [str(self.python), "-c", code], capture_output=True, text=True, check=False, cwd=ROOT
        )
        return out.stdout.strip() or "?"


def crnnocr(pack: str, backend: str = "onnxruntime", threads: int = ONNX_THREADS) -> EngineSpec:
    """crnnocr with one pack on one runtime; the key of the ONNX Runtime one is the historical one."""
    key = f"crnnocr-{pack}" + ("" if backend == "onnxruntime" else f"-{backend}")
    title = f"crnnocr {pack} ({backend}"
    if threads != ONNX_THREADS:
        key, title = f"{key}-{threads}t", f"{title}, {threads} thread{'s' if threads > 1 else ''}"
    return EngineSpec(
        key,
        f"{title})",
        Path(sys.executable),
        "bench.engines.crnnocr",
        {"pack": pack, "threads": threads, "backend": backend},
        install_hint=f"make models PACK={pack}",
        is_ours=True,
    )


def peers() -> list[EngineSpec]:
    return [
        EngineSpec(
            "rapidocr-v6",
            "RapidOCR (PP-OCRv6-small)",
            BENCH_VENV / "v6/bin/python",
            "bench.engines.rapidocr",
            {"package": "rapidocr", "threads": ONNX_THREADS},
            "rapidocr",
            "make bench-venv",
        ),
        EngineSpec(
            "rapidocr-v4",
            "rapidocr-onnxruntime (PP-OCRv4)",
            BENCH_VENV / "v4/bin/python",
            "bench.engines.rapidocr",
            {"package": "rapidocr_onnxruntime", "threads": ONNX_THREADS},
            "rapidocr-onnxruntime",
            "make bench-venv",
        ),
        EngineSpec(
            "tesseract",
            "Tesseract (chi_sim+eng, 1 thread)",
            Path(sys.executable),
            "bench.engines.tesseract",
            {"langs": "chi_sim+eng"},
            install_hint="apt-get install tesseract-ocr tesseract-ocr-chi-sim",
        ),
    ]
