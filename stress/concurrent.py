"""What N clients posting the largest image at once cost a real server in total memory.

The server (deploy/servers.py: lighttpd or Apache with the shipped config, on 127.0.0.1) runs
either the pure CGI (a process per request, at most ``CRNNOCR_CGI_SLOTS`` recognising; the rest
answered ``503 busy`` at once) or FastCGI to the worker pool (``CRNNOCR_POOL_WORKERS`` workers, a
queue, then ``503 busy``). While the clients wait, the resident memory of every process under the
server (its CGIs, the pool it spawned) or in the pool is summed every ``SAMPLE_EVERY_S``: RSS (each
process counted whole) and PSS (shared pages divided among their users: what the machine really
gives). The bound is checked against the RSS sum, the stricter of the two.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from deploy.servers import Server, call, process_tree

SAMPLE_EVERY_S = 0.05
CLIENT_TIMEOUT_S = 120.0


def _kb(path: str, key: str) -> int:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:  # the process ended between the listing and the read
        pass
    return 0


def rss_kb(pid: int) -> int:
    return _kb(f"/proc/{pid}/status", "VmRSS:")


@dataclass(frozen=True)
class Sample:
    processes: int
    rss_kb: int
    pss_kb: int


def sample(roots: Iterable[int]) -> Sample:
    pids = process_tree(roots)
    return Sample(
        len(pids), sum(rss_kb(p) for p in pids), sum(_kb(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids)
    )


class Sampler(threading.Thread):
    """The largest RSS and PSS sums (and process count) over the tree while it runs."""

    def __init__(self, roots: list[int]) -> None:
        super().__init__(daemon=True)
        self.roots = roots
        self.peak = Sample(0, 0, 0)
        self.samples = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            now = sample(self.roots)
            self.samples += 1
            self.peak = Sample(
                max(self.peak.processes, now.processes),
                max(self.peak.rss_kb, now.rss_kb),
                max(self.peak.pss_kb, now.pss_kb),
            )
            self._done.wait(SAMPLE_EVERY_S)

    def stop(self) -> Sample:
        self._done.set()
        self.join()
        return self.peak


@dataclass(frozen=True)
class Burst:
    clients: int
    idle: Sample
    peak: Sample
    statuses: dict[str, int]  # "200", "503 busy", ... -> count
    seconds: float


def burst(server: Server, roots: list[int], body: bytes, clients: int) -> Burst:
    """``clients`` threads post ``body`` at the same moment, once each; the tree is sampled meanwhile."""
    idle = sample(roots)
    start = threading.Barrier(clients + 1)
    outcomes: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        start.wait()
        try:
            reply = call(
                server,
                "POST",
                body=body,
                headers={"Content-Type": "application/octet-stream"},
                timeout=CLIENT_TIMEOUT_S,
            )
            code = "" if reply.status == 200 else " " + reply.json()["error"]["code"]
            outcome = f"{reply.status}{code}"
        except (OSError, ValueError, KeyError) as exc:
            outcome = f"failed: {type(exc).__name__}"
        with lock:
            outcomes.append(outcome)

    sampler = Sampler(roots)
    sampler.start()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    began = time.monotonic()
    start.wait()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - began
    time.sleep(0.3)  # processes still exiting after their answer count too
    peak = sampler.stop()
    statuses: dict[str, int] = {}
    for outcome in sorted(outcomes):
        statuses[outcome] = statuses.get(outcome, 0) + 1
    return Burst(clients, idle, peak, statuses, seconds)
