"""The batch map (``ocr_core.batch``) on a Dask cluster: ``python -m ocr_core --dask SCHEDULER``.

The client (this process) plans as a local run does: it reads each file and splits a document
into its pages. Each file's bytes go to the cluster once (``scatter``); its parts are tasks that
name them, so a 50-page PDF is sent once, not once a page, and its pages spread over the
workers. ``EnginePlugin`` sets each worker's process knobs and loads the engine once, when the
worker joins (workers that join later get it too); tasks then find it loaded.

What the workers need: this package, requirements.txt and requirements-dask.txt, and the model
pack the run asks for, installed where their own ``CRNNOCR_MODEL_DIR`` (or the default) says.
They read nothing from the client's disk. Their ``CRNNOCR_*`` environment sets their limits.
How long the client waits for the scheduler is Dask's setting (``distributed.comm.timeouts.connect``,
``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT``; 30 s by default).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from distributed import Client, Future, WorkerPlugin

from .batch import PartFuture, Plan, configure_worker, read_part, worker_engine
from .config import RecognizeOptions
from .errors import ErrorCode, OcrError, client_error

PLUGIN_NAME = "crnnocr-engine"


class EnginePlugin(WorkerPlugin):
    """Loads the engine on each worker when it starts; a failure is reported by each task."""

    def __init__(self, overrides: Mapping[str, Any]) -> None:
        self.overrides = dict(overrides)

    def setup(self, worker: Any) -> None:
        configure_worker()
        try:
            worker_engine(self.overrides)
        except Exception:  # read_part gives each task the error, in the client's output
            pass


def worker_identity(overrides: Mapping[str, Any]) -> str:
    """What makes a worker read as it does: crnnocr's version, the pack and the runtime."""
    from . import __version__

    try:
        engine = worker_engine(overrides)
    except Exception as exc:
        return f"no engine ({client_error(exc).code.value})"
    runtime = engine.runtime
    return f"crnnocr {__version__}, pack {engine.pack}, {runtime.backend} {runtime.version} " \
           f"{runtime.precision}"


class DaskRunner:
    """Parts as tasks on the cluster at ``address``; at most two a worker thread in flight."""

    def __init__(self, address: str, overrides: Mapping[str, Any], options: RecognizeOptions) -> None:
        self._overrides = dict(overrides)
        self._options = options
        try:
            self._client = Client(address, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise OcrError(ErrorCode.BAD_REQUEST, f"no Dask scheduler answers at {address}",
                           str(exc)) from None
        try:
            self._client.register_plugin(EnginePlugin(self._overrides), name=PLUGIN_NAME)
            identities = self._client.run(worker_identity, self._overrides)
        except Exception as exc:  # the workers cannot import this package, or its requirements
            self._client.close()
            raise OcrError(ErrorCode.MODEL_UNAVAILABLE,
                           "the Dask workers cannot run crnnocr: install it and its requirements on them",
                           f"{type(exc).__name__}: {exc}") from None
        self.workers = max(1, sum(self._client.nthreads().values()))
        if len(set(identities.values())) > 1:  # one archive, read alike: say so, then go on
            listed = "; ".join(f"{address}: {identity}" for address, identity in sorted(identities.items()))
            print(f"crnnocr: the Dask workers differ, so results may depend on the worker: {listed}",
                  file=sys.stderr, flush=True)

    def share(self, plan: Plan) -> Future:
        return self._client.scatter(plan.data, hash=False)

    def submit(self, source: Future, page: int | None) -> PartFuture:
        return self._client.submit(read_part, source, self._overrides, self._options, page, pure=False)

    def close(self) -> None:
        self._client.close()
