"""Is what will load what was written? Checksums of a pack's models and of the runtimes' caches.

The manifest gives each model file's sha256. A runtime's cache entry (ONNX Runtime's optimised
graph and its weights file, OpenVINO's compiled blob and its metadata JSON) gets a stamp when it
is written: ``<entry>.stamp.json`` beside it, giving each file's size, mtime and sha256. An entry
without a stamp counts as missing, so it is rebuilt (or bypassed) like one that is not there.

What a check costs decides where it runs:

- **stat** (sizes and mtimes against the stamp; microseconds): every load, and the health check.
  Truncated or emptied files fail it, and so does any rewrite (zeroing a file in place changes
  its mtime). A moved copy keeps its mtimes (``copy2``, ``cp -p``); a stamp whose mtimes differ
  while the content matches is written again where the directory allows it.
- **sha256** (~26 ms for the recogniser's 21 MB of weights on the 2-core test machine, under
  load): whenever the stat differs from the stamp; once per process and file in a long-lived
  process (a pool worker, a C host, a Python program), memoised on the file's stat; always in
  ``make models``; and on a source model before a cache is built from it or it is loaded
  directly. One-shot processes (the CLI, a CGI hit) trust a stat that matches: hashing there
  would add ~15% to every cold line, and ``make models`` and the pool verify the same files.
"""

from __future__ import annotations

import enum
import functools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .backends import OPENVINO, RuntimeInfo
from .errors import ErrorCode, OcrError
from .packs import (
    FIX_HINT,
    PackSpec,
    check_installed,
    compiled_model_path,
    metadata_path,
    optimized_model_path,
    weights_path,
)

STAMP_SUFFIX = ".stamp.json"
STAGING_PREFIX = ".writing-"
# A cache writer stages its files in a directory of its own for seconds; one much older belonged to
# a writer killed mid-write (SIGKILL, or a CGI's watchdog ending the process with os._exit).
ABANDONED_STAGING_S = 600
_STAMP_FIELDS = {"size": int, "mtime_ns": int, "sha256": str}


class CacheState(enum.StrEnum):
    OK = "ok"  # every file as stamped
    MISSING = "missing"  # no stamp: never written, or written by a version that wrote none
    CHANGED = "changed"  # sizes as stamped, mtimes not: only a checksum can tell (verify_cache resolves it)
    DAMAGED = "damaged"  # a file missing, of another size, failing its checksum, or a bad stamp


@dataclass(frozen=True)
class CacheCheck:
    """A cache entry's state and, unless it is OK, why (file names only: no directories)."""

    state: CacheState
    reason: str = ""


def stamp_path(files: Sequence[Path]) -> Path:
    """The stamp of a cache entry: beside its first file, named after it."""
    return files[0].with_suffix(STAMP_SUFFIX)


