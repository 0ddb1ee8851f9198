"""The upload page in a real headless Chromium (Debian's), served by a real lighttpd with the CGI.

Chromium is driven over the DevTools protocol with ``websocket-client``: the test chooses a file
through the page's own file input (DOM.setFileInputFiles, as a user's pick does), drops one onto
the drop zone, and reads the recognised text, the drawn boxes, each page shown and the error
message off the page.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from deploy.servers import Server, installed_tree, missing_models, running_server, serving
from tests.support import EVAL_DIR, cer, eval_samples, render_text, scanned_pdf

websocket = pytest.importorskip("websocket", reason="WEBSOCKET-CLIENT NOT INSTALLED (requirements-dev.txt)")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-port=0",
]
PAGE_CER_MAX = 0.15
LINE = "Invoice 2026: total 42.50 EUR"
WAIT_S = 90.0


class DevTools:
    """Just enough of the Chrome DevTools Protocol: numbered commands over one page's socket."""

    def __init__(self, ws_url: str) -> None:
        self._ws = websocket.create_connection(ws_url, timeout=WAIT_S, suppress_origin=True)
        self._ids = itertools.count(1)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self._ws.recv())
            if msg.get("id") == msg_id:  # events (no id) are not needed here
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def js(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = WAIT_S) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {expression}")

    def close(self) -> None:
        self._ws.close()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    if not shutil.which("lighttpd"):
        pytest.skip("LIGHTTPD IS NOT INSTALLED: `make setup` installs it")
    if reason := missing_models():
        pytest.skip(reason)
    with installed_tree() as prefix, running_server("lighttpd", prefix) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser() -> Iterator[DevTools]:
    if not Path(CHROMIUM).exists():
        pytest.skip("CHROMIUM IS NOT INSTALLED: `make setup` installs Debian's chromium")
    profile = Path(tempfile.mkdtemp(prefix="crnnocr-chromium-"))
    # TMPDIR inside the profile: Chromium's singleton directory (/tmp/org.chromium.Chromium.*)
    # outlives a terminated browser, and goes with the profile this way.
    process = subprocess.Popen([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "TMPDIR": str(profile)})
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and port_file.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
            page = next(t for t in json.load(reply) if t["type"] == "page")
        tools = DevTools(page["webSocketDebuggerUrl"])
        # A headless page never has the focus, and the clipboard API wants a focused document.
        tools.send("Emulation.setFocusEmulationEnabled", enabled=True)
        try:
            yield tools
        finally:
            tools.close()
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def pool_server(server: Server) -> Iterator[Server]:
    """lighttpd with the worker pool it spawns (FastCGI): the one that runs jobs."""
    with installed_tree() as prefix, serving("lighttpd", "fastcgi", prefix,
                                             env={"CRNNOCR_POOL_WORKERS": "1"}) as srv:
        yield srv


@pytest.fixture()
def page(browser: DevTools, server: Server) -> DevTools:
    """The upload page, freshly loaded, with its health check answered (the footer is filled)."""
    browser.send("Page.navigate", url=server.url)
    browser.wait_for("document.readyState === 'complete' && document.getElementById('engine').textContent")
    return browser


def _choose_file(page: DevTools, path: Path) -> None:
    root = page.send("DOM.getDocument")["root"]["nodeId"]
    node = page.send("DOM.querySelector", nodeId=root, selector="#file")["nodeId"]
    page.send("DOM.setFileInputFiles", files=[str(path)], nodeId=node)


def _wait_result(page: DevTools) -> dict[str, Any]:
    """Watch the status through 'Recognising…' to done or error; return what the page shows."""
    busy = page.wait_for("document.getElementById('status').dataset.state === 'busy' "
                         "&& document.getElementById('status').textContent")
    page.wait_for("['done', 'error'].includes(document.getElementById('status').dataset.state)")
    shown: dict[str, Any] = page.js("""({
        state: document.getElementById('status').dataset.state,
        text: document.getElementById('text').value,
        boxes: document.querySelectorAll('.boxes polygon').length,
        summary: document.getElementById('summary').textContent,
        error: document.getElementById('error').hidden ? null : document.getElementById('error').textContent,
        preview: document.querySelector('.page img')?.naturalWidth,
    })""")
    return {**shown, "busy": busy}



