"""ALTO v4 (https://www.loc.gov/standards/alto/), valid against the official alto-4-4.xsd.

One ``Page`` per page (``PHYSICAL_IMG_NR`` its number), a ``TextBlock`` per block, a ``TextLine``
per visual row, a ``String`` per word with ``HPOS/VPOS/WIDTH/HEIGHT`` in pixels and ``WC`` (0-1),
and an ``SP`` between words.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from xml.sax.saxutils import quoteattr

from .. import __version__
from .geometry import Rect, blocks, rect

if TYPE_CHECKING:
    from . import Result

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<alto xmlns="http://www.loc.gov/standards/alto/ns-v4#" xmlns:xlink="http://www.w3.org/1999/xlink" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" \
xsi:schemaLocation="http://www.loc.gov/standards/alto/ns-v4# http://www.loc.gov/standards/alto/v4/alto-4-4.xsd">
 <Description>
  <MeasurementUnit>pixel</MeasurementUnit>
  <OCRProcessing ID="ocr_processing">
   <ocrProcessingStep>
    <processingStepSettings>{model}</processingStepSettings>
    <processingSoftware>
     <softwareName>crnnocr</softwareName>
     <softwareVersion>{version}</softwareVersion>
    </processingSoftware>
   </ocrProcessingStep>
  </OCRProcessing>
 </Description>
 <Layout>
"""


def _position(r: Rect) -> str:
    return f'HPOS="{r[0]}" VPOS="{r[1]}" WIDTH="{r[2] - r[0]}" HEIGHT="{r[3] - r[1]}"'


def render_alto(result: Result) -> str:
    out = [HEAD.format(model=_escape(f"model {result.model}"), version=__version__)]
    for page in result.pages:
        n = page.number
        whole = (0, 0, page.width, page.height)
        out.append(f'  <Page ID="page_{n}" PHYSICAL_IMG_NR="{n}" '
                   f'WIDTH="{page.width}" HEIGHT="{page.height}">\n')
        out.append(f"   <PrintSpace {_position(whole)}>\n")
        row_id = word_id = 0
        for block_id, block in enumerate(blocks(page), 1):
            out.append(f'    <TextBlock ID="block_{n}_{block_id}" {_position(block.rect)}>\n')
            for row in block.rows:
                row_id += 1
                out.append(f'     <TextLine ID="line_{n}_{row_id}" {_position(row.rect)}>\n')
                previous: Rect | None = None
                for word in row.words:
                    word_id += 1
                    r = rect([word.box], page.width, page.height)
                    if previous is not None:  # the space between two words
                        left, top = previous[2], min(previous[1], r[1])
                        out.append(f'      <SP WIDTH="{max(r[0] - left, 0)}" HPOS="{left}" VPOS="{top}"/>\n')
                    out.append(f'      <String ID="string_{n}_{word_id}" {_position(r)} '
                               f'WC="{word.score:.4f}" CONTENT={quoteattr(word.text)}/>\n')
                    previous = r
                out.append("     </TextLine>\n")
            out.append("    </TextBlock>\n")
        out.append("   </PrintSpace>\n  </Page>\n")
    out.append(" </Layout>\n</alto>\n")
    return "".join(out)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
