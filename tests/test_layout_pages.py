"""Reading order through the real engine, on pages drawn here with a known order (see
tests/rendered_pages.py), at several sizes and spacings; and the text on every surface."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.servers import call, installed_tree, running_server
from ocr_core import Engine
from tests import rendered_pages as pages

ROOT = Path(__file__).resolve().parent.parent

# (name, page): each layout at two or three sizes (font px) and spacings (in line heights).
PAGES = {
    "cards 2x2, size 18, gap 1": lambda: pages.card_grid(18, 1.0),
    "cards 2x2, size 30, gap 4": lambda: pages.card_grid(30, 4.0),
    "cards 3x2, size 22, gap 2": lambda: pages.card_grid(22, 2.0, columns=3),
    "cards 2x2 level lines, size 20, gap 2": lambda: pages.card_grid(20, 2.0, same_shape=True),
    "cards 2x2 level lines, size 30, gap 1": lambda: pages.card_grid(30, 1.0, same_shape=True),
    "article, size 18, gutter 2.5": lambda: pages.two_column_article(18, 2.5),
    "article, size 26, gutter 4": lambda: pages.two_column_article(26, 4.0),
    "article, size 30, gutter 8": lambda: pages.two_column_article(30, 8.0),
    "verse, size 20, gutter 1.5": lambda: pages.verse_columns(20, 1.5),
    "verse, size 30, gutter 6": lambda: pages.verse_columns(30, 6.0),
    "receipt, size 18, gap 1": lambda: pages.receipt(18, 1.0),
    "receipt, size 26, gap 3": lambda: pages.receipt(26, 3.0),
    "receipt, size 22, gap 8": lambda: pages.receipt(22, 8.0),
    "receipt, size 36, gap 16": lambda: pages.receipt(36, 16.0),
    "receipt turned 4°, size 26, gap 4": lambda: pages.receipt(26, 4.0, angle=4),
    "receipt turned -3°, size 20, gap 8": lambda: pages.receipt(20, 8.0, angle=-3),
    "form, size 18, tab 1, spacing 1.8": lambda: pages.key_value_form(18, 1.0, 1.8),
    "form, size 26, tab 4, spacing 2.2": lambda: pages.key_value_form(26, 4.0, 2.2),
    "form, size 30, tab 10, spacing 1.6": lambda: pages.key_value_form(30, 10.0, 1.6),
}


@pytest.mark.parametrize("name", PAGES)
def test_rendered_page_reads_in_order(engine: Engine, name: str) -> None:
    page = PAGES[name]()
    result = engine.recognize(page.png)
    assert result.text == page.text
    assert len({line.block for line in result.lines}) == len(page.blocks)


def test_the_setup_demo_prints_an_item_and_its_price_on_one_line() -> None:
    out = subprocess.run([sys.executable, "-m", "ocr_core", "samples/receipt.png"], cwd=ROOT,
                         capture_output=True, text=True, check=True, timeout=60).stdout
    assert "Flat white 3.20" in out.splitlines()


def test_the_cgi_sends_the_engine_text_as_text_and_in_json(engine: Engine) -> None:
    page = pages.receipt(24, 6.0)
    want = engine.recognize(page.png).text
    assert want == page.text
    with installed_tree() as prefix, running_server("lighttpd", prefix) as server:
        headers = {"Content-Type": "image/png"}
        as_text = call(server, "POST", "format=text", page.png, headers)
        as_json = call(server, "POST", "", page.png, headers)
    assert as_text.status == 200 and as_text.body.decode("utf-8") == want
    document = json.loads(as_json.body)
    assert document["text"] == want
    assert {(line["block"], line["row"]) for line in document["lines"]} == {
        (line.block, line.row) for line in engine.recognize(page.png).lines
    }
