"""hOCR 1.2 (https://kba.github.io/hocr-spec/1.2/), shaped as Tesseract writes it.

``ocr_page`` per page, ``ocr_carea`` with one ``ocr_par`` per block, ``ocr_line`` per visual row,
``ocrx_word`` per word with its ``bbox`` and ``x_wconf`` (0-100). Pages of a document follow one
another in one file; ``ppageno`` counts them from 0, ids carry the page's own number.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from .. import __version__
from .geometry import Rect, baseline, blocks, rect

if TYPE_CHECKING:
    from . import Result

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
    "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title></title>
  <meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>
  <meta name="ocr-system" content="{system}"/>
  <meta name="ocr-capabilities" content="ocr_page ocr_carea ocr_par ocr_line ocrx_word ocrp_wconf"/>
 </head>
 <body>
"""


def _bbox(r: Rect) -> str:
    return f"bbox {r[0]} {r[1]} {r[2]} {r[3]}"


def render_hocr(result: Result) -> str:
    out = [HEAD.format(system=escape(f"crnnocr {__version__} ({result.model})"))]
    for index, page in enumerate(result.pages):
        n = page.number
        dpi = getattr(result, "dpi", None)
        scan_res = f"; scan_res {dpi} {dpi}" if dpi else ""
        out.append(f"  <div class='ocr_page' id='page_{n}' "
                   f"title='{_bbox((0, 0, page.width, page.height))}; ppageno {index}{scan_res}'>\n")
        row_id = word_id = 0
        for block_id, block in enumerate(blocks(page), 1):
            out.append(f"   <div class='ocr_carea' id='block_{n}_{block_id}' title='{_bbox(block.rect)}'>\n")
            out.append(f"    <p class='ocr_par' id='par_{n}_{block_id}' title='{_bbox(block.rect)}'>\n")
            for row in block.rows:
                row_id += 1
                slope, offset = baseline(row)
                out.append(f"     <span class='ocr_line' id='line_{n}_{row_id}' "
                           f"title='{_bbox(row.rect)}; baseline {slope:.3f} {offset}'>")
                spans = []
                for word in row.words:
                    word_id += 1
                    r = rect([word.box], page.width, page.height)
                    spans.append(f"<span class='ocrx_word' id='word_{n}_{word_id}' "
                                 f"title='{_bbox(r)}; x_wconf {round(100 * word.score)}'>"
                                 f"{escape(word.text, quote=False)}</span>")
                out.append(" ".join(spans) + "</span>\n")
            out.append("    </p>\n   </div>\n")
        out.append("  </div>\n")
    out.append(" </body>\n</html>\n")
    return "".join(out)
