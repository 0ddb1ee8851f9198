"""Batch runs from the command line (``ocr_core.batch``): ``--jobs N``, ``--skip-done``, ``--dask``.

One set of inputs, rendered here: two images, a 3-page PDF, a 2-frame TIFF, a damaged PNG and a
missing file. The reference is the sequential run (``--jobs 1``, in one process); a batch run
must give the same records in the same order (timings aside), a document reassembled from its
pages, each failure as its own JSON line, and exit status 1 because some files failed. The
backend is pinned, since batch workers are long-lived processes where ``auto`` may pick another.
"""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.servers import children
from ocr_core.batch import PartOutcome, assemble, cut_torn_tail, done_files
from ocr_core.errors import ErrorCode
from tests.support import CHECKOUT, multipage_tiff, render_text, scanned_pdf

pytestmark = pytest.mark.usefixtures("engine")  # skips loudly when the default pack is missing

FILES = ["one.png", "doc.pdf", "bad.png", "missing.png", "doc.tif", "two.png"]
CLI = [sys.executable, "-m", "ocr_core", "--jsonl", "--backend", "onnxruntime"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("batch")
    pages = [render_text([f"Invoice {n}", f"Total due {n * 7}.50 EUR"], size=32) for n in range(3)]
    (folder / "one.png").write_bytes(pages[0])
    (folder / "two.png").write_bytes(pages[1])
    (folder / "doc.pdf").write_bytes(scanned_pdf(pages))
    (folder / "doc.tif").write_bytes(multipage_tiff(pages[1:]))
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    return folder


def _run(folder: Path, *args: str, env: dict[str, str] | None = None, **streams: object
         ) -> subprocess.CompletedProcess[str]:
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **streams}
    return subprocess.run([*CLI, *args], cwd=folder, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(CHECKOUT), **(env or {})},
                          **streams)  # type: ignore[call-overload]


def _records(jsonl: str) -> list[dict]:
    records = [json.loads(line) for line in jsonl.splitlines()]
    for record in records:
        record.pop("timing_ms", None)
    return records


@pytest.fixture(scope="module")
def sequential(inputs: Path) -> list[dict]:
    done = _run(inputs, *FILES)
    assert done.returncode == 1, done.stderr
    return _records(done.stdout)


def test_the_reference_run_reads_every_kind_of_input(sequential: list[dict]) -> None:
    assert [r["file"] for r in sequential] == FILES
    assert [r["ok"] for r in sequential] == [True, True, False, False, True, True]
    assert sequential[1]["document"] == {"format": "PDF", "page_count": 3, "dpi": 200}
    assert [p["number"] for p in sequential[1]["pages"]] == [1, 2, 3]
    assert "14.50" in sequential[1]["text"].split("\f")[2]
    assert sequential[2]["error"]["code"] == "decode_failed"
    assert sequential[3]["error"]["code"] == "bad_request"


def test_jobs_give_the_sequential_records_in_order(inputs: Path, sequential: list[dict],
                                                  tmp_path: Path) -> None:
    """Two worker processes, a document's pages spread over them: the same records, in input
    order; the progress line only on a terminal (here stderr is one), never on stdout; nothing
    left in the temporary directory (multiprocessing's forkserver socket)."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    controller, terminal = pty.openpty()
    try:
        done = _run(inputs, "--jobs", "2", *FILES, stderr=terminal, env={"TMPDIR": str(temp)})
        os.close(terminal)
        terminal = -1
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(controller)
        if terminal >= 0:
            os.close(terminal)
    assert done.returncode == 1
    assert _records(done.stdout) == sequential
    assert b"6/6 files, 8 pages" in shown  # the parts read: 1 + 3 + 1 (bad.png) + 0 (missing) + 2 + 1
    assert not any(temp.iterdir())


def test_skip_done_resumes_a_killed_run(inputs: Path, sequential: list[dict], tmp_path: Path) -> None:
    """OUT holds two results, an error and half a line (the run was killed while writing): the
    resumed run reads the error's file and the rest, not the two done, and cuts the torn line off."""
    out = tmp_path / "out.jsonl"
    lines = [json.dumps(r) for r in sequential[:4]]
    out.write_text("\n".join(lines[:3]) + "\n" + lines[3][:25], encoding="utf-8")
    with out.open("a") as stdout:
        done = _run(inputs, "--jobs", "2", "--skip-done", str(out), *FILES, stdout=stdout)
    assert done.returncode == 1  # bad.png and missing.png fail again
    assert done.stderr == ""  # not a terminal: no progress line
    resumed = _records(out.read_text(encoding="utf-8"))
    assert [r["file"] for r in resumed] == ["one.png", "doc.pdf", "bad.png", "bad.png", "missing.png",
                                            "doc.tif", "two.png"]
    assert resumed[3:] == sequential[2:]

    again = _run(inputs, "--skip-done", str(out), "one.png", "two.png")  # everything done: nothing to do
    assert (again.returncode, again.stdout) == (0, "")


