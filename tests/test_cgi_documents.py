"""Documents and output formats through the CGI under real servers (issue 13).

PDF and multi-page TIFF bodies, ``pages=``, ``dpi=``, ``format=`` with each format's Content-Type,
``words=1``, and every document error with its status and code. The receipts PDF runs under
lighttpd; the formats run under both lighttpd and Apache.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deploy.servers import Server, call, multipart, running_server
from ocr_core import Engine, EngineConfig, RecognizeOptions
from ocr_core.formats import FORMATS, MEDIA_TYPES
from tests.support import (
    RECEIPT_CER,
    cer,
    encrypted_pdf,
    multipage_tiff,
    oversized_pdf,
    receipt_pages,
    render_text,
    scanned_pdf,
)

PDF = {"Content-Type": "application/pdf"}


def _server(kind: str, prefix: Path) -> Iterator[Server]:
    if not shutil.which("lighttpd" if kind == "lighttpd" else "apache2"):
        pytest.skip(f"{kind.upper()} IS NOT INSTALLED: `make setup` installs it (setup/debian-packages.txt)")
    with running_server(kind, prefix) as srv:
        yield srv


@pytest.fixture(scope="module")
def lighttpd(prefix: Path) -> Iterator[Server]:
    yield from _server("lighttpd", prefix)


@pytest.fixture(scope="module", params=["lighttpd", "apache"])
def server(request: pytest.FixtureRequest, prefix: Path) -> Iterator[Server]:
    yield from _server(request.param, prefix)


@pytest.fixture(scope="module")
def cgi_engine() -> Engine:
    """The engine a CGI hit runs: one-shot, so ``auto`` is ONNX Runtime (ocr_core.backends), whose
    boxes differ by a pixel from OpenVINO bf16's; rendered formats are compared byte for byte."""
    return Engine.load(EngineConfig.from_env(backend="onnxruntime"))


@pytest.fixture(scope="module")
def small_pdf() -> bytes:
    return scanned_pdf([render_text(["First page words"]), render_text(["Second page", "two rows"])])


def test_receipts_pdf_pages_within_the_bound(lighttpd: Server, norm: Callable[[str], str]) -> None:
    receipts = receipt_pages(3)
    reply = call(lighttpd, "POST", "", scanned_pdf([s.read() for s in receipts]), PDF)
    assert reply.status == 200, reply.body[:500]
    document = reply.json()
    assert document["document"] == {"format": "PDF", "page_count": 3, "dpi": 200}
    texts = [page["text"] for page in document["pages"]]
    assert document["text"].split("\f") == texts
    assert cer([s.text for s in receipts], texts, norm) <= RECEIPT_CER


def test_tiff_page_selection_in_a_form(lighttpd: Server, engine: Engine) -> None:
    pages = [render_text(["Alpha page"]), render_text(["Beta page"]), render_text(["Gamma page"])]
    body, content_type = multipart("image", multipage_tiff(pages), "scan.tif", "image/tiff")
    reply = call(lighttpd, "POST", "pages=2-3&format=text", body, {"Content-Type": content_type})
    assert reply.status == 200, reply.body[:500]
    assert reply.body.decode("utf-8") == "Beta page\fGamma page"
    assert reply.headers["content-type"] == MEDIA_TYPES["text"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_with_its_content_type(server: Server, cgi_engine: Engine, small_pdf: bytes,
                                            fmt: str) -> None:
    reply = call(server, "POST", f"format={fmt}&dpi=150", small_pdf, PDF)
    assert reply.status == 200, reply.body[:500]
    assert reply.headers["content-type"] == MEDIA_TYPES[fmt]
    expected = cgi_engine.recognize(small_pdf, RecognizeOptions(dpi=150))
    if fmt == "json":
        got = reply.json()
        assert got["document"]["dpi"] == 150
        assert [p["text"] for p in got["pages"]] == [p.text for p in expected.pages]
    else:
        assert reply.body.decode("utf-8") == expected.render(fmt)


def test_words_in_json_on_request(lighttpd: Server, engine: Engine) -> None:
    image = render_text(["Invoice total 42.50"])
    plain = call(lighttpd, "POST", "", image, {"Content-Type": "image/png"}).json()
    assert set(plain["lines"][0]) == {"text", "score", "box", "block", "row"}  # today's JSON
    with_words = call(lighttpd, "POST", "words=1", image, {"Content-Type": "image/png"}).json()
    words = with_words["lines"][0]["words"]
    assert [w["text"] for w in words] == ["Invoice", "total", "42.50"]
    assert all(set(w) == {"text", "score", "box"} for w in words)


def test_document_errors_have_their_status_and_code(lighttpd: Server, small_pdf: bytes,
                                                    tmp_path: Path) -> None:
    many = scanned_pdf([render_text([str(n)], size=12) for n in range(51)])
    cases = [
        ("", encrypted_pdf(small_pdf, tmp_path), 422, "document_encrypted"),
        ("", b"%PDF-1.7\n" + bytes(range(256)) * 8, 422, "decode_failed"),
        ("", many, 413, "too_many_pages"),
        ("", oversized_pdf(), 413, "image_too_large"),
        ("pages=9", small_pdf, 400, "bad_request"),
        ("pages=2-1", small_pdf, 400, "bad_request"),
        ("dpi=5", small_pdf, 400, "bad_request"),
        ("dpi=abc", small_pdf, 400, "bad_request"),
        ("format=pdf", small_pdf, 400, "bad_request"),
        ("words=maybe", small_pdf, 400, "bad_request"),
    ]
    for query, body, status, code in cases:
        reply = call(lighttpd, "POST", query, body, PDF)
        assert (reply.status, reply.json()["error"]["code"]) == (status, code), (query, reply.body[:300])
        message = reply.json()["error"]["message"]
        assert "Traceback" not in message and "/" not in message.replace("1-3,7", ""), message
    # A selection takes a long document under the limit.
    reply = call(lighttpd, "POST", "pages=50-51&mode=line", many, PDF)
    assert reply.status == 200 and [p["number"] for p in reply.json()["pages"]] == [50, 51]
    assert json.loads(call(lighttpd, "GET").body)["limits"]["max_pages"] == 50
