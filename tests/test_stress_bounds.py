"""The measuring parts of ``make stress`` (stress/), and the pool stopping an abandoned request.

The report itself takes minutes (``make stress``); here, quickly: the "largest allowed" images
are what they claim at a small pixel limit (each decodes, to that many pixels, none refused), the
memory sampler sees a process tree, and a lighttpd FastCGI pool stops a request whose client hung
up instead of reading the page to its end (README, "Slow clients and abandoned requests").
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from deploy.servers import Server, call, serving
from ocr_core.image import decode_image
from ocr_core.pages import open_document
from ocr_http.pool_status import WorkerState
from stress import concurrent, workload
from tests.support import render_text

SMALL_LIMIT = 1_000_000


@pytest.mark.parametrize("image", workload.largest_allowed(SMALL_LIMIT), ids=lambda i: i.name)
def test_the_largest_allowed_images_are_allowed_and_that_large(image: workload.Input) -> None:
    limits = {"max_bytes": 1 << 24, "max_pixels": SMALL_LIMIT}
    document = open_document(image.data, dpi=image.dpi or 200, **limits)
    if document is None:
        decoded = decode_image(image.data, **limits).bgr
    else:
        try:
            decoded = max((bgr for _, bgr in document.render(range(1, document.page_count + 1))), key=len)
        finally:
            document.close()
    assert decoded.shape[0] * decoded.shape[1] == image.pixels <= SMALL_LIMIT
    assert image.pixels > 0.85 * SMALL_LIMIT  # "largest": within a few rows of the limit


def test_a_tiff_document_keeps_no_page_once_it_is_handed_over() -> None:
    """The engine drops each page before asking for the next: the source must not hold it either,
    or a document of two pages at the limit costs two pages' pixels (9.7 B/px, over the bound)."""
    source = open_document(workload.two_page_tiff(64), dpi=200, max_bytes=1 << 20, max_pixels=10_000)
    assert source is not None and source.page_count == 2
    pages = source.render([1, 2])
    number, bgr = next(pages)
    assert number == 1 and bgr.shape == (64, 64, 3)
    held = [name for name, value in pages.gi_frame.f_locals.items() if isinstance(value, np.ndarray)
            or isinstance(getattr(value, "bgr", None), np.ndarray)]
    assert held == []
    assert next(pages)[0] == 2


def test_the_sampler_sums_a_process_tree() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(64 << 20); time.sleep(30)"])
    try:
        deadline = time.monotonic() + 10
        while concurrent.rss_kb(child.pid) < 60 * 1024 and time.monotonic() < deadline:
            time.sleep(0.05)
        tree = concurrent.sample([child.pid])
        assert tree.processes == 1 and tree.rss_kb >= 64 * 1024 and 0 < tree.pss_kb <= tree.rss_kb
        assert concurrent.process_tree([child.pid]) == [child.pid]
    finally:
        child.kill()
        child.wait()


def _busy_workers(server: Server) -> int:
    return sum(w.state == WorkerState.BUSY for w in server.pool.status().workers)


def test_the_pool_stops_a_request_whose_client_hung_up(prefix: Path) -> None:
    """lighttpd passes the client's hang-up on (tcp-fin-propagate); the worker stops at the
    engine's next check instead of reading the page to its end."""
    if not shutil.which("lighttpd"):
        pytest.skip("LIGHTTPD IS NOT INSTALLED: `make setup` installs it")
    page = render_text([f"Item {i}: 2 x espresso {i}.50 EUR, paid by card on the terrace" for i in range(30)],
                       size=32)
    head = (f"POST /cgi-bin/ocr.cgi HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n"
            f"Content-Length: {len(page)}\r\n\r\n").encode()
    env = {"CRNNOCR_POOL_WORKERS": "1", "CRNNOCR_CACHE_MB": "0"}
    with serving("lighttpd", "fastcgi", prefix, env=env) as server:
        started = time.monotonic()
        assert call(server, "POST", body=page, headers={"Content-Type": "image/png"}).status == 200
        whole = time.monotonic() - started
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(head + page)
            deadline = time.monotonic() + 10
            while not _busy_workers(server) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert _busy_workers(server), "the request never reached a worker"
            time.sleep(0.2)
        hung_up = time.monotonic()
        while _busy_workers(server) and time.monotonic() - hung_up < whole + 5:
            time.sleep(0.01)
        stopped_after = time.monotonic() - hung_up
        print(f"the page takes {whole:.2f} s; the worker stopped {stopped_after:.2f} s after the hang-up")
        assert not _busy_workers(server)
        assert stopped_after < whole / 2, (stopped_after, whole)  # one step at most, not the page
        assert call(server, "GET").status == 200  # and the pool serves on