def test_page_recognises_a_chosen_receipt(page: DevTools, norm: Callable[[str], str]) -> None:
    samples = eval_samples("sroie_receipts_en", 1)
    if not samples:
        pytest.skip(f"EVAL SET {EVAL_DIR / 'sroie_receipts_en'} IS MISSING (set CRNNOCR_EVAL)")
    _choose_file(page, samples[0].path)
    shown = _wait_result(page)
    assert shown["busy"] == "Recognising…"
    assert shown["state"] == "done" and shown["error"] is None
    assert shown["preview"] > 0
    assert cer([samples[0].text], [shown["text"]], norm) <= PAGE_CER_MAX
    # One box per line of the result; the text joins the lines of a row on one line.
    assert shown["boxes"] > 10
    assert shown["summary"] == f"{shown['boxes']} lines"
    assert len([row for row in shown["text"].splitlines() if row]) <= shown["boxes"]


def test_page_takes_a_dropped_line(page: DevTools) -> None:
    """Needs no eval data: a rendered line, dropped onto the drop zone in single-line mode."""
    png = base64.b64encode(render_text([LINE])).decode()
    page.js("document.getElementById('mode').value = 'line'")
    page.js(f"""(() => {{
        const bytes = Uint8Array.from(atob("{png}"), (c) => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], "line.png", {{ type: "image/png" }}));
        document.getElementById('drop').dispatchEvent(
            new DragEvent('drop', {{ dataTransfer: data, bubbles: true, cancelable: true }}));
    }})()""")
    shown = _wait_result(page)
    assert shown["state"] == "done" and shown["boxes"] == 1
    assert cer([LINE], [shown["text"]], lambda t: "".join(t.split()).casefold()) <= 0.1, shown["text"]
    # The copy button puts exactly the shown text on the clipboard.
    page.send("Browser.grantPermissions", permissions=["clipboardReadWrite", "clipboardSanitizedWrite"])
    page.js("document.getElementById('copy').click()")
    page.wait_for("document.getElementById('copy').textContent === 'Copied'")
    assert page.js("navigator.clipboard.readText()") == shown["text"]


def test_page_says_what_is_wrong_in_words(page: DevTools, tmp_path: Path) -> None:
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_bytes(b"these are notes, not pixels")
    _choose_file(page, not_an_image)
    shown = _wait_result(page)
    assert shown["state"] == "error" and shown["boxes"] == 0 and shown["text"] == ""
    assert shown["error"].startswith("This file is not an image format that can be read")


OVERLAY_GEOMETRY = """(() => {
    const natural = document.querySelector('.page img');
    const img = natural.getBoundingClientRect();
    const sx = img.width / natural.naturalWidth, sy = img.height / natural.naturalHeight;
    return [...document.querySelectorAll('.boxes polygon')].map((poly) => {
        const xs = [...poly.points].map((p) => p.x), ys = [...poly.points].map((p) => p.y);
        const drawn = poly.getBoundingClientRect();
        return {
            drawn: [drawn.left, drawn.top, drawn.right, drawn.bottom],
            expected: [img.left + Math.min(...xs) * sx, img.top + Math.min(...ys) * sy,
                       img.left + Math.max(...xs) * sx, img.top + Math.max(...ys) * sy],
        };
    });
})()"""


@pytest.mark.parametrize("size", [14, 90], ids=["narrower than the column", "scaled down to fit"])
def test_overlay_boxes_sit_on_the_image(page: DevTools, size: int) -> None:
    """Each drawn box's on-screen rectangle is its line box mapped through the image's on-screen
    scale: within a pixel, whether the image is shown at its own size or scaled down."""
    png = base64.b64encode(render_text(["Total due 42.50 EUR", "Paid by card 7731"], size=size)).decode()
    page.js(f"""(() => {{
        const bytes = Uint8Array.from(atob("{png}"), (c) => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], "lines.png", {{ type: "image/png" }}));
        document.getElementById('drop').dispatchEvent(
            new DragEvent('drop', {{ dataTransfer: data, bubbles: true, cancelable: true }}));
    }})()""")
    shown = _wait_result(page)
    assert shown["state"] == "done" and shown["boxes"] == 2, shown
    shown_width = page.js("document.querySelector('.page img').getBoundingClientRect().width")
    assert (shown_width < shown["preview"]) == (size == 90)  # the large image is really scaled down
    for box in page.js(OVERLAY_GEOMETRY):
        assert box["drawn"] == pytest.approx(box["expected"], abs=1.0), box


