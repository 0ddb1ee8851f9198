"""Model packs as the manifest describes them: specs, file locations and a cheap installed check.

A pack lives in ``<model_dir>/<pack>/``: ``det.onnx``, ``rec.onnx``, optionally ``cls.onnx`` and
``charset.txt``, and ``cache/`` with ONNX Runtime's pre-optimised graphs and OpenVINO's compiled
models. This is what every run
needs; fetching and hashing (``ocr_core.models``) are kept apart so a cold start does not import
them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ErrorCode, OcrError

MANIFEST_NAME = "manifest.json"
ROLES = ("det", "rec", "cls", "charset")
ROLE_NAMES = {"det": "text detector", "rec": "recogniser", "cls": "orientation classifier",
              "charset": "charset"}
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


_REQUIRED = object()  # a manifest field with no default


class _Invalid(ValueError):
    """A manifest field of the wrong type or out of range; the message names the field."""


class _Fields:
    """Typed reads of one JSON object of the manifest; ``where`` names it in error messages."""

    def __init__(self, raw: object, where: str) -> None:
        if not isinstance(raw, dict):
            raise _Invalid(f"{where} must be an object")
        self._raw, self._where = raw, where

    def _get(self, key: str, default: object) -> object:
        if key not in self._raw:
            if default is _REQUIRED:
                raise _Invalid(f"{self._where}.{key} is missing")
            return default
        return self._raw[key]

    def obj(self, key: str) -> _Fields:
        return _Fields(self._get(key, _REQUIRED), f"{self._where}.{key}")

    def keys(self) -> list[str]:
        return list(self._raw)

    def text(self, key: str, default: object = _REQUIRED) -> Any:
        value = self._get(key, default)
        if value is not default and not isinstance(value, str):
            raise _Invalid(f"{self._where}.{key} must be a string")
        return value

    def integer(self, key: str, default: object = _REQUIRED, low: int = 0, high: int = 2**62) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _Invalid(f"{self._where}.{key} must be an integer within {low}..{high}")
        return value

    def number(self, key: str, default: object = _REQUIRED) -> float:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise _Invalid(f"{self._where}.{key} must be a number")
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise _Invalid(f"{self._where}.{key} must be true or false")
        return value

    def numbers(self, key: str, count: int) -> tuple[float, ...]:
        values = self._get(key, _REQUIRED)
        if not isinstance(values, list) or len(values) != count or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values
        ):
            raise _Invalid(f"{self._where}.{key} must be a list of {count} numbers")
        return tuple(float(v) for v in values)


def _parse_pack(name: str, raw: object) -> PackSpec:
    """One pack's entry, every field checked for its type and range."""
    try:
        pack = _Fields(raw, f"packs.{name}")
        listed = pack.obj("files")
        files = {}
        for role in listed.keys():
            entry = listed.obj(role)
            sha256 = entry.text("sha256").lower()
            if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
                raise _Invalid(f"packs.{name}.files.{role}.sha256 must be 64 hex digits")
            files[role] = FileSpec(role, entry.text("member"), entry.integer("size", low=1), sha256)
        if set(files) - set(ROLES) or "rec" not in files:
            raise _Invalid(f"packs.{name}.files: roles must be among {', '.join(ROLES)} and include rec")
        rec_raw = pack.obj("rec")
        charset = rec_raw.obj("charset")
        rec = RecSpec(
            channels=rec_raw.integer("channels", low=1, high=3),
            height=rec_raw.integer("height", low=8, high=256),
            mean=rec_raw.number("mean", 0.5),
            std=rec_raw.number("std", 0.5),
            charset_key=charset.text("metadata_key", None),
            append_space=rec_raw.flag("append_space", False),
            min_width=rec_raw.integer("min_width", 96, low=1, high=4096),
        )
        if rec.channels == 2 or rec.std == 0:
            raise _Invalid(f"packs.{name}.rec: channels must be 1 or 3 and std not 0")
        if rec.charset_key is None and "charset" not in files:
            raise _Invalid(f"packs.{name}.rec.charset needs a metadata_key or a charset file")
        det = None
        if "det" in files:
            det_raw = pack.obj("det")
            det = DetSpec(det_raw.numbers("mean", 3), det_raw.numbers("std", 3))  # type: ignore[arg-type]
            if 0 in det.std:
                raise _Invalid(f"packs.{name}.det.std must not hold 0")
        cls = None
        if "cls" in files:
            cls_raw = pack.obj("cls")
            labels = tuple(int(v) for v in cls_raw.numbers("labels", 2))
            if sorted(labels) != [0, 180]:
                raise _Invalid(f"packs.{name}.cls.labels must be 0 and 180")
            cls = ClsSpec(cls_raw.integer("height", low=8, high=256),
                          cls_raw.integer("width", low=8, high=4096), labels)
        return PackSpec(name, pack.text("wheel", None), files, det, rec, cls)
    except _Invalid as exc:
        raise OcrError(ErrorCode.MODEL_UNAVAILABLE, f"the model manifest is invalid: {exc}") from None


