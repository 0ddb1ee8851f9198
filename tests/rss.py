"""Peak memory, measured from outside: what a process or one call costs above what it held before.

- ``peak_rss_kb(command)``: the peak RSS of a command run to completion (its own ``getrusage``,
  taken in a wrapper process so that earlier children do not count).
- ``python -m tests.rss FILE...``: in a fresh interpreter with the decoders loaded, decode each
  file and print, per file, the peak RSS above the RSS before the call (the kernel's high-water
  mark, reset through ``/proc/self/clear_refs``), the pixels and the time, as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

_WRAPPER = (
    "import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
    "stderr=subprocess.PIPE); sys.stderr.buffer.write(done.stderr); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, done.returncode)"
)


def peak_rss_kb(command: list[str], **kwargs: object) -> tuple[int, str]:
    """(peak RSS of ``command`` in KiB, its stderr); the command must exit 0."""
    done = subprocess.run([sys.executable, "-c", _WRAPPER, *map(str, command)], capture_output=True,
                          text=True, check=True, **kwargs)
    peak, status = done.stdout.split()
    if status != "0":
        raise AssertionError(f"{command[0]} exited {status}: {done.stderr[-2000:]}")
    return int(peak), done.stderr


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def main(paths: list[str]) -> None:
    from ocr_core.errors import OcrError
    from ocr_core.image import decode_image, load_decoders

    load_decoders()
    limits = {"max_bytes": 1 << 30, "max_pixels": 40_000_000}
    report = {}
    for path in paths:
        data = Path(path).read_bytes()
        before = _status_kb("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # the high-water mark starts again from here
        started = time.perf_counter()
        try:
            decoded = decode_image(data, **limits)
            outcome, pixels = "ok", decoded.width * decoded.height
            del decoded
        except OcrError as exc:
            outcome, pixels = exc.code.value, 0
        report[path] = {"outcome": outcome, "pixels": pixels, "seconds": time.perf_counter() - started,
                        "growth_kb": _status_kb("VmHWM") - before}
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
