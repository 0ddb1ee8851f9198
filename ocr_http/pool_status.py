"""The pool's state, shared through one small memory-mapped file in its run directory.

The supervisor is the only writer; workers read it for the health document and the metrics,
and the tests for which worker is busy. Stdlib only. Every field is an aligned 8-byte value,
written whole, so a reader sees each field old or new, never torn; fields are not read as one
atomic set (a snapshot may mix two moments a microsecond apart, which no reader minds).
"""

from __future__ import annotations

import enum
import mmap
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"crnnpool"
FORMAT_VERSION = 1
MAX_WORKERS = 256
FILE_NAME = "status"

COUNTERS = (
    "pid", "started_at", "generation", "workers_target", "queue_max", "queue_depth", "busy", "alive",
    "served", "restarts_recycled", "restarts_died", "restarts_reloaded", "restarts_timed_out",
    "rejected_busy", "timeouts",
)
RESTART_REASONS = ("recycled", "died", "reloaded", "timed_out")
_HEAD = struct.Struct("<8sQ")
_FIELDS = struct.Struct("<" + "d" * len(COUNTERS))
_SLOT = struct.Struct("<qqqqd")  # pid, generation, state, served, started_at
SLOTS_AT = _HEAD.size + _FIELDS.size
SIZE = SLOTS_AT + MAX_WORKERS * _SLOT.size


class WorkerState(enum.IntEnum):
    FREE = 0  # no worker in this slot
    STARTING = 1  # forked, loading the engine
    IDLE = 2
    BUSY = 3
    RETIRING = 4  # told to finish its request and exit


@dataclass(frozen=True)
class WorkerInfo:
    slot: int
    pid: int
    generation: int
    state: WorkerState
    served: int
    started_at: float


@dataclass(frozen=True)
class PoolSnapshot:
    counters: dict[str, float]
    workers: tuple[WorkerInfo, ...]

    def health(self) -> dict[str, object]:
        """The ``pool`` object of the health document: counts only, no pids or paths."""
        c = self.counters
        return {
            "workers": int(c["workers_target"]),
            "alive": int(c["alive"]),
            "busy": int(c["busy"]),
            "queued": int(c["queue_depth"]),
            "queue_max": int(c["queue_max"]),
            "requests_served": int(c["served"]),
            "worker_restarts": int(sum(c[f"restarts_{r}"] for r in RESTART_REASONS)),
            "generation": int(c["generation"]),
            "uptime_s": round(max(0.0, time.time() - c["started_at"]), 1),
        }


class StatusBoard:
    """The mapped file: ``create`` it in the supervisor, ``open`` it anywhere else."""

    def __init__(self, mapping: mmap.mmap) -> None:
        self._map = mapping

    @classmethod
    def create(cls, run_dir: Path) -> StatusBoard:
        path = run_dir / FILE_NAME
        partial = run_dir / f".{FILE_NAME}.{os.getpid()}"
        with open(partial, "wb") as out:
            out.write(_HEAD.pack(MAGIC, FORMAT_VERSION) + bytes(SIZE - _HEAD.size))
        partial.chmod(0o644)
        os.replace(partial, path)
        with open(path, "r+b") as file:
            return cls(mmap.mmap(file.fileno(), SIZE))

    @classmethod
    def open(cls, run_dir: Path) -> StatusBoard:
        with open(run_dir / FILE_NAME, "rb") as file:
            mapping = mmap.mmap(file.fileno(), SIZE, prot=mmap.PROT_READ)
        magic, version = _HEAD.unpack_from(mapping)
        if (magic, version) != (MAGIC, FORMAT_VERSION):
            raise ValueError(f"{run_dir / FILE_NAME} is not a crnnocr pool status file")
        return cls(mapping)

    def set(self, name: str, value: float) -> None:
        struct.pack_into("<d", self._map, _HEAD.size + 8 * COUNTERS.index(name), value)

    def add(self, name: str, delta: float = 1) -> None:
        offset = _HEAD.size + 8 * COUNTERS.index(name)
        struct.pack_into("<d", self._map, offset, struct.unpack_from("<d", self._map, offset)[0] + delta)

    def set_worker(self, slot: int, pid: int, generation: int, state: WorkerState, served: int,
                   started_at: float) -> None:
        _SLOT.pack_into(self._map, SLOTS_AT + slot * _SLOT.size, pid, generation, state, served, started_at)

    def clear_worker(self, slot: int) -> None:
        _SLOT.pack_into(self._map, SLOTS_AT + slot * _SLOT.size, 0, 0, WorkerState.FREE, 0, 0.0)

    def snapshot(self) -> PoolSnapshot:
        counters = dict(zip(COUNTERS, _FIELDS.unpack_from(self._map, _HEAD.size), strict=True))
        workers = []
        for slot in range(MAX_WORKERS):
            offset = SLOTS_AT + slot * _SLOT.size
            pid, generation, state, served, started = _SLOT.unpack_from(self._map, offset)
            if state != WorkerState.FREE:
                workers.append(WorkerInfo(slot, pid, generation, WorkerState(state), served, started))
        return PoolSnapshot(counters, tuple(workers))

    def close(self) -> None:
        self._map.close()
