"""Model packs as the manifest describes them: specs, file locations and a cheap installed check.

A pack lives in ``<model_dir>/<pack>/``: ``det.onnx``, ``rec.onnx``, optionally ``cls.onnx`` and
``charset.txt``, and ``cache/`` with ONNX Runtime's pre-optimised graphs and OpenVINO's compiled
models. This is what every run
needs; fetching and hashing (``ocr_core.models``) are kept apart so a cold start does not import
them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ErrorCode, OcrError

MANIFEST_NAME = "manifest.json"
ROLES = ("det", "rec", "cls", "charset")
FIX_HINT = "run `make models PACK={pack}` in the crnnocr checkout"


@dataclass(frozen=True)
class FileSpec:
    """One file of a pack: where it sits in the wheel and what it must hash to."""

    role: str
    member: str
    size: int
    sha256: str

    @property
    def filename(self) -> str:
        return "charset.txt" if self.role == "charset" else f"{self.role}.onnx"


@dataclass(frozen=True)
class DetSpec:
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


@dataclass(frozen=True)
class RecSpec:
    """The recogniser's input and alphabet.

    ``channels`` 3 (BGR, PP-OCR) or 1 (gray, classic CRNN); ``height`` the fixed input height;
    pixels are normalised as ``(x / 255 - mean) / std``. The charset comes from the model's
    metadata key (``charset_key``) or from the pack's ``charset.txt``; class 0 is the CTC blank
    and ``append_space`` adds " " as the last class, as PP-OCR models expect.
    """

    channels: int
    height: int
    mean: float
    std: float
    charset_key: str | None
    append_space: bool
    min_width: int = 96


@dataclass(frozen=True)
class ClsSpec:
    height: int
    width: int
    labels: tuple[int, ...]


@dataclass(frozen=True)
class PackSpec:
    name: str
    wheel: str | None
    files: Mapping[str, FileSpec]
    det: DetSpec | None
    rec: RecSpec
    cls: ClsSpec | None

    def path(self, model_dir: Path, role: str) -> Path:
        return model_dir / self.name / self.files[role].filename


def _parse_pack(name: str, raw: Mapping[str, Any]) -> PackSpec:
    try:
        files = {
            role: FileSpec(role, spec["member"], int(spec["size"]), spec["sha256"].lower())
            for role, spec in raw["files"].items()
        }
        unknown = set(files) - set(ROLES)
        if unknown or "rec" not in files:
            raise ValueError(f"roles must be among {ROLES} and include rec, got {sorted(files)}")
        rec_raw = raw["rec"]
        charset = rec_raw["charset"]
        rec = RecSpec(
            channels=int(rec_raw["channels"]),
            height=int(rec_raw["height"]),
            mean=float(rec_raw.get("mean", 0.5)),
            std=float(rec_raw.get("std", 0.5)),
            charset_key=charset.get("metadata_key"),
            append_space=bool(rec_raw.get("append_space", False)),
            min_width=int(rec_raw.get("min_width", 96)),
        )
        if rec.channels not in (1, 3) or not 8 <= rec.height <= 256:
            raise ValueError("rec.channels must be 1 or 3 and rec.height within 8..256")
        if rec.charset_key is None and "charset" not in files:
            raise ValueError("rec.charset needs a metadata_key or a charset file")
        det = DetSpec(tuple(raw["det"]["mean"]), tuple(raw["det"]["std"])) if "det" in files else None
        cls = None
        if "cls" in files:
            cls = ClsSpec(int(raw["cls"]["height"]), int(raw["cls"]["width"]), tuple(raw["cls"]["labels"]))
        return PackSpec(name, raw.get("wheel"), files, det, rec, cls)
    except (KeyError, TypeError, ValueError) as exc:
        raise OcrError(
            ErrorCode.MODEL_UNAVAILABLE, f"manifest entry for pack {name!r} is invalid: {exc}"
        ) from None


def load_manifest(model_dir: Path) -> dict[str, PackSpec]:
    """All packs the manifest in ``model_dir`` describes, installed or not."""
    path = model_dir / MANIFEST_NAME
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        packs = raw["packs"]
    except FileNotFoundError:
        raise OcrError(
            ErrorCode.MODEL_UNAVAILABLE,
            f"no {MANIFEST_NAME} in model directory {model_dir}; set CRNNOCR_MODEL_DIR to the "
            "directory `make models` filled",
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OcrError(ErrorCode.MODEL_UNAVAILABLE, f"cannot read {path}: {exc}") from None
    return {name: _parse_pack(name, spec) for name, spec in packs.items()}


def pack_spec(model_dir: Path, pack: str) -> PackSpec:
    packs = load_manifest(model_dir)
    if pack not in packs:
        raise OcrError(
            ErrorCode.MODEL_UNAVAILABLE,
            f"unknown model pack {pack!r}; the manifest lists {', '.join(sorted(packs))}",
        )
    return packs[pack]


def check_installed(model_dir: Path, spec: PackSpec, roles: Sequence[str] | None = None) -> None:
    """Cheap check that the pack's files are present and of the right size (no hashing)."""
    for role in roles or spec.files:
        path = spec.path(model_dir, role)
        try:
            size = path.stat().st_size
        except OSError:
            raise OcrError(
                ErrorCode.MODEL_UNAVAILABLE,
                f"model file {path} is missing; {FIX_HINT.format(pack=spec.name)}",
            ) from None
        if size != spec.files[role].size:
            raise OcrError(
                ErrorCode.MODEL_UNAVAILABLE,
                f"model file {path} is corrupt (size {size}, expected {spec.files[role].size}); "
                f"{FIX_HINT.format(pack=spec.name)}",
            )


