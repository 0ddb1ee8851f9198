"""Reading order on synthetic boxes: each layout of reading_order's docstring, the structure of
the placements, and the cost (O(n log n): the growth from 1,000 to 4,000 boxes, and a bound)."""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import pairwise

import numpy as np
import pytest

from ocr_core.reading_order import Placement, arrange

H = 20.0  # line height of the synthetic pages, in pixels


def box(x: float, y: float, width: float, height: float = H) -> np.ndarray:
    return np.array([[x, y], [x + width, y], [x + width, y + height], [x, y + height]], dtype=np.float32)


def blocks(quads: list[np.ndarray]) -> list[list[list[int]]]:
    """The placements as blocks of rows of input indices."""
    out: list[list[list[int]]] = []
    last: Placement | None = None
    for place in arrange(quads):
        if last is None or place.block != last.block:
            out.append([[place.index]])
        elif place.row != last.row:
            out[-1].append([place.index])
        else:
            out[-1][-1].append(place.index)
        last = place
    return out


def shuffled(quads: list[np.ndarray], seed: int = 7) -> tuple[list[np.ndarray], list[int]]:
    """The quads in a random order (detectors give no order), and where each original went."""
    order = np.random.default_rng(seed).permutation(len(quads))
    where = [0] * len(quads)
    for new, old in enumerate(order):
        where[old] = new
    return [quads[i] for i in order], where


def rows_of(structure: list[list[list[int]]], where: list[int]) -> list[list[list[int]]]:
    """Maps a structure over shuffled quads back to the original indices."""
    back = {new: old for old, new in enumerate(where)}
    return [[[back[i] for i in row] for row in block] for block in structure]


def test_two_columns_of_prose_under_a_heading_read_column_by_column() -> None:
    """Lines on one baseline grid, so every row of the left column has a partner on the right."""
    heading = [box(40, 10, 700, 30)]
    left = [box(40, 60 + 30 * i, 340 - (120 if i == 5 else 0)) for i in range(6)]
    right = [box(420, 60 + 30 * i, 330 - (90 if i == 5 else 0)) for i in range(6)]
    quads, where = shuffled(heading + left + right)
    assert rows_of(blocks(quads), where) == [[[0]], [[i] for i in range(1, 7)], [[i] for i in range(7, 13)]]


@pytest.mark.parametrize("gap", [1.0, 3.0, 8.0, 20.0])
def test_receipt_keeps_each_item_with_its_price_at_any_gap(gap: float) -> None:
    items = [160, 90, 200, 120, 60, 150]
    right = 40 + max(items) + gap * H + 60
    quads = []
    for i, width in enumerate(items):
        y = 20 + 28 * i
        quads += [box(40, y, width), box(right - 40 - 10 * (i % 2), y + (i % 3 - 1), 40 + 10 * (i % 2))]
    assert blocks(quads) == [[[2 * i, 2 * i + 1] for i in range(len(items))]]


def test_prices_half_a_line_below_their_items_stay_in_row_order() -> None:
    """A receipt printed with each item's figures on the line below it: rows, top to bottom."""
    quads = []
    for i in range(5):
        y = 20 + 60 * i
        quads += [box(30, y, 140), box(300, y + 30, 20), box(360, y + 30, 50), box(440, y + 30, 50)]
    assert [p.index for p in arrange(quads)] == list(range(20))


def test_form_keeps_labels_with_values_despite_a_wrapped_value_and_an_empty_field() -> None:
    labels = ["Name:", "Address:", "", "Phone:", "Member since:", "Signature:", "Date:"]
    values = ["Alice Martin", "12 Station Road", "Leeds LS1 4AB", "0113 496 0000", "March 2019", "", "4 June"]
    tops = [100, 144, 168, 212, 256, 300, 344]  # fields 44 px apart; the wrapped line 24 px below
    quads, expected = [], []
    for label, value, y in zip(labels, values, tops, strict=True):
        row = []
        if label:
            row.append(len(quads))
            quads.append(box(40, y, 11 * len(label)))
        if value:
            row.append(len(quads))
            quads.append(box(260, y, 11 * len(value)))
        expected.append(row)
    assert blocks(quads) == [expected]


