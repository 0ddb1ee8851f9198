"""The pool's Prometheus metrics (``GET /cgi-bin/ocr.cgi/metrics``), in multiprocess mode.

Each worker counts into its own files under ``$PROMETHEUS_MULTIPROC_DIR`` (the supervisor sets it
and empties it at start); a scrape, answered by whichever worker gets it, sums them all, so the
counts survive the worker that made them. What only the supervisor knows (queue depth, busy and
live workers, restarts, requests it refused itself) is read from the status board at scrape time.
Imported in workers only (after the fork, as the multiprocess mode requires).
"""

from __future__ import annotations

from collections.abc import Iterator
from http import HTTPStatus

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from ocr_core.result import Timings

from .pool_status import RESTART_REASONS, StatusBoard
from .response import Response

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what generate_latest writes
STAGES = ("decode", "detect", "classify", "recognize", "total")
STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0)

REQUESTS = Counter("crnnocr_requests", "Requests answered by a worker, by mode (page, line, health, "
                   "preflight, metrics, post: refused before the mode was read; other) and HTTP status.",
                   ["mode", "code"], registry=None)
REQUEST_SECONDS = Histogram("crnnocr_request_seconds", "Time a worker spent answering a request, by mode.",
                            ["mode"], buckets=STAGE_BUCKETS, registry=None)
STAGE_SECONDS = Histogram("crnnocr_stage_seconds", "Time per engine stage of a recognition (not cached).",
                          ["stage"], buckets=STAGE_BUCKETS, registry=None)
CACHE_HITS = Counter("crnnocr_cache_hits", "Result cache lookups that found the result.", registry=None)
CACHE_MISSES = Counter("crnnocr_cache_misses", "Result cache lookups that did not.", registry=None)


class PoolObserver:
    """``ocr_http.app.Observer`` that counts into the metrics above."""

    def request(self, label: str, status: int, seconds: float) -> None:
        REQUESTS.labels(label, str(status)).inc()
        REQUEST_SECONDS.labels(label).observe(seconds)

    def recognised(self, timings: Timings) -> None:
        for stage in STAGES:
            STAGE_SECONDS.labels(stage).observe(getattr(timings, stage) / 1000.0)

    def cache_lookup(self, hit: bool) -> None:
        (CACHE_HITS if hit else CACHE_MISSES).inc()


class SupervisorCollector(Collector):
    """The supervisor's figures from the status board, as gauges and counters."""

    def __init__(self, board: StatusBoard) -> None:
        self._board = board

    def collect(self) -> Iterator[Metric]:
        c = self._board.snapshot().counters
        gauges = {
            "crnnocr_pool_queue_depth": ("Connections waiting for a worker.", "queue_depth"),
            "crnnocr_pool_queue_max": ("Connections that may wait before 503 busy.", "queue_max"),
            "crnnocr_pool_workers": ("Workers the pool keeps.", "workers_target"),
            "crnnocr_pool_workers_alive": ("Workers loaded and serving (idle or busy).", "alive"),
            "crnnocr_pool_workers_busy": ("Workers answering a request.", "busy"),
            "crnnocr_pool_generation": ("Configuration generation (1 + SIGHUP reloads).", "generation"),
            "crnnocr_pool_start_time_seconds": ("When the pool started (Unix time).", "started_at"),
        }
        for name, (help_text, key) in gauges.items():
            yield GaugeMetricFamily(name, help_text, value=c[key])
        restarts = CounterMetricFamily("crnnocr_pool_worker_restarts", "Workers started to replace "
                                       "another, by reason.", labels=["reason"])
        for reason in RESTART_REASONS:
            restarts.add_metric([reason], c[f"restarts_{reason}"])
        yield restarts
        yield CounterMetricFamily("crnnocr_pool_requests_served", "Requests the workers finished.",
                                  value=c["served"])
        yield CounterMetricFamily("crnnocr_pool_rejected_busy", "Requests the supervisor answered "
                                  "503 busy because the queue was full.", value=c["rejected_busy"])
        yield CounterMetricFamily("crnnocr_pool_timeouts", "Requests the supervisor answered 503 "
                                  "timeout (the worker was stopped).", value=c["timeouts"])


class PoolMetrics:
    def __init__(self, multiproc_dir: str, board: StatusBoard) -> None:
        self._registry = CollectorRegistry()
        MultiProcessCollector(self._registry, path=multiproc_dir)
        self._registry.register(SupervisorCollector(board))

    def response(self) -> Response:
        return Response(HTTPStatus.OK, generate_latest(self._registry), (("Content-Type", CONTENT_TYPE),))
