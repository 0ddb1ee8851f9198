"""Page previews (``preview=1``): each page of a document as a bounded JPEG, for the upload page.

Under a real lighttpd, by both HTTP paths (a CGI hit, FastCGI to the worker pool): a PDF and a
multi-page TIFF get a preview per page, in the page's proportions and within the size and byte
bounds; the JSON without the option, a single image's, and every other format are what they were
without it. Through the pool's real result cache (SQLite): a cached document still gets its
previews, and they are never stored.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from deploy.servers import Server, call, multipart, serving
from ocr_core.previews import MAX_JPEG_BYTES, MAX_SIDE, encode_preview
from ocr_http.app import Services, respond
from ocr_http.result_cache import ResultCache, create
from ocr_http.settings import CgiSettings
from tests.support import multipage_tiff, render_text, scanned_pdf

DATA_URL = "data:image/jpeg;base64,"
PDF = {"Content-Type": "application/pdf"}


@pytest.fixture(scope="module", params=["cgi", "fastcgi"])
def lighttpd(request: pytest.FixtureRequest, prefix: Path) -> Iterator[Server]:
    if not shutil.which("lighttpd"):
        pytest.skip("LIGHTTPD IS NOT INSTALLED: `make setup` installs it (setup/debian-packages.txt)")
    with serving("lighttpd", request.param, prefix) as srv:
        yield srv


@pytest.fixture(scope="module")
def page_images() -> list[bytes]:
    """A small page, and one wider than a preview may be (its preview is scaled down)."""
    return [render_text(["Invoice 2231 Berlin"]),
            render_text(["Total due 42.50 EUR, paid by card 7731"], size=90)]


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` without what differs from call to call (timings, the pool's ``cached`` mark)."""
    return {**{k: v for k, v in doc.items() if k != "cached"}, "timing_ms": None}


def _without_previews(doc: dict[str, Any]) -> dict[str, Any]:
    pages = [{k: v for k, v in page.items() if k != "preview"} for page in doc["pages"]]
    return _comparable({**doc, "pages": pages})


def _check_previews(doc: dict[str, Any]) -> None:
    """Every page has a JPEG preview of its own proportions, within the side and byte bounds."""
    for page in doc["pages"]:
        preview, size = page["preview"], page["image"]
        assert preview["url"].startswith(DATA_URL)
        jpeg = base64.b64decode(preview["url"][len(DATA_URL):], validate=True)
        assert len(jpeg) <= MAX_JPEG_BYTES
        with Image.open(io.BytesIO(jpeg)) as picture:
            assert picture.format == "JPEG" and picture.size == (preview["width"], preview["height"])
        assert max(preview["width"], preview["height"]) <= MAX_SIDE
        scale = min(1.0, MAX_SIDE / max(size["width"], size["height"]))
        assert preview["width"] == pytest.approx(size["width"] * scale, abs=1)
        assert preview["height"] == pytest.approx(size["height"] * scale, abs=1)


@pytest.mark.parametrize("kind", ["PDF", "TIFF"])
def test_a_document_gets_a_preview_of_each_page(lighttpd: Server, page_images: list[bytes],
                                               kind: str) -> None:
    if kind == "PDF":
        body, headers = scanned_pdf(page_images), PDF
    else:
        form, content_type = multipart("image", multipage_tiff(page_images), "scan.tif", "image/tiff")
        body, headers = form, {"Content-Type": content_type}
    plain = call(lighttpd, "POST", "", body, headers)
    shown = call(lighttpd, "POST", "preview=1", body, headers)
    assert plain.status == shown.status == 200, shown.body[:300]
    # Without the option the JSON is today's: no preview anywhere; with it, only previews are added.
    assert b"preview" not in plain.body
    assert _without_previews(shown.json()) == _without_previews(plain.json())
    widths = [Image.open(io.BytesIO(data)).width for data in page_images]  # PDFium rounds up
    assert [page["image"]["width"] for page in shown.json()["pages"]] == pytest.approx(widths, abs=1)
    _check_previews(shown.json())
    assert shown.json()["pages"][1]["preview"]["width"] == MAX_SIDE  # the wide page was scaled down
    if kind == "PDF":  # preview=0 is no preview; another format is that format's bytes, unchanged
        assert b"preview" not in call(lighttpd, "POST", "preview=0", body, headers).body
        assert (call(lighttpd, "POST", "preview=1&format=tsv", body, headers).body
                == call(lighttpd, "POST", "format=tsv", body, headers).body)


def test_a_single_image_gets_no_preview(lighttpd: Server, page_images: list[bytes]) -> None:
    """The client has the image it sent: the JSON is the same with or without the option."""
    plain = call(lighttpd, "POST", "", page_images[0], {"Content-Type": "image/png"})
    shown = call(lighttpd, "POST", "preview=1", page_images[0], {"Content-Type": "image/png"})
    assert plain.status == shown.status == 200
    assert _comparable(shown.json()) == _comparable(plain.json())


def test_a_bad_preview_value_is_refused(lighttpd: Server, page_images: list[bytes]) -> None:
    reply = call(lighttpd, "POST", "preview=maybe", scanned_pdf(page_images), PDF)
    assert reply.status == 400 and reply.json()["error"]["code"] == "bad_request"
    assert "preview must be 0 or 1" in reply.json()["error"]["message"]


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def read_exactly(self, length: int) -> bytes:
        return self._data[:length]

    def read_unsized(self, cap: int) -> bytes:
        return self._data


def test_a_cached_document_still_gets_previews_which_are_never_stored(tmp_path: Path,
                                                                       page_images: list[bytes]) -> None:
    """The pool's cache stores a document's JSON without previews, and adds them to a hit."""
    services = Services(cache=ResultCache(create(tmp_path), 64 << 20))
    pdf = scanned_pdf(page_images)

    def post(query: str) -> dict[str, Any]:
        environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/pdf",
                   "CONTENT_LENGTH": str(len(pdf)), "QUERY_STRING": query}
        response = respond(environ, _Body(pdf), CgiSettings(), services)
        assert response.status == 200, response.body[:300]
        return json.loads(response.body)

    first = post("preview=1")
    assert "cached" not in first
    _check_previews(first)
    hit = post("preview=1")
    assert hit["cached"] is True
    _check_previews(hit)
    assert hit["pages"] == first["pages"]
    plain_hit = post("")
    assert plain_hit["cached"] is True and b"preview" not in json.dumps(plain_hit).encode()


def test_a_preview_that_will_not_compress_is_made_smaller_to_fit() -> None:
    """Noise is the worst case for JPEG: the bound holds by quality first, then by size."""
    noise = np.random.default_rng(13).integers(0, 256, (2339, 1654, 3), dtype=np.uint8)
    picture, jpeg = encode_preview(noise)
    assert len(jpeg) <= MAX_JPEG_BYTES
    assert max(picture.shape[:2]) < MAX_SIDE
    with Image.open(io.BytesIO(jpeg)) as decoded:
        assert decoded.size == (picture.shape[1], picture.shape[0])
    # A page of text fits at full preview size.
    text = np.asarray(Image.open(io.BytesIO(render_text(["Total due 42.50 EUR"] * 30, size=60))))[:, :, ::-1]
    picture, jpeg = encode_preview(np.ascontiguousarray(text))
    assert max(picture.shape[:2]) == MAX_SIDE and len(jpeg) <= MAX_JPEG_BYTES
