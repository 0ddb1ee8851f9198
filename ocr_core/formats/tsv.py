"""Tesseract's TSV: the same 12 columns and header, one row per page, block, paragraph, line
(a visual row) and word (levels 1-5); numbers count from 1 within their parent, as Tesseract's do.
Boxes are left, top, width, height in pixels; ``conf`` is the word's confidence 0-100, and -1 on
the other levels, whose ``text`` is empty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .geometry import Rect, blocks, rect

if TYPE_CHECKING:
    from . import Result

HEADER = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n"


def _row(level: int, ids: tuple[int, int, int, int, int], r: Rect, conf: str = "-1", text: str = "") -> str:
    cells = (level, *ids, r[0], r[1], r[2] - r[0], r[3] - r[1], conf, text)
    return "\t".join(map(str, cells)) + "\n"


def render_tsv(result: Result) -> str:
    out = [HEADER]
    for page in result.pages:
        p = page.number
        out.append(_row(1, (p, 0, 0, 0, 0), (0, 0, page.width, page.height)))
        for b, block in enumerate(blocks(page), 1):
            out.append(_row(2, (p, b, 0, 0, 0), block.rect))
            out.append(_row(3, (p, b, 1, 0, 0), block.rect))
            for n, row in enumerate(block.rows, 1):
                out.append(_row(4, (p, b, 1, n, 0), row.rect))
                for w, word in enumerate(row.words, 1):
                    r = rect([word.box], page.width, page.height)
                    out.append(_row(5, (p, b, 1, n, w), r, f"{100 * word.score:.6f}", word.text))
    return "".join(out)
