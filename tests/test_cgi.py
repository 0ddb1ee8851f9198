"""The HTTP contract under a real lighttpd and a real Apache, with the shipped configs, over real HTTP.

Every test runs against both servers and each of the three ways a request reaches the
application (``deploy.servers.PATHS``): ``cgi`` (ocr.cgi does the work itself), ``cgi-pool``
(ocr.cgi forwards to a running worker pool) and ``fastcgi`` (the server speaks FastCGI to the pool:
lighttpd spawns it, Apache proxies to one started as the systemd unit would). The tree is
installed by ``deploy`` into a temp dir (as ``make deploy`` does), so everything runs as the
server's user (www-data under root). Real images come from ../shared/eval (CER bounds with
score.py's normalisation); a self-rendered image keeps something meaningful running in a clone
without shared/.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from deploy.servers import (
    KINDS,
    PATHS,
    Reply,
    Server,
    call,
    installed_tree,
    missing_models,
    multipart,
    serving,
)
from ocr_http.slots import take_slot
from tests.support import EVAL_DIR, Sample, cer, eval_samples, png_header_only, render_text

CONFIGS = [(kind, path) for kind in KINDS for path in PATHS]
ALLOWED_ORIGIN = "http://allowed.example"
LINE_CER_MAX = 0.05  # measured 0.01 on the first 16 sroie lines
PAGE_CER_MAX = 0.15  # measured 0.066 on sroie_040 (order-sensitive, reading order included)
RENDERED_TEXT = "Invoice 2026: total 42.50 EUR"
RENDERED_CER_MAX = 0.1


INSTALLED_STATE: dict[Path, dict[str, int]] = {}


def tree_state(root: Path) -> dict[str, int]:
    """Every path under ``root`` with its modification time."""
    return {os.path.join(d, n): os.lstat(os.path.join(d, n)).st_mtime_ns
            for d, dirs, files in os.walk(root) for n in (*dirs, *files)}


@pytest.fixture(scope="module")
def prefix() -> Iterator[Path]:
    if reason := missing_models():
        pytest.skip(reason)
    with installed_tree() as path:
        INSTALLED_STATE.setdefault(path, tree_state(path))
        yield path


def _skip_unless_installed(kind: str) -> None:
    if not shutil.which("lighttpd" if kind == "lighttpd" else "apache2"):
        pytest.skip(f"{kind.upper()} IS NOT INSTALLED: `make setup` installs it (setup/debian-packages.txt)")


@pytest.fixture(scope="module", params=CONFIGS, ids=[f"{k}-{p}" for k, p in CONFIGS])
def server(request: pytest.FixtureRequest, prefix: Path) -> Iterator[Server]:
    kind, path = request.param
    _skip_unless_installed(kind)
    with serving(kind, path, prefix, env={"CRNNOCR_CORS_ORIGINS": ALLOWED_ORIGIN}) as srv:
        yield srv


def _logs(server: Server) -> str:
    """Everything the server, the CGI and the pool wrote (the pool's own file when it has one)."""
    files = {server.error_log, *([server.pool.log] if server.pool else [])}
    return "".join(f.read_text(encoding="utf-8", errors="replace") for f in files)


def _samples(set_name: str, count: int) -> list[Sample]:
    found = eval_samples(set_name, count)
    if not found:
        pytest.skip(f"EVAL SET {EVAL_DIR / set_name} IS MISSING: real-image checks skipped (CRNNOCR_EVAL)")
    return found


@pytest.fixture(scope="module")
def lines() -> list[Sample]:
    return _samples("sroie_lines_en", 8)


def _simple(text: str) -> str:
    """Normalisation for self-rendered text, when score.py is not at hand: no spaces, no case."""
    return "".join(text.split()).casefold()


def _assert_common_headers(reply: Reply) -> None:
    assert reply.headers.get("cache-control") == "no-store"
    assert reply.headers.get("x-content-type-options") == "nosniff"


def _assert_error(reply: Reply, status: int, code: str) -> None:
    assert reply.status == status, reply.body[:300]
    assert reply.headers["content-type"].startswith("application/json")
    _assert_common_headers(reply)
    doc = reply.json()
    assert doc["ok"] is False and doc["error"]["code"] == code and doc["error"]["message"]


# --- GET / HEAD / OPTIONS / other methods ------------------------------------------------------

def test_get_is_health(server: Server) -> None:
    reply = call(server, "GET")
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json; charset=utf-8"
    _assert_common_headers(reply)
    doc = reply.json()
    assert doc["ok"] is True and doc["version"] and doc["onnxruntime"]
    assert doc["model"] in doc["packs_installed"]
    assert all(doc["limits"][key] > 0 for key in ("max_bytes", "max_pixels", "timeout_s"))
    if server.path == "cgi":  # no pool answered: nothing to report
        assert "pool" not in doc
    else:
        pool = doc["pool"]
        assert pool["workers"] >= 1 and pool["alive"] == pool["workers"] and pool["uptime_s"] > 0
        assert 1 <= pool["busy"] <= pool["workers"]  # this very request


def test_head_has_headers_only(server: Server) -> None:
    reply = call(server, "HEAD")
    assert reply.status == 200 and reply.body == b""
    assert reply.headers["content-type"].startswith("application/json")
    _assert_common_headers(reply)


def test_options_preflight_for_an_allowed_origin(server: Server) -> None:
    reply = call(server, "OPTIONS", headers={
        "Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    })
    assert reply.status == 204
    assert reply.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "POST" in reply.headers["access-control-allow-methods"]
    assert "content-type" in reply.headers["access-control-allow-headers"].lower()
    assert "Origin" in reply.headers.get("vary", "")
    # The actual request from that origin carries the header too, so the browser may read it.
    assert call(server, "GET", headers={"Origin": ALLOWED_ORIGIN}).headers["access-control-allow-origin"] == (
        ALLOWED_ORIGIN)


def test_options_preflight_for_a_refused_origin(server: Server) -> None:
    reply = call(server, "OPTIONS", headers={"Origin": "http://evil.example",
                                             "Access-Control-Request-Method": "POST"})
    assert reply.status == 204
    assert "access-control-allow-origin" not in reply.headers
    assert "POST" in reply.headers["allow"]


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_other_methods_are_405_with_allow(server: Server, method: str) -> None:
    reply = call(server, method, body=b"x", headers={"Content-Type": "image/png"})
    _assert_error(reply, 405, "method_not_allowed")
    allowed = {m.strip() for m in reply.headers["allow"].split(",")}
    assert allowed == {"GET", "HEAD", "POST", "DELETE", "OPTIONS"}


# --- Every request form returns the right text -------------------------------------------------

def _json_body(data: bytes, prefix: str = "") -> bytes:
    return json.dumps({"image_base64": prefix + base64.b64encode(data).decode()}).encode()


def _form(field: str, **kwargs: str) -> Callable[[bytes], tuple[bytes, dict[str, str]]]:
    def build(data: bytes) -> tuple[bytes, dict[str, str]]:
        body, ctype = multipart(field, data, **kwargs)
        return body, {"Content-Type": ctype}
    return build


FORMS: dict[str, Callable[[bytes], tuple[bytes, dict[str, str]]]] = {
    "multipart-image": _form("image"),
    "multipart-file": _form("file"),
    # The file name and part type are the client's word only: never used, never trusted.
    "multipart-image_file": _form("image_file", filename="../../etc/passwd", content_type="text/plain"),
    "raw-image/png": lambda d: (d, {"Content-Type": "image/png"}),
    "raw-image/jpeg-declared-wrongly": lambda d: (d, {"Content-Type": "image/jpeg"}),
    "raw-octet-stream": lambda d: (d, {"Content-Type": "application/octet-stream"}),
    "raw-no-content-type": lambda d: (d, {}),
    "json-base64": lambda d: (_json_body(d), {"Content-Type": "application/json"}),
    "json-data-url": lambda d: (_json_body(d, "data:image/png;base64,"),
                                {"Content-Type": "application/json; charset=utf-8"}),
}


@pytest.mark.parametrize("form", FORMS)
def test_request_forms_return_the_text(server: Server, lines: list[Sample], norm: Callable[[str], str],
                                       form: str) -> None:
    sample = lines[1]
    body, headers = FORMS[form](sample.read())
    reply = call(server, "POST", "mode=line", body, headers)
    assert reply.status == 200, reply.body[:300]
    _assert_common_headers(reply)
    doc = reply.json()
    assert doc["ok"] is True and len(doc["lines"]) == 1
    assert cer([sample.text], [doc["text"]], norm) <= LINE_CER_MAX, doc["text"]


def test_self_rendered_line_in_both_formats(server: Server) -> None:
    """Needs no eval data: a line rendered with a Debian font, as raw PNG and as multipart JPEG."""
    png = render_text([RENDERED_TEXT])
    reply = call(server, "POST", "mode=line&format=text", png, {"Content-Type": "image/png"})
    assert reply.status == 200 and reply.headers["content-type"] == "text/plain; charset=utf-8"
    _assert_common_headers(reply)
    assert cer([RENDERED_TEXT], [reply.body.decode("utf-8")], _simple) <= RENDERED_CER_MAX, reply.body
    page = render_text([RENDERED_TEXT, "Thank you"], fmt="JPEG")
    body, ctype = multipart("image", page, "a.jpg", "image/jpeg")
    doc = call(server, "POST", "", body, {"Content-Type": ctype}).json()
    assert doc["ok"] is True and len(doc["lines"]) == 2
    assert cer([RENDERED_TEXT + "Thank you"], [doc["text"]], _simple) <= RENDERED_CER_MAX, doc["text"]


def test_receipt_page(server: Server, norm: Callable[[str], str]) -> None:
    sample = _samples("sroie_receipts_en", 1)[0]
    reply = call(server, "POST", "mode=page", sample.read(), {"Content-Type": "image/jpeg"})
    assert reply.status == 200, reply.body[:300]
    doc = reply.json()
    width, height = doc["image"]["width"], doc["image"]["height"]
    assert len(doc["lines"]) > 10
    for line in doc["lines"]:
        assert 0 <= line["score"] <= 1 and len(line["box"]) == 4
        assert all(-1 <= x <= width + 1 and -1 <= y <= height + 1 for x, y in line["box"])
    assert set(doc["timing_ms"]) == {"decode", "detect", "classify", "recognize", "total"}
    assert cer([sample.text], [doc["text"]], norm) <= PAGE_CER_MAX


def test_eight_concurrent_posts_are_all_right(server: Server, lines: list[Sample],
                                              norm: Callable[[str], str]) -> None:
    PNG = {"Content-Type": "image/png"}

    def post(sample: Sample) -> Reply:
        """As a good client does: a 503 busy is retried after its Retry-After (the pure CGI caps
        concurrent recognitions at 2 per core; the pool queues)."""
        for _attempt in range(20):
            reply = call(server, "POST", "mode=line&format=text", sample.read(), PNG)
            if reply.status != 503:
                return reply
            _assert_error(reply, 503, "busy")
            time.sleep(int(reply.headers["retry-after"]))
        return reply

    with ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(post, lines))
    assert [r.status for r in replies] == [200] * len(lines)
    hyps = [r.body.decode("utf-8") for r in replies]
    assert cer([s.text for s in lines], hyps, norm) <= LINE_CER_MAX, hyps


def test_query_options(server: Server) -> None:
    png = render_text([RENDERED_TEXT])
    doc = call(server, "POST", "mode=line&cls=1&min_score=0.3", png, {}).json()
    assert doc["ok"] is True and doc["text"]
    none = call(server, "POST", "mode=line&min_score=1", png, {}).json()
    assert none["ok"] is True and none["lines"] == [] and none["text"] == ""
    packs = call(server, "GET").json()["packs_installed"]
    other = next((p for p in packs if p != call(server, "GET").json()["model"]), None)
    if other:
        doc = call(server, "POST", f"mode=line&pack={other}", png, {}).json()
        assert doc["ok"] is True and doc["model"] == other
    _assert_error(call(server, "POST", "pack=not-installed", png, {}), 400, "bad_request")


# --- Refusals ----------------------------------------------------------------------------------

def _takes_chunked(server: Server) -> bool:
    """lighttpd buffers a chunked body and passes CONTENT_LENGTH; Apache streams it with none to
    FastCGI (read to its end, the byte cap enforced while reading) and to a CGI (which cannot
    know where it ends → 411)."""
    return server.kind == "lighttpd" or server.path == "fastcgi"


def test_chunked_post(server: Server) -> None:
    """As firmware sends when it does not know the length (ESP-IDF's esp_http_client, length -1)."""
    data = render_text([RENDERED_TEXT])
    chunks = (data[i:i + 4096] for i in range(0, len(data), 4096))
    reply = call(server, "POST", "mode=line&format=text", chunks, {"Content-Type": "image/png"}, chunked=True)
    if _takes_chunked(server):
        assert reply.status == 200, reply.body[:300]
        assert cer([RENDERED_TEXT], [reply.body.decode()], _simple) <= RENDERED_CER_MAX, reply.body
    else:
        _assert_error(reply, 411, "length_required")


def test_chunked_post_over_the_byte_cap_is_413(server: Server) -> None:
    """A chunked body past the cap is refused with the JSON 413 (by the pool while it reads; by
    lighttpd's buffered CONTENT_LENGTH before the application reads a byte)."""
    max_bytes = call(server, "GET").json()["limits"]["max_bytes"]
    body = b"\x89PNG" + bytes(max_bytes)
    chunks = (body[i:i + (1 << 16)] for i in range(0, len(body), 1 << 16))
    reply = call(server, "POST", "", chunks, {"Content-Type": "image/png"}, chunked=True)
    if _takes_chunked(server):
        _assert_error(reply, 413, "payload_too_large")
    else:
        _assert_error(reply, 411, "length_required")


def test_post_without_length_is_411(server: Server) -> None:
    reply = _post_headers_first(server, {"Content-Type": "image/png"})
    assert reply.status == 411
    if server.kind == "apache":  # lighttpd answers this one itself, before the application runs
        _assert_error(reply, 411, "length_required")


def test_the_server_refuses_a_huge_body_itself(server: Server) -> None:
    """The server's own body limit (a little above the CGI's) is the backstop: 413 from its headers."""
    reply = _post_headers_first(server, {"Content-Type": "image/png", "Content-Length": str(256 << 20)},
                                b"\x89PNG" + bytes(4096))
    assert reply.status == 413


def _post_headers_first(server: Server, headers: dict[str, str], start: bytes = b"") -> Reply:
    """A POST whose headers say what they like, followed by ``start`` only, then the answer."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest("POST", "/cgi-bin/ocr.cgi")
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders(start or None)
        reply = conn.getresponse()
        return Reply(reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read())
    finally:
        conn.close()


def test_body_over_the_byte_cap_is_413(server: Server) -> None:
    max_bytes = call(server, "GET").json()["limits"]["max_bytes"]
    reply = call(server, "POST", "", b"\x89PNG" + bytes(max_bytes), {"Content-Type": "image/png"})
    _assert_error(reply, 413, "payload_too_large")


def test_pixel_bomb_is_413(server: Server) -> None:
    reply = call(server, "POST", "", png_header_only(30000, 30000), {"Content-Type": "image/png"})
    _assert_error(reply, 413, "image_too_large")


@pytest.mark.parametrize(("body", "ctype"), [
    (b"hello, not an image", "image/png"),
    (b"GIF89a is not one of the formats", "application/octet-stream"),  # a PDF is: test_cgi_documents
    (b"just text", "text/plain"),
])
def test_unsupported_media_is_415(server: Server, body: bytes, ctype: str) -> None:
    _assert_error(call(server, "POST", "", body, {"Content-Type": ctype}), 415, "unsupported_media_type")


def test_truncated_png_is_422(server: Server) -> None:
    data = render_text([RENDERED_TEXT])
    reply = call(server, "POST", "mode=line", data[: len(data) // 2], {"Content-Type": "image/png"})
    _assert_error(reply, 422, "decode_failed")


@pytest.mark.parametrize(("query", "body", "ctype"), [
    ("mode=column", b"x", "image/png"),
    ("format=xml", b"x", "image/png"),
    ("min_score=2", b"x", "image/png"),
    ("cls=maybe", b"x", "image/png"),
    ("colour=blue", b"x", "image/png"),
    ("", b"{not json", "application/json"),
    ("", b'{"image": "abc"}', "application/json"),
    ("", b'{"image_base64": "not base64!"}', "application/json"),
    ("", b"", "image/png"),
    ("", b"--b\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--b--\r\n",
     "multipart/form-data; boundary=b"),
    ("", b"--b\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nx",
     "multipart/form-data; boundary=b"),
])
def test_bad_requests_are_400(server: Server, query: str, body: bytes, ctype: str) -> None:
    _assert_error(call(server, "POST", query, body, {"Content-Type": ctype}), 400, "bad_request")


# --- Limits that need a server of their own ------------------------------------------------------

@pytest.mark.parametrize(("kind", "path"), CONFIGS, ids=[f"{k}-{p}" for k, p in CONFIGS])
def test_wall_clock_limit_is_503_timeout(prefix: Path, kind: str, path: str) -> None:
    """A tiny CRNNOCR_TIMEOUT_S: the CGI's watchdog, or the pool's supervisor, answers 503
    ``timeout`` and logs one line."""
    _skip_unless_installed(kind)
    data = render_text([RENDERED_TEXT] * 12)
    with serving(kind, path, prefix, env={"CRNNOCR_TIMEOUT_S": "0.05"}) as srv:
        reply = call(srv, "POST", "mode=page", data, {"Content-Type": "image/png"})
        _assert_error(reply, 503, "timeout")
        # CORS is off unless configured: no CORS headers at all.
        preflight = call(srv, "OPTIONS", headers={"Origin": ALLOWED_ORIGIN})
        assert not any(name.startswith("access-control-") for name in preflight.headers)
        log = _logs(srv)
        assert "timeout" in log and "Traceback" not in log
        assert not any(srv.tmp_dir.iterdir())


@pytest.mark.parametrize(("kind", "path"), CONFIGS, ids=[f"{k}-{p}" for k, p in CONFIGS])
def test_misconfiguration_is_500_internal_in_one_log_line(prefix: Path, kind: str, path: str) -> None:
    _skip_unless_installed(kind)
    with serving(kind, path, prefix, env={"CRNNOCR_THREADS": "many"}) as srv:
        _assert_error(call(srv, "GET"), 500, "internal")
        _assert_error(call(srv, "POST", "", b"x", {"Content-Type": "image/png"}), 500, "internal")
        lines = _logs(srv).splitlines()
        said = "crnnocr: internal: the server is misconfigured"
        assert sum(line.startswith(said) for line in lines) == 2, lines
        assert not any("Traceback" in line for line in lines)


# --- Cold start: cheap requests must not pay for the OCR stack -----------------------------------

HEAVY_MODULES = ("numpy", "cv2", "onnxruntime", "PIL")


def _imports_of_one_hit(prefix: Path, tmp: Path, environ: dict[str, str], body: bytes = b"",
                        status: bytes = b"Status: ") -> set[str]:
    """Modules one CGI hit imports: the installed script run directly with its shebang's flags,
    as a server would, with no pool to forward to and its temp files and slots in ``tmp``."""
    cgi = prefix / "cgi-bin" / "ocr.cgi"
    python, *flags = cgi.read_text().splitlines()[0][2:].split()
    environ = {"CRNNOCR_POOL_SOCKET": "", "TMPDIR": str(tmp), "CRNNOCR_CGI_SLOT_DIR": str(tmp / "slots"),
               **environ}
    done = subprocess.run([python, *flags, "-X", "importtime", str(cgi)], input=body, capture_output=True,
                          env=environ, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout.startswith(status), done.stdout[:200]
    return {line.rsplit("|", 1)[1].strip() for line in done.stderr.decode().splitlines()
            if line.startswith("import time:") and "|" in line}


@pytest.mark.parametrize("environ", [
    {"REQUEST_METHOD": "GET"},
    {"REQUEST_METHOD": "HEAD"},
    {"REQUEST_METHOD": "OPTIONS", "HTTP_ORIGIN": ALLOWED_ORIGIN, "CRNNOCR_CORS_ORIGINS": ALLOWED_ORIGIN},
    {"REQUEST_METHOD": "PUT"},
    {"REQUEST_METHOD": "POST", "CONTENT_TYPE": "image/png"},
    {"REQUEST_METHOD": "POST", "CONTENT_TYPE": "image/png", "CONTENT_LENGTH": str(1 << 40)},
], ids=["GET", "HEAD", "OPTIONS", "405", "411", "413"])
def test_cheap_requests_import_no_ocr_stack(prefix: Path, tmp_path: Path, environ: dict[str, str]) -> None:
    imported = _imports_of_one_hit(prefix, tmp_path, environ)
    assert "ocr_http.app" in imported
    assert not imported & set(HEAVY_MODULES)


def test_a_recognition_does_import_the_ocr_stack(prefix: Path, tmp_path: Path) -> None:
    """The control for the test above: the same probe sees ONNX Runtime when it is used."""
    png = render_text([RENDERED_TEXT])
    environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": "image/png", "CONTENT_LENGTH": str(len(png)),
               "QUERY_STRING": "mode=line"}
    assert "onnxruntime" in _imports_of_one_hit(prefix, tmp_path, environ, png)
    assert [p.name for p in tmp_path.iterdir()] == ["slots"]  # its slot files, nothing else


def test_a_hit_refused_as_busy_imports_no_ocr_stack(prefix: Path, tmp_path: Path) -> None:
    """The slot is taken before the OCR stack is imported: a refused hit costs no ~100 MB."""
    png = render_text([RENDERED_TEXT])
    environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": "image/png", "CONTENT_LENGTH": str(len(png)),
               "QUERY_STRING": "mode=line", "CRNNOCR_CGI_SLOTS": "1"}
    held = take_slot(str(tmp_path / "slots"), 1)
    assert held is not None
    try:
        imported = _imports_of_one_hit(prefix, tmp_path, environ, png, b"Status: 503")
    finally:
        os.close(held)
    assert not imported & set(HEAVY_MODULES)


# --- Runs last for each server (pytest keeps file order within a fixture instance) ---------------

def test_no_temp_files_and_no_traceback(server: Server, prefix: Path) -> None:
    leftovers = [p for d in (server.tmp_dir, server.run_dir / "upload") for p in d.iterdir()]
    assert leftovers == []
    log = _logs(server)
    assert "Traceback" not in log, log
    assert "crnnocr: internal error" not in log, log
    # Nothing was written into the installed tree (bytecode, caches, sockets: all elsewhere).
    assert tree_state(prefix) == INSTALLED_STATE[prefix]