@pytest.mark.parametrize(("columns", "same_shape"), [(2, True), (2, False), (3, True)])
def test_grid_of_cards_is_read_card_by_card(columns: int, same_shape: bool) -> None:
    """Rows of cards separated by blank bands; their lines sit level with the neighbours'."""
    card_w, pitch, band = 260, 28, 3 * H
    quads, expected = [], []
    for card in range(2 * columns):
        x = 30 + (card % columns) * (card_w + 2 * H)
        y = 30 + (card // columns) * (4 * pitch + band)
        lines = 3 if same_shape or card % 2 else 4
        expected.append([[len(quads) + k] for k in range(lines)])
        quads += [box(x, y + k * pitch, 120 + 37 * ((card + k) % 4)) for k in range(lines)]
    quads, where = shuffled(quads)
    assert rows_of(blocks(quads), where) == expected


def test_columns_of_verse_with_their_own_stanzas_are_read_column_by_column() -> None:
    """Short lines on one baseline grid; the stanzas end at different rows in each column."""
    pitch = 30
    left_rows = [0, 1, 2, 3, 5, 6, 7, 8, 9, 10]  # stanzas of 4 and 6 lines
    right_rows = [0, 1, 2, 3, 4, 5, 7, 8, 9, 10]  # 6 and 4
    left = [box(40, 30 + r * pitch, 100 + 10 * (r % 3)) for r in left_rows]
    right = [box(300, 30 + r * pitch, 110 - 10 * (r % 2)) for r in right_rows]
    quads, where = shuffled(left + right)
    assert rows_of(blocks(quads), where) == [[[0], [1], [2], [3]], [[4], [5], [6], [7], [8], [9]],
                                             [[10], [11], [12], [13], [14], [15]], [[16], [17], [18], [19]]]


def test_tilted_photo_keeps_lines_apart() -> None:
    """Lines tilted by 5°: their upright bounds overlap the next line's; their order must not mix."""
    angle = np.deg2rad(5)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    lines = [(box(40, 40 + 28 * i, 600 if i % 2 else 250) @ rotation.T).astype(np.float32) for i in range(8)]
    assert [7 - p.index for p in arrange(lines[::-1])] == list(range(8))


def test_paragraphs_of_one_column_are_blocks() -> None:
    ys = [0, 1, 2, 4, 5, 6, 7]  # a blank line after the third
    quads = [box(40, 30 + 28 * y, 500) for y in ys]
    assert blocks(quads) == [[[0], [1], [2]], [[3], [4], [5], [6]]]


@pytest.mark.parametrize("seed", range(4))
def test_placements_cover_every_box_once_in_a_consistent_structure(seed: int) -> None:
    rng = np.random.default_rng(seed)
    quads = [box(*rng.uniform(0, 800, 2), rng.uniform(5, 300), rng.uniform(8, 40)) for _ in range(300)]
    placements = arrange(quads)
    assert sorted(p.index for p in placements) == list(range(len(quads)))
    pairs = [(p.block, p.row) for p in placements]
    assert pairs == sorted(pairs)  # blocks, then rows, in reading order
    row_blocks: dict[int, int] = {}
    for p in placements:
        assert row_blocks.setdefault(p.row, p.block) == p.block  # a row never spans two blocks
    for a, z in pairwise(placements):
        if a.row == z.row:
            assert quads[a.index][0, 0] <= quads[z.index][0, 0]  # left to right within a row


@pytest.mark.parametrize("layout", ["verse", "cards", "receipt"])
def test_order_does_not_depend_on_scale_position_or_a_small_tilt(layout: str) -> None:
    """Every threshold is in line heights: the same page at another resolution reads the same."""
    quads = {"verse": verse_page, "cards": card_wall, "receipt": receipt_page}[layout](120)
    angle = np.deg2rad(3)
    tilt = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    want = arrange(quads)
    for change in (lambda q: q * 0.37 + 11, lambda q: q * 3.1 - 40, lambda q: q @ tilt.T):
        assert arrange([change(q.astype(np.float64)) for q in quads]) == want


def test_no_boxes_and_one_box() -> None:
    assert arrange([]) == []
    assert arrange([box(5, 5, 50)]) == [Placement(0, 0, 0)]


# ---- cost: O(n log n) -----------------------------------------------------------------------------

def prose_page(n: int) -> list[np.ndarray]:
    """Two columns of lines on one baseline grid, down an ever longer page."""
    return [box(40 + 420 * (i % 2), 30 + 26 * (i // 2), 360 - 40 * (i % 7 == 6)) for i in range(n)]


def verse_page(n: int) -> list[np.ndarray]:
    """Two columns of short lines in stanzas of five, the right column's a line lower."""
    quads = []
    for i in range(n):
        column, line = i % 2, i // 2
        row = line + line // 5 + column  # a blank row after each stanza
        quads.append(box(40 + 300 * column, 30 + 28 * row, 120 + 20 * (line % 3)))
    return quads


def receipt_page(n: int) -> list[np.ndarray]:
    """Items with prices at the right edge, a blank line after every tenth."""
    quads = []
    for i in range(n // 2):
        y = 30 + 28 * (i + i // 10)
        quads += [box(30, y, 80 + 23 * (i % 5)), box(420 - 12 * (i % 2), y, 50 + 12 * (i % 2))]
    return quads


def card_wall(n: int) -> list[np.ndarray]:
    """Cards of five lines, four to a row of cards, rows of cards 3 line heights apart."""
    quads = []
    for i in range(n):
        card, line = divmod(i, 5)
        x, y = 30 + (card % 4) * 300, 30 + (card // 4) * (5 * 28 + 3 * H) + line * 28
        quads.append(box(x, y, 120 + 30 * ((card + line) % 5)))
    return quads


def character_grid(n: int) -> list[np.ndarray]:
    """A page of single characters (as a detector finds on dense small print), 60 to a row."""
    return [box(10 + 12 * (i % 60), 10 + 18 * (i // 60), 9, 14) for i in range(n)]


def scattered(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(n)
    side = 60 * np.sqrt(n)
    return [box(*rng.uniform(0, side, 2), rng.uniform(10, 200), rng.uniform(8, 30)) for _ in range(n)]


@pytest.mark.parametrize("layout", [prose_page, verse_page, card_wall, character_grid, scattered])
def test_cost_grows_as_n_log_n(layout: Callable[[int], list[np.ndarray]]) -> None:
    """1,000 boxes within 50 ms, and 4x the boxes for at most 6x the time (n log n: ~4.8x; n^2
    would be 16x). Times are this thread's CPU time, best of interleaved runs: on a shared
    machine, wall time grows with the chance of being preempted, not with the work."""
    pages = {n: layout(n) for n in (1000, 4000)}
    best = dict.fromkeys(pages, float("inf"))
    for _ in range(5):
        for n, quads in pages.items():
            start = time.thread_time()
            arrange(quads)
            best[n] = min(best[n], time.thread_time() - start)
    small, large = best[1000] * 1000, best[4000] * 1000
    assert small < 50, f"1,000 boxes took {small:.1f} ms"
    assert large < 6 * small, f"{small:.1f} ms for 1,000 boxes, {large:.1f} ms for 4,000"