def load_manifest(model_dir: Path) -> dict[str, PackSpec]:
    """All packs the manifest in ``model_dir`` describes, installed or not.

    Raises OcrError(model_unavailable) when the manifest is missing, not JSON, or has a field
    of the wrong type: the message says which field, the detail where the file is."""
    path = model_dir / MANIFEST_NAME
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OcrError(
            ErrorCode.MODEL_UNAVAILABLE,
            f"there is no {MANIFEST_NAME} in the model directory; set CRNNOCR_MODEL_DIR to the "
            "directory `make models` filled",
            str(path),
        ) from None
    except (OSError, ValueError) as exc:  # unreadable, not UTF-8, not JSON
        raise OcrError(
            ErrorCode.MODEL_UNAVAILABLE, f"the model manifest cannot be read as JSON ({type(exc).__name__})",
            f"{path}: {exc}",
        ) from None
    packs = raw.get("packs") if isinstance(raw, dict) else None
    if not isinstance(packs, dict):
        raise OcrError(ErrorCode.MODEL_UNAVAILABLE, "the model manifest is invalid: packs must be an object",
                       str(path))
    try:
        return {name: _parse_pack(name, spec) for name, spec in packs.items()}
    except OcrError as exc:
        raise OcrError(exc.code, exc.message, str(path)) from None


def pack_spec(model_dir: Path, pack: str) -> PackSpec:
    packs = load_manifest(model_dir)
    if pack not in packs:
        raise OcrError(
            ErrorCode.MODEL_UNAVAILABLE,
            f"unknown model pack {pack!r}; the manifest lists {', '.join(sorted(packs))}",
        )
    return packs[pack]


def unloadable(spec: PackSpec, role: str, detail: str) -> OcrError:
    """model_unavailable for a model of the pack that its runtime refused to load; ``detail`` (the
    path and the runtime's own words) is for the operator's log."""
    return OcrError(
        ErrorCode.MODEL_UNAVAILABLE,
        f"the {ROLE_NAMES[role]} of pack {spec.name!r} cannot be loaded; {FIX_HINT.format(pack=spec.name)}",
        detail,
    )


def check_installed(model_dir: Path, spec: PackSpec, roles: Sequence[str] | None = None) -> None:
    """Cheap check that the pack's files are present and of the right size (no hashing)."""
    for role in roles or spec.files:
        path = spec.path(model_dir, role)
        try:
            size = path.stat().st_size
        except OSError:
            raise OcrError(
                ErrorCode.MODEL_UNAVAILABLE,
                f"model file {path.name} of pack {spec.name!r} is missing; {FIX_HINT.format(pack=spec.name)}",
                str(path),
            ) from None
        if size != spec.files[role].size:
            raise OcrError(
                ErrorCode.MODEL_UNAVAILABLE,
                f"model file {path.name} of pack {spec.name!r} is corrupt (size {size}, expected "
                f"{spec.files[role].size}); {FIX_HINT.format(pack=spec.name)}",
                str(path),
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