def installed_packs(model_dir: Path) -> list[str]:
    """Names of the packs whose files are all present, in manifest order."""
    try:
        packs = load_manifest(Path(model_dir))
    except OcrError:
        return []
    names = []
    for name, spec in packs.items():
        try:
            check_installed(Path(model_dir), spec)
        except OcrError:
            continue
        names.append(name)
    return names


def optimized_model_path(model_dir: Path, spec: PackSpec, role: str, onnxruntime_version: str) -> Path:
    """Where ONNX Runtime's pre-optimised graph of a pack's model is cached (weights beside it).

    Keyed by the model's hash and the runtime's version: a graph optimised by one version of
    ONNX Runtime is only known to load in that version.
    """
    file = spec.files[role]
    return model_dir / spec.name / "cache" / f"ort-{onnxruntime_version}" / f"{role}.{file.sha256[:16]}.onnx"


def weights_path(optimized_model: Path) -> Path:
    """The weights file that a cached graph names as its external data."""
    return optimized_model.with_suffix(".weights")



def _openvino_cache(model_dir: Path, spec: PackSpec, role: str, openvino_version: str) -> tuple[Path, str]:
    directory = model_dir / spec.name / "cache" / f"openvino-{openvino_version}"
    return directory, f"{role}.{spec.files[role].sha256[:16]}"


def compiled_model_path(
    model_dir: Path, spec: PackSpec, role: str, openvino_version: str, precision: str
) -> Path:
    """Where OpenVINO's compiled model of a pack's model is cached, for one precision.

    Keyed like the ONNX Runtime cache, plus the precision: a bf16 model is compiled differently
    (and from weights stored as f16) from an f32 one.
    """
    cache, stem = _openvino_cache(model_dir, spec, role, openvino_version)
    return cache / f"{stem}.{precision}.blob"


def metadata_path(model_dir: Path, spec: PackSpec, role: str, openvino_version: str) -> Path:
    """The JSON file beside the compiled models holding the source model's custom metadata
    (a compiled model keeps none; the recogniser's charset is there)."""
    cache, stem = _openvino_cache(model_dir, spec, role, openvino_version)
    return cache / f"{stem}.metadata.json"
