"""Reading order: the page's text boxes as blocks of rows, in the order a person reads them.

The page is deskewed (the median slant of its long boxes), then cut recursively, XY-cut style:

1. **Strips.** A region is cut at every blank band that crosses its full width.
2. **Runs and gutters.** Consecutive strips are gathered while a vertical blank band (a gutter,
   at least ``MIN_GUTTER`` line heights wide) runs down all of them. A gutter only says that
   nothing crosses it: whether its two sides are read one after the other, or row by row across
   it, depends on what lies beside it (the whole sides, or the two columns next to it when a
   run has several gutters). The run is split, and each part cut again, when it is:

   - **a grid of cells:** blank bands cross the run ``CELL_BAND`` times wider than any gap
     between lines inside its columns, cutting it into two or more rows of cells, each with two
     cells or more of left-aligned, ragged-right text. Each cell is read whole, cell row by cell
     row. (Cards on a web page, whatever their lines do; not a receipt's sections, whose price
     cells are right-aligned figures.)
   - **running text** on both sides: columns ``RUNNING_WIDTH`` line heights wide or more, each
     line but the last of a paragraph one box filling ``RUNNING_FILL`` of the width or more.
     (Newspaper and paper columns, even when their lines sit on one baseline grid.)
   - **paragraphs of their own** on both sides: ``PARAGRAPHS`` paragraphs of ``PARAGRAPH_ROWS``
     rows or more, set on one line pitch, and a paragraph break level with a line of the other
     side. (Columns of verse: their lines fill nothing, but their stanzas end at other heights.)

   Otherwise the run is read as rows: an item beside its price at any distance, a label beside
   its value (a form's fields are not set on one pitch: values wrap, fields are left empty), the
   cells of a table, and two blocks whose lines line up with nothing else to tell them apart.
   That includes one row of same-shaped cards, which geometry cannot tell from a two-column form.
3. **Rows and blocks.** Where no cut applies, boxes that overlap vertically by ``ROW_OVERLAP`` of
   the smaller height form a row, read left to right. A gap of ``PARAGRAPH_BREAK`` line heights
   or more, and ``BREAK_OVER_USUAL`` times the usual gap between the rows, starts a new block (a
   paragraph); every part of a cut starts one too.

Every decision is relative to the height of the lines involved, never to pixels. A level of
cutting costs O(n log n) and cuts nest at most ``MAX_DEPTH`` deep (real layouts nest three or
four), so ordering is O(n log n) in the number of boxes.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from .median import median

# Detector boxes of neighbouring lines overlap a little, hiding the gaps between rows: each box
# is shrunk vertically by this share of its height on both sides before gaps are measured.
SHRINK = 0.15
# Two boxes share a row when they overlap vertically by this share of the smaller height.
ROW_OVERLAP = 0.5
# ... and a box more than this many times taller than its row does not move the row's extent.
ROW_OUTLIER = 1.5
# A gutter is a vertical blank band at least this many line heights wide; word spaces are less.
MIN_GUTTER = 0.8
# Only the widest few gutters of a run are tried (classic XY-cut tries only the widest).
MAX_GUTTERS_TRIED = 3
# A paragraph break: a gap at least this many line heights tall, and this many times the usual.
PARAGRAPH_BREAK = 1.0
BREAK_OVER_USUAL = 1.5
# Bands between rows of cells are at least this many times wider than gaps inside the cells.
CELL_BAND = 3.0
# Running text: columns at least this many line heights wide (some twenty characters), whose
# lines, but the last of each paragraph, fill this share of it (ragged right wraps at words).
RUNNING_WIDTH = 10.0
RUNNING_FILL = 0.6
# Paragraphs of their own: this many paragraphs of this many rows or more on each side.
PARAGRAPHS = 2
PARAGRAPH_ROWS = 3
# ... set on one line pitch: the pitches within paragraphs differ by at most this share.
PITCH_SPREAD = 0.25
# Cuts nest at most this deep; below, a region is read as rows.
MAX_DEPTH = 8


@dataclass(frozen=True)
class Placement:
    """Where one box sits in reading order: its index in the input, its block and its row, both
    numbered over the page from 0. A row never spans two blocks."""

    index: int
    block: int
    row: int


Rows = list[list[int]]  # rows of box indices, each left to right, rows top to bottom
Span = tuple[float, float]


def arrange(quads: Sequence[np.ndarray]) -> list[Placement]:
    """The boxes (N×4×2 quads, clockwise from top-left) in reading order, with blocks and rows."""
    if not len(quads):
        return []
    deskewed = _deskewed(np.asarray(quads, dtype=np.float64))
    bounds = np.column_stack([deskewed[:, :, 0].min(axis=1), deskewed[:, :, 1].min(axis=1),
                              deskewed[:, :, 0].max(axis=1), deskewed[:, :, 1].max(axis=1)])
    heights = bounds[:, 3] - bounds[:, 1]
    bounds[:, 1] += heights * SHRINK
    bounds[:, 3] -= heights * SHRINK
    page = _Page(bounds, heights)
    page.cut(np.arange(len(bounds)), 0)
    placements = []
    row_number = 0
    for block_number, block in enumerate(page.blocks):
        for row in block:
            placements += [Placement(i, block_number, row_number) for i in row]
            row_number += 1
    return placements


def _deskewed(quads: np.ndarray) -> np.ndarray:
    """Quads rotated by minus the page's skew.

    The skew is the median slant of the top edges of wide boxes (lines of text rather than
    words), so a photographed page tilted by a few degrees is ordered like a flat scan.
    """
    top = quads[:, 1] - quads[:, 0]
    side = np.linalg.norm(quads[:, 3] - quads[:, 0], axis=1)
    wide = np.linalg.norm(top, axis=1) > 2 * side
    if not wide.any():
        return quads
    angle = float(median(np.arctan2(top[wide, 1], top[wide, 0])))
    cos, sin = np.cos(-angle), np.sin(-angle)
    return quads @ np.array([[cos, -sin], [sin, cos]]).T


class _Page:
    """The boxes' upright bounds (shrunk vertically), their heights, and the blocks found so far.

    Bounds are kept twice: as an array, to select a region's boxes at once, and as lists of
    floats, which Python reads faster one value at a time.
    """

    def __init__(self, bounds: np.ndarray, heights: np.ndarray) -> None:
        self.b = bounds
        self.x0, self.y0, self.x1, self.y1 = (bounds[:, k].tolist() for k in range(4))
        self.heights = heights
        self.blocks: list[Rows] = []

    def height(self, idx: np.ndarray) -> float:
        """The region's line height: the median height of its boxes."""
        return float(median(self.heights[idx]))

    # ---- the recursive cut -------------------------------------------------------------------

    def cut(self, idx: np.ndarray, depth: int) -> None:
        """Appends the region's blocks, in reading order, to ``self.blocks``."""
        strips = self.strips(idx)
        if depth >= MAX_DEPTH or len(idx) < 4:  # a split needs two rows on each side
            self.paragraphs(strips)
            return
        width = MIN_GUTTER * self.height(idx)
        lo, hi = min(self.x0[i] for i in idx.tolist()), max(self.x1[i] for i in idx.tolist())
        blanks = [self.blanks(strip, lo, hi) for strip in strips]
        pending: list[np.ndarray] = []  # strips read as rows, not yet emitted
        i = 0
        while i < len(strips):
            j, gutters = self.run(strips, blanks, i, width)
            parts = self.split(strips[i:j], gutters) if gutters else None
            if parts is None:
                pending += strips[i:j]
            else:
                self.paragraphs(pending)
                pending = []
                for part in parts:
                    self.cut(part, depth + 1)
            i = j
        self.paragraphs(pending)

    def strips(self, idx: np.ndarray) -> list[np.ndarray]:
        """The region cut at every blank band across its full width, top to bottom."""
        b = self.b
        order = idx[np.argsort(b[idx, 1], kind="stable")]
        reach = np.maximum.accumulate(b[order, 3])
        return np.split(order, np.nonzero(b[order[1:], 1] > reach[:-1])[0] + 1)

    def blanks(self, strip: np.ndarray, lo: float, hi: float) -> tuple[list[Span], float, float]:
        """The x-intervals of [lo, hi] that no box of the strip covers, left to right, and the
        strip's own left and right edges."""
        x0, x1 = self.x0, self.x1
        order = sorted(strip.tolist(), key=x0.__getitem__)
        spans = [(lo, x0[order[0]])]
        reach = x1[order[0]]
        for i in order[1:]:
            if x0[i] > reach:
                spans.append((reach, x0[i]))
            reach = max(reach, x1[i])
        spans.append((reach, hi))
        return [(a, z) for a, z in spans if z > a], x0[order[0]], reach

    def run(self, strips: list[np.ndarray], blanks: list[tuple[list[Span], float, float]], i: int,
            width: float) -> tuple[int, list[Span]]:
        """The end of the longest run of strips from ``i`` that keeps a gutter, and its gutters."""
        common, left, right = blanks[i]
        gutters = _interior(common, left, right, width)
        j = i + 1
        while j < len(strips):
            spans, strip_left, strip_right = blanks[j]
            widened = _intersect(common, spans)
            kept = _interior(widened, min(left, strip_left), max(right, strip_right), width)
            if not kept:
                break
            common, left, right, gutters = widened, min(left, strip_left), max(right, strip_right), kept
            j += 1
        return j, gutters

    def split(self, run: list[np.ndarray], gutters: list[Span]) -> list[np.ndarray] | None:
        """The parts a run is read in, one after another, or None when it is read as rows.

        A gutter is judged by what lies on either side of it: the whole sides, or, where the
        run has more gutters, the two columns right beside it.
        """
        idx = np.concatenate(run)
        h = self.height(idx)
        cells = self.cells(run, gutters, h)
        if cells is not None:
            return cells
        cuts_x = sorted((g0 + g1) / 2 for g0, g1 in gutters)
        columns = self.columns(idx, cuts_x)
        for g0, g1 in sorted(gutters, key=lambda g: g[0] - g[1])[:MAX_GUTTERS_TRIED]:
            at = cuts_x.index((g0 + g1) / 2)
            left, right = np.concatenate(columns[: at + 1]), np.concatenate(columns[at + 1 :])
            sides = [(left, right)]
            if len(cuts_x) > 1:
                sides.append((columns[at], columns[at + 1]))
            if any(self.separate(self.rows(a), self.rows(z), h) for a, z in sides):
                return [left, right]
        return None

    def separate(self, left: Rows, right: Rows, h: float) -> bool:
        """Whether two sides of a gutter are read one after the other (see the module docstring)."""
        if min(len(left), len(right)) < 2:
            return False
        if self.running(left, h) and self.running(right, h):
            return True
        return self.own_paragraphs(left, right) and self.own_paragraphs(right, left)

    def cells(self, run: list[np.ndarray], gutters: list[Span], h: float) -> list[np.ndarray] | None:
        """A run's cells when it is a grid (see the module docstring), row of cells by row.

        The columns of the grid are split at every gutter at least half as wide as the widest.
        """
        bands = []
        for k in range(1, len(run)):
            top = max(self.y1[i] for i in run[k - 1].tolist())
            bottom = min(self.y0[i] for i in run[k].tolist())
            if bottom - top >= PARAGRAPH_BREAK * h:
                bands.append((k, top, bottom))
        if not bands:
            return None
        widest = max(g1 - g0 for g0, g1 in gutters)
        cuts_x = sorted((g0 + g1) / 2 for g0, g1 in gutters if g1 - g0 >= widest / 2)
        inside = 0.0
        band_tops = [top for _k, top, _bottom in bands]
        for column in self.columns(np.concatenate(run), cuts_x):
            for top, bottom in _gaps(self.extents(self.rows(column))):
                # A gap that reaches into a band is the band seen from one side.
                k = bisect_left(band_tops, bottom)
                if not (k > 0 and bands[k - 1][2] > top):
                    inside = max(inside, bottom - top)
        limit = CELL_BAND * max(inside, 2 * SHRINK * h)  # rows that touch are 2 * SHRINK apart
        cuts = [k for k, top, bottom in bands if bottom - top >= limit]
        parts: list[np.ndarray] = []
        full_rows = 0
        for start, end in zip([0, *cuts], [*cuts, len(run)], strict=True):
            row_of_cells = self.columns(np.concatenate(run[start:end]), cuts_x)
            texts = [rows for rows in map(self.rows, row_of_cells)
                     if len(rows) >= 2 and self.left_aligned_text(rows, h)]
            full_rows += len(texts) >= 2
            parts += [cell for cell in row_of_cells if len(cell)]
        return parts if full_rows >= 2 else None

    def columns(self, idx: np.ndarray, cuts_x: list[float]) -> list[np.ndarray]:
        """The boxes between consecutive cut lines (no box crosses one), left to right."""
        slot = np.searchsorted(cuts_x, (self.b[idx, 0] + self.b[idx, 2]) / 2)
        return [idx[slot == k] for k in range(len(cuts_x) + 1)]

    # ---- what lies on each side of a gutter ---------------------------------------------------

    def left_aligned_text(self, rows: Rows, h: float) -> bool:
        """Lines that start at one edge and end unevenly: text, not a column of figures."""
        lefts = sorted(self.x0[row[0]] for row in rows)
        rights = [self.x1[row[-1]] for row in rows]
        middle = lefts[len(lefts) // 2]
        spread = sorted(abs(x - middle) for x in lefts)[len(lefts) // 2]
        return spread <= 0.5 * h and max(rights) - min(rights) >= h

    def running(self, rows: Rows, h: float) -> bool:
        """A column of prose: three rows or more, wide, and each line but the last of a paragraph
        one box (a line, not cells of a table) that fills most of the width."""
        if len(rows) < 3:
            return False
        rows = sorted(rows, key=lambda row: self.y0[row[0]])
        width = max(self.x1[row[-1]] for row in rows) - min(self.x0[row[0]] for row in rows)
        if width < RUNNING_WIDTH * h:
            return False
        extents = self.extents(rows)
        breaks = set(_breaks(extents))
        ends = {k for k, gap in enumerate(_gaps(extents)) if gap in breaks} | {len(rows) - 1}
        return all(max(self.x1[i] - self.x0[i] for i in row) >= RUNNING_FILL * width
                   for k, row in enumerate(rows) if k not in ends)

    def own_paragraphs(self, side: Rows, other: Rows) -> bool:
        """Whether ``side`` has paragraphs of its own: ``PARAGRAPHS`` of ``PARAGRAPH_ROWS`` rows
        or more, on one line pitch, with a break level with a line of ``other``."""
        extents = sorted(self.extents(side))
        breaks = _breaks(extents)
        if not breaks:
            return False
        ends = set(breaks)
        starts = [0] + [k + 1 for k, gap in enumerate(_gaps(extents)) if gap in ends] + [len(extents)]
        paragraphs = [extents[a:z] for a, z in pairwise(starts)]
        if sum(1 for p in paragraphs if len(p) >= PARAGRAPH_ROWS) < PARAGRAPHS:
            return False
        # Typeset text keeps one line pitch; a form's fields and wrapped values do not.
        pitches = sorted(p[k + 1][0] - p[k][0] for p in paragraphs for k in range(len(p) - 1))
        if pitches[-1] - pitches[0] > PITCH_SPREAD * pitches[len(pitches) // 2]:
            return False
        beside = sorted(self.extents(other))
        tops = [top for top, _bottom in beside]
        for top, bottom in breaks:
            middle = (top + bottom) / 2
            k = bisect_left(tops, middle)
            if k > 0 and beside[k - 1][1] >= middle:
                return True
        return False

    # ---- rows and paragraphs ------------------------------------------------------------------

    def rows(self, idx: np.ndarray) -> Rows:
        """Boxes grouped into rows (vertical overlap of ``ROW_OVERLAP`` of the smaller height)."""
        y0, y1 = self.y0, self.y1
        rows: Rows = []
        sums: list[list[float]] = []  # per row: sum of tops, sum of bottoms, count
        for i in sorted(idx.tolist(), key=lambda j: y0[j] + y1[j]):
            top, bottom = y0[i], y1[i]
            # Boxes come by their centres, so a box's row is one of the last few.
            for k in range(len(rows) - 1, max(-1, len(rows) - 4), -1):
                row_top, row_bottom, count = sums[k]
                r0, r1 = row_top / count, row_bottom / count
                if min(bottom, r1) - max(top, r0) >= ROW_OVERLAP * min(bottom - top, r1 - r0):
                    rows[k].append(i)
                    # A much taller box (a big letter, vertical text) must not stretch the row
                    # over its neighbours.
                    if bottom - top <= ROW_OUTLIER * (r1 - r0):
                        sums[k] = [row_top + top, row_bottom + bottom, count + 1]
                    break
            else:
                rows.append([i])
                sums.append([top, bottom, 1])
        return [sorted(row, key=self.x0.__getitem__) for row in rows]

    def extents(self, rows: Rows) -> list[Span]:
        """Each row's mean top and mean bottom, in the order of ``rows``."""
        y0, y1 = self.y0, self.y1
        return [(sum(y0[i] for i in row) / len(row), sum(y1[i] for i in row) / len(row)) for row in rows]

    def paragraphs(self, strips: list[np.ndarray]) -> None:
        """Appends strips read as rows, as blocks split at paragraph breaks."""
        if not strips:
            return
        rows = [row for strip in strips for row in self.rows(strip)]
        extents = self.extents(rows)
        breaks = set(_breaks(extents))
        block: Rows = [rows[0]]
        for k in range(1, len(rows)):
            if (extents[k - 1][1], extents[k][0]) in breaks:
                self.blocks.append(block)
                block = []
            block.append(rows[k])
        self.blocks.append(block)


def _interior(blank: list[Span], x0: float, x1: float, width: float) -> list[Span]:
    """Blank spans between x0 and x1 (so with boxes on both sides) at least ``width`` wide."""
    return [(a, z) for a, z in blank if a >= x0 and z <= x1 and z - a >= width]


def _intersect(a: list[Span], c: list[Span]) -> list[Span]:
    """Intersection of two sorted lists of disjoint spans."""
    out = []
    i = j = 0
    while i < len(a) and j < len(c):
        lo, hi = max(a[i][0], c[j][0]), min(a[i][1], c[j][1])
        if hi > lo:
            out.append((lo, hi))
        if a[i][1] < c[j][1]:
            i += 1
        else:
            j += 1
    return out


def _gaps(extents: list[Span]) -> list[Span]:
    """The spans between consecutive rows."""
    return [(extents[k][1], extents[k + 1][0]) for k in range(len(extents) - 1)]


def _breaks(extents: list[Span]) -> list[Span]:
    """The gaps between rows that are paragraph breaks: at least ``PARAGRAPH_BREAK`` line
    heights, and ``BREAK_OVER_USUAL`` times the median gap."""
    gaps = _gaps(extents)
    if not gaps:
        return []
    h = sorted(y1 - y0 for y0, y1 in extents)[len(extents) // 2] / (1 - 2 * SHRINK)
    usual = sorted(z - a for a, z in gaps)[len(gaps) // 2]
    limit = max(PARAGRAPH_BREAK * h, BREAK_OVER_USUAL * usual)
    return [g for g in gaps if g[1] - g[0] >= limit]