def test_page_reads_a_pdf_and_downloads_each_format(page: DevTools, tmp_path: Path) -> None:
    """A two-page PDF (drawn here): its text page by page, then each download format as the
    server renders it, saved under the file's name."""
    pages = [["Invoice 2231 Berlin"], ["Total due 42.50 EUR"]]
    pdf = tmp_path / "letter.pdf"
    pdf.write_bytes(scanned_pdf([render_text(lines) for lines in pages]))
    _choose_file(page, pdf)
    shown = _wait_result(page)
    assert shown["state"] == "done" and shown["error"] is None, shown
    assert shown["summary"] == "2 pages, 2 lines"
    assert shown["text"].startswith("--- page 1 ---\nInvoice 2231 Berlin")
    assert "--- page 2 ---\nTotal due 42.50 EUR" in shown["text"]
    assert page.js("[...document.querySelectorAll('.page img')].map((img) => img.alt)") == [
        "Page 1 of 2", "Page 2 of 2"]
    # Catch the download link's click, and read the blob it would have saved (the page's CSP
    # rightly forbids fetching blob: URLs).
    page.js("""window.saved = null; const objectUrl = URL.createObjectURL;
        URL.createObjectURL = (blob) => { window.lastBlob = blob; return objectUrl(blob); };
        HTMLAnchorElement.prototype.click = function () {
            window.lastBlob.text().then((body) => { window.saved = [this.download, body]; }); }""")
    expected = {"text": ("letter.txt", "Invoice 2231 Berlin\fTotal due 42.50 EUR"),
                "hocr": ("letter.hocr", "class='ocr_page' id='page_2'"),
                "alto": ("letter.xml", 'CONTENT="EUR"'),
                "tsv": ("letter.tsv", "level\tpage_num\tblock_num")}
    for fmt, (name, needle) in expected.items():
        page.js(f"window.saved = null; document.getElementById('format').value = '{fmt}'; "
                "document.getElementById('download').click()")
        saved = page.wait_for("window.saved || (!document.getElementById('error').hidden "
                              "&& document.getElementById('error').textContent)")
        assert isinstance(saved, list), (fmt, saved)
        saved_name, body = saved
        assert saved_name == name and needle in body, (fmt, body[:300])


# Per page: the page's picture on screen, and the union of its drawn boxes' on-screen rectangles.
PAGES_SHOWN = """[...document.querySelectorAll('.page')].map((figure) => {
    const img = figure.querySelector('img');
    const rects = [...figure.querySelectorAll('.boxes polygon')].map((poly) => poly.getBoundingClientRect());
    const shown = img.getBoundingClientRect();
    return {
        caption: figure.querySelector('figcaption').textContent,
        loaded: img.complete && img.naturalWidth > 0,
        natural: [img.naturalWidth, img.naturalHeight],
        image: [shown.left, shown.top, shown.width, shown.height],
        boxes: rects.length,
        drawn: [Math.min(...rects.map((r) => r.left)), Math.min(...rects.map((r) => r.top)),
                Math.max(...rects.map((r) => r.right)), Math.max(...rects.map((r) => r.bottom))],
    };
})"""


def _ink(png: bytes) -> tuple[list[int], int]:
    """The rectangle (left, top, right, bottom) of a page's dark pixels, and the height of one line
    of them: where the text is, found from the pixels and nothing else."""
    dark = np.asarray(Image.open(io.BytesIO(png)).convert("L")) < 128
    rows, cols = np.flatnonzero(dark.any(axis=1)), np.flatnonzero(dark.any(axis=0))
    runs = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1)  # the rows of each line of text
    line_height = max(len(run) for run in runs)
    return [int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1], line_height