@functools.cache
def _sha256(path: str, size: int, mtime_ns: int, ctime_ns: int, inode: int) -> str:
    """sha256 of a file, memoised on its stat: a file that changes is a new key, hashed again
    (its ctime changes even when its mtime is put back)."""
    import hashlib  # only here: a one-shot process whose stamps match hashes nothing

    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def sha256_of(path: Path) -> str:
    """The file's sha256, computed once per process while its size, times and inode stay put."""
    st = path.stat()
    return _sha256(str(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def write_stamp(files: Sequence[Path]) -> None:
    """Stamp a cache entry just written (its files in place): atomically, so a reader sees the old
    stamp or the new one. Raises OSError when the directory cannot be written."""
    import tempfile  # only here, as in the writers of the caches

    entries = {}
    for path in files:
        st = path.stat()
        entries[path.name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256_of(path)}
    target = stamp_path(files)
    fd, staged = tempfile.mkstemp(dir=target.parent, prefix=".stamp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"files": entries}, out)
        os.chmod(staged, 0o644)
        os.replace(staged, target)
    except BaseException:
        Path(staged).unlink(missing_ok=True)
        raise


def remove_abandoned_staging(cache_dir: Path) -> None:
    """Delete the staging directories killed writers left in ``cache_dir`` (best effort)."""
    import shutil
    import time

    cutoff = time.time() - ABANDONED_STAGING_S
    for staging in cache_dir.glob(STAGING_PREFIX + "*"):
        try:
            if staging.stat().st_mtime < cutoff:
                shutil.rmtree(staging, ignore_errors=True)
        except OSError:
            pass  # another writer removed it first


def _read_stamp(files: Sequence[Path]) -> dict[str, dict[str, object]] | CacheCheck:
    try:
        raw = json.loads(stamp_path(files).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return CacheCheck(CacheState.MISSING, "no checksum stamp")
    except (OSError, ValueError):
        return CacheCheck(CacheState.DAMAGED, f"{stamp_path(files).name} is unreadable")
    entries = raw.get("files") if isinstance(raw, dict) else None
    if not isinstance(entries, dict) or not all(
        isinstance(entries.get(path.name), dict)
        and all(isinstance(entries[path.name].get(key), kind) for key, kind in _STAMP_FIELDS.items())
        for path in files
    ):
        return CacheCheck(CacheState.DAMAGED, f"{stamp_path(files).name} does not describe the entry")
    return entries


def _against_stamp(files: Sequence[Path], entries: dict[str, dict[str, object]]) -> CacheCheck:
    changed = []
    for path in files:
        stamped = entries[path.name]
        try:
            st = path.stat()
        except OSError:
            return CacheCheck(CacheState.DAMAGED, f"{path.name} is missing")
        if st.st_size != stamped["size"]:
            return CacheCheck(
                CacheState.DAMAGED, f"{path.name} has {st.st_size} bytes, stamped {stamped['size']}"
            )
        if st.st_mtime_ns != stamped["mtime_ns"]:
            changed.append(path.name)
    if changed:
        return CacheCheck(CacheState.CHANGED, f"{', '.join(changed)} rewritten since stamped")
    return CacheCheck(CacheState.OK)


def verify_cache(files: Sequence[Path], *, always_hash: bool) -> CacheCheck:
    """The cache entry against its stamp: OK, MISSING or DAMAGED (never CHANGED).

    Checksums are compared when the stat differs from the stamp, and always with ``always_hash``
    (memoised per process). A rewrite that kept the content gets a fresh stamp if it can.
    """
    entries = _read_stamp(files)
    if isinstance(entries, CacheCheck):
        return entries
    check = _against_stamp(files, entries)
    if check.state is CacheState.DAMAGED or (check.state is CacheState.OK and not always_hash):
        return check
    try:
        failed = [path.name for path in files if sha256_of(path) != entries[path.name]["sha256"]]
    except OSError:
        return CacheCheck(CacheState.DAMAGED, "a file of the entry cannot be read")
    if failed:
        return CacheCheck(CacheState.DAMAGED, f"{', '.join(failed)} fails its checksum")
    if check.state is CacheState.CHANGED:
        try:
            write_stamp(files)
        except OSError:
            pass  # a read-only tree: each process checks the content again, and it still matches
    return CacheCheck(CacheState.OK)


def verify_model_file(model_dir: Path, spec: PackSpec, role: str) -> None:
    """A pack's source model file against the manifest, by size and sha256 (once per process).

    Raises OcrError(model_unavailable) naming the file (not its directory) and the fix."""
    path, expected = spec.path(model_dir, role), spec.files[role]
    try:
        good = path.stat().st_size == expected.size and sha256_of(path) == expected.sha256
    except OSError:
        good = False
    if not good:
        raise OcrError(
            ErrorCode.MODEL_UNAVAILABLE,
            f"model file {path.name} of pack {spec.name!r} is missing or fails its sha256 check; "
            f"{FIX_HINT.format(pack=spec.name)}",
            str(path),
        )


def cache_entry(model_dir: Path, spec: PackSpec, role: str, runtime: RuntimeInfo) -> tuple[Path, Path]:
    """The files of a model's cache entry for a runtime: ONNX Runtime's optimised graph and its
    weights, or OpenVINO's compiled model (for the runtime's precision) and its metadata."""
    if runtime.backend == OPENVINO:
        return (compiled_model_path(model_dir, spec, role, runtime.version, runtime.precision),
                metadata_path(model_dir, spec, role, runtime.version))
    graph = optimized_model_path(model_dir, spec, role, runtime.version)
    return graph, weights_path(graph)


def check_pack(model_dir: Path, spec: PackSpec, runtime: RuntimeInfo) -> dict[str, str]:
    """What a health check says of the pack on ``runtime``, without loading a model: each
    model's state, "ok" when its cache entry matches its stamp.

    A cache entry that is missing or damaged is rebuilt by the first call that needs it, from
    the pack's model, which is verified here by its sha256 for that reason (only then: a cost of
    milliseconds, on a path that is rare). Raises OcrError(model_unavailable) when a file of the
    pack is missing, of the wrong size, or fails its checksum: then no call could succeed."""
    check_installed(model_dir, spec)
    states = {}
    for role in spec.files:
        if role == "charset":
            continue
        check = verify_cache(cache_entry(model_dir, spec, role, runtime), always_hash=False)
        if check.state is CacheState.OK:
            states[role] = "ok"
        else:
            verify_model_file(model_dir, spec, role)
            states[role] = f"cache {check.state.value} ({check.reason}): rebuilt on first use"
    return states