def test_done_files_and_torn_tails(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    assert done_files(str(out)) == set()  # a first run: no file yet
    out.write_text('{"file": "a", "ok": true}\nnot json\n{"file": "b", "ok": false}\n[1]\n{"file": "c", "o',
                   encoding="utf-8")
    assert done_files(str(out)) == {"a"}
    with (tmp_path / "elsewhere").open("a") as other:
        cut_torn_tail(str(out), other)  # output goes elsewhere: OUT is not touched
    assert out.read_text().endswith('"o')
    with out.open("a") as same:
        cut_torn_tail(str(out), same)
    assert out.read_text(encoding="utf-8").endswith("[1]\n")
    with out.open("a") as same:
        cut_torn_tail(str(out), same)  # a whole last line stays
    assert out.read_text(encoding="utf-8").endswith("[1]\n")


def test_a_document_fails_with_its_first_failed_page() -> None:
    pages = [PartOutcome(error=("image_too_large", "page 2 of the PDF renders at ...", None)),
             PartOutcome(error=("timeout", "the request took longer", None))]
    failed = assemble("doc.pdf", pages)
    assert failed.error is not None and failed.error.code is ErrorCode.IMAGE_TOO_LARGE


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A LocalCluster of two worker processes, one thread each, on 127.0.0.1, its scratch space in
    a directory of this test's; closed afterwards, and none of its processes left."""
    import dask
    from distributed import LocalCluster

    scratch = str(tmp_path_factory.mktemp("dask"))
    with dask.config.set({"temporary-directory": scratch}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                         dashboard_address=None, worker_dashboard_address=None,
                         local_directory=scratch) as cluster:
        workers = [w.process.process.pid for w in cluster.workers.values()]
        yield cluster.scheduler_address
    for pid in workers:  # nothing is left running
        assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def test_dask_gives_the_local_records(dask_cluster: str, inputs: Path, sequential: list[dict]) -> None:
    done = _run(inputs, "--dask", dask_cluster, *FILES)
    assert done.returncode == 1, done.stderr[-2000:]
    assert _records(done.stdout) == sequential
    assert "workers differ" not in done.stderr  # two workers of one machine read alike


def test_dask_scheduler_that_does_not_answer(inputs: Path) -> None:
    done = _run(inputs, "--dask", "tcp://127.0.0.1:9", "one.png", "two.png",
                env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"})
    assert done.returncode == 1
    assert [json.loads(line)["error"]["code"] for line in done.stdout.splitlines()] == ["bad_request"] * 2



def test_a_worker_killed_mid_run_costs_no_file(inputs: Path, sequential: list[dict]) -> None:
    """``kill -9`` of a worker while it reads: a new worker takes over, the parts that were in
    flight are read again, and every file still gets its result."""
    names = ["one.png", "doc.pdf", "doc.tif", "two.png", "doc.pdf"]
    expected = [sequential[FILES.index(name)] for name in names]
    run = subprocess.Popen([*CLI, "--jobs", "2", *names], cwd=inputs, text=True, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(CHECKOUT)})
    try:
        first = run.stdout.readline()  # type: ignore[union-attr]  # the workers are loaded and reading
        workers = [worker for child in children(run.pid) for worker in children(child)]
        assert workers, "no worker process found under the forkserver"
        os.kill(workers[0], signal.SIGKILL)
        rest, errors = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0, errors[-2000:]
    assert _records(first + rest) == expected


def test_a_plan_selects_pages_and_refuses_as_one_call_would(inputs: Path) -> None:
    from ocr_core import EngineConfig, OcrError, RecognizeOptions
    from ocr_core.batch import plan_file

    config = EngineConfig.from_env()
    assert plan_file(str(inputs / "doc.pdf"), RecognizeOptions(pages="3,1-2"), config).pages == (1, 2, 3)
    assert plan_file(str(inputs / "doc.tif"), RecognizeOptions(pages="2"), config).pages == (2,)
    assert plan_file(str(inputs / "one.png"), RecognizeOptions(), config).pages == (None,)
    for name, options, limit, code in (("doc.pdf", RecognizeOptions(), 2, "too_many_pages"),
                                       ("doc.pdf", RecognizeOptions(pages="4"), 50, "bad_request")):
        with pytest.raises(OcrError) as refused:
            plan_file(str(inputs / name), options, EngineConfig.from_env(max_pages=limit))
        assert refused.value.code == code