def test_page_shows_each_pdf_page_with_its_boxes(page: DevTools, tmp_path: Path) -> None:
    """A three-page PDF: each page is shown as a picture (the server's preview) with its boxes over
    its text. Where the text is comes from the page's pixels: the boxes drawn on screen must cover
    it, and end within a line's height of it, on a page shown at its own size and on one whose
    preview (wider than 1600 px) and display are both scaled down."""
    pages = [render_text(["Invoice 2231 Berlin"], size=30),
             render_text(["Total due 42.50 EUR, paid by card 7731"], size=90),
             render_text(["Thank you", "See you soon"])]
    pdf = tmp_path / "three.pdf"
    pdf.write_bytes(scanned_pdf(pages))
    _choose_file(page, pdf)
    shown = _wait_result(page)
    assert shown["state"] == "done" and shown["error"] is None, shown
    assert shown["summary"] == "3 pages, 4 lines"
    page.wait_for("[...document.querySelectorAll('.page img')].every((img) => img.complete)")
    figures = page.js(PAGES_SHOWN)
    assert [f["caption"] for f in figures] == ["Page 1 of 3", "Page 2 of 3", "Page 3 of 3"]
    assert [f["boxes"] for f in figures] == [1, 1, 2]
    assert figures[1]["natural"][0] == 1600  # the wide page's preview is scaled down
    for png, figure in zip(pages, figures, strict=True):
        assert figure["loaded"], figure
        (left, top, right, bottom), line_height = _ink(png)
        x, y, width, height = figure["image"]
        size = Image.open(io.BytesIO(png)).size
        scale = width / size[0]  # page pixels → screen; the preview has the page's proportions
        assert height == pytest.approx(size[1] * scale, abs=1.0)
        ink = [x + left * scale, y + top * scale, x + right * scale, y + bottom * scale]
        drawn, slack = figure["drawn"], line_height * scale
        for edge, (d, i) in enumerate(zip(drawn, ink, strict=True)):
            outward = (i - d) if edge < 2 else (d - i)  # how far the box reaches beyond the ink
            assert -1.0 <= outward <= slack, (edge, drawn, ink, slack)


def test_a_pdf_is_read_as_a_job_with_a_progress_bar(browser: DevTools, pool_server: Server,
                                                     tmp_path: Path) -> None:
    """With a pool, a PDF goes through a job (async=1): the progress bar follows pages_done of
    pages_total, the pages and text are shown as from a synchronous call, and a download is the
    job's result fetched in that format, not a second reading. (Without a pool, the tests above:
    the page falls back to reading it synchronously.)"""
    browser.send("Page.navigate", url=pool_server.url)
    browser.wait_for("document.readyState === 'complete' && document.getElementById('engine').textContent")
    dense = [[f"Line {p}-{i}: 2 x espresso {i}.50 EUR, paid by card" for i in range(24)] for p in range(3)]
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(scanned_pdf([render_text(lines, size=32) for lines in dense]))
    _choose_file(browser, pdf)
    seen = set()
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        bar = browser.js("""(() => { const bar = document.getElementById('progress');
            return [bar.hidden, bar.value, bar.max, document.getElementById('status').dataset.state,
                    document.getElementById('status').textContent]; })()""")
        if not bar[0]:
            seen.add((bar[1], bar[2], bar[4]))
        if bar[3] in ("done", "error"):
            break
        time.sleep(0.02)
    assert bar[3] == "done" and bar[0], bar  # the bar goes once the result is in
    assert {(1.0, 3.0, "Reading page 2 of 3…"), (2.0, 3.0, "Reading page 3 of 3…")} & seen, seen
    assert all(maximum in (1.0, 3.0) and value <= maximum for value, maximum, _ in seen)
    shown = browser.js("""({summary: document.getElementById('summary').textContent,
        text: document.getElementById('text').value,
        captions: [...document.querySelectorAll('.page figcaption')].map((c) => c.textContent)})""")
    assert shown["summary"] == "3 pages, 72 lines"
    assert shown["captions"] == ["Page 1 of 3", "Page 2 of 3", "Page 3 of 3"]
    assert "--- page 3 ---\nLine 2-0: 2 x espresso 0.50 EUR" in shown["text"]
    browser.js("""window.saved = null; const objectUrl = URL.createObjectURL;
        URL.createObjectURL = (blob) => { window.lastBlob = blob; return objectUrl(blob); };
        HTMLAnchorElement.prototype.click = function () {
            window.lastBlob.text().then((body) => { window.saved = [this.download, body]; }); };
        document.getElementById('format').value = 'text'; document.getElementById('download').click()""")
    name, body = browser.wait_for("window.saved")
    assert name == "report.txt" and body.count("\f") == 2 and "Line 1-23" in body
