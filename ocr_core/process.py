"""Process-wide knobs, in one place: every entry point calls this module instead of setting them.

Each knob is an environment variable read once, when a native library loads, so it must be set
before numpy, OpenCV or ONNX Runtime is imported. An operator's explicit value always wins.

- ``ORT_DISABLE_TELEMETRY=1``: ONNX Runtime would otherwise write a device id under ``$HOME/.cache``
  and try to send telemetry; a web server's user has no writable home, and nothing here may phone
  out. Applied on every import of ``ocr_core``.
- No OpenVINO telemetry: ``import openvino`` imports its model converter, which starts
  ``openvino_telemetry`` with consent assumed unless ``$HOME/intel/openvino_telemetry`` says no,
  writes a client id under ``$HOME/intel`` and sends events. Its only documented opt-out
  (``opt_in_out --opt_out``) is itself a file in that HOME, which a service user may not have, and
  the package reads no environment variable. Marking the module as absent in ``sys.modules``
  takes the converter's own fallback for an install without it (``telemetry_stub``, no-ops).
  Applied on every import of ``ocr_core``, unless the host process imported the package itself.
- ``OPENBLAS_NUM_THREADS=1``: numpy and OpenCV each bring an OpenBLAS that starts a thread per core
  when it loads, and those threads spin (20-60 ms outliers in a cold run, more under load). The
  core's matrix products are 2×2 and need no BLAS threads.
- ``CRNNOCR_THREADS=1`` for processes that run side by side (CGI hits, pool workers): ONNX
  Runtime threads of many processes would fight over the same cores.
- ``CRNNOCR_PROCESS``, the process's own statement of what it is (``one-shot``: the CLI, a CGI hit;
  ``worker``: a pool worker, one call at a time; unset: a long-lived host such as a Python
  program or a C program, whose threads may call at once). It is not an operator's setting:
  ``configure_process`` writes it, so a child never keeps its parent's. ``backend=auto`` and
  OpenVINO's stream count read it (``ocr_core.backends``).

``release_free_memory`` is here too: a long-lived process calls it between units of work.
``available_cores`` too: a pool supervisor sizes itself with it and must not import
ONNX Runtime. Stdlib only and cheap: a CGI health check imports this module.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

ALWAYS: dict[str, str] = {"ORT_DISABLE_TELEMETRY": "1"}
NATIVE_LOAD: dict[str, str] = {"OPENBLAS_NUM_THREADS": "1"}
SIDE_BY_SIDE: dict[str, str] = {"CRNNOCR_THREADS": "1"}
OPENVINO_TELEMETRY = "openvino_telemetry"
PROCESS_KIND = "CRNNOCR_PROCESS"
ONE_SHOT, WORKER = "one-shot", "worker"


def _set_defaults(values: dict[str, str]) -> None:
    for name, value in values.items():
        os.environ.setdefault(name, value)


def apply_always() -> None:
    """The knobs every process that imports ``ocr_core`` gets (``ocr_core/__init__`` calls this)."""
    _set_defaults(ALWAYS)
    sys.modules.setdefault(OPENVINO_TELEMETRY, None)  # `import openvino_telemetry` -> ImportError


def configure_process(*, side_by_side: bool = False, one_shot: bool = False) -> None:
    """For a process crnnocr owns (the CLI, a CGI hit, a pool worker): call before anything heavy.

    ``side_by_side``: many such processes run at once, each making one call at a time, so each
    gets one inference thread unless ``CRNNOCR_THREADS`` says otherwise. ``one_shot``: the
    process reads one request and exits, so a fast start matters more than a fast steady state.
    """
    _set_defaults({**ALWAYS, **NATIVE_LOAD, **(SIDE_BY_SIDE if side_by_side else {})})
    if one_shot:
        os.environ[PROCESS_KIND] = ONE_SHOT
    elif side_by_side:
        os.environ[PROCESS_KIND] = WORKER
    else:
        os.environ.pop(PROCESS_KIND, None)


def process_kind() -> str | None:
    """What ``configure_process`` said this process is: ONE_SHOT, WORKER, or None (a long-lived host)."""
    return os.environ.get(PROCESS_KIND) or None


@contextlib.contextmanager
def while_native_libraries_load() -> Iterator[None]:
    """For a host process crnnocr does not own (the C library's): the knobs while ``ocr_core``'s
    native libraries load, then the host's environment exactly as it was (set or unset)."""
    added = [name for name in NATIVE_LOAD if name not in os.environ]
    _set_defaults(NATIVE_LOAD)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


@functools.cache
def available_cores() -> int:
    """Physical cores this process may run on: its CPU affinity mask, SMT siblings counted once."""
    cores = set()
    for cpu in os.sched_getaffinity(0):
        siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(siblings.read_text().strip())
        except OSError:  # no sysfs: count the CPU as a core of its own
            cores.add(str(cpu))
    return max(1, len(cores))


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    import ctypes  # not on a CGI health check's path

    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def release_free_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc's ``malloc_trim(0)``; elsewhere nothing).

    glibc keeps freed memory for reuse and returns only what is free at the top of the heap: the
    runtimes' per-call buffers, freed between the long-lived objects of a worker, stay resident
    (a pool worker: ~35 MiB of its ~300 after sroie receipts). A call costs ~1 ms after a page.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
