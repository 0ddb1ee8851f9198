"""Small whole pages rendered here, 300-500 px on a side, with their lines close together.

- ``receipt``: a till receipt, rows of a name at the left and a price at the right.
- ``price_tag``: rows of a small label, a big price and a small unit one space apart (a shop's
  "券后价 5.8 起"): separate words of very different sizes on one row.
- ``menu``: a list of items, English or Chinese, a line every ``pitch`` × the font size.

Each page comes with its rows of items (the strings drawn as separate boxes), so a check can tell a
lost item (found in no line read) from fused items (two items of one row read as one line).
"""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from rapidfuzz.distance import Levenshtein

from tests.support import FONT

CJK_FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
CJK_BOLD_FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"
_GOODS = ["Milk 1L", "Bread", "Eggs 12", "Coffee", "Apples 2kg", "Butter", "Green tea", "Rice 5kg", "Soap",
          "Water 6", "Cheese", "Pasta", "Tomatoes", "Yogurt", "Honey", "Oats"]
_GOODS_ZH = ["新鲜牛奶", "全麦面包", "散养鸡蛋", "现磨咖啡", "青苹果", "黄油", "茉莉花茶", "香米", "橄榄皂",
             "矿泉水", "奶酪", "意大利面", "西红柿", "酸奶", "蜂蜜", "燕麦片"]
_LABELS = ["券后价", "日常价", "会员价", "特价"]
_UNITS = ["起", "元", "折"]


@dataclass(frozen=True)
class SmallPage:
    png: bytes
    rows: list[list[str]]  # the items of each row, left to right

    @property
    def items(self) -> list[str]:
        return [item for row in self.rows for item in row]

    @property
    def text(self) -> str:
        """The page as the engine should read it: a row's items joined by a space, rows by newlines."""
        return "\n".join(" ".join(row) for row in self.rows)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def receipt(width: int, seed: int, font_px: int = 13, pitch: float = 1.25) -> SmallPage:
    """A till receipt ``width`` px wide: a header, item rows (name left, price right), a total;
    rows ``pitch`` × the font size apart."""
    rng = np.random.default_rng(seed)
    font = ImageFont.truetype(str(FONT), font_px)
    names = list(rng.choice(_GOODS, size=int(rng.integers(6, 10)), replace=False))
    date = f"2026-0{int(rng.integers(1, 9))}-1{int(rng.integers(0, 9))}"
    rows = [[f"SHOP {int(rng.integers(10, 99))}"], [date]]
    total = 0.0
    for name in names:
        price = float(rng.integers(50, 2000)) / 100
        total += price
        rows.append([str(name), f"{price:.2f}"])
    rows.append(["TOTAL", f"{total:.2f}"])
    step = round(font_px * pitch)
    margin = font_px
    image = Image.new("L", (width, margin * 2 + step * len(rows)), 255)
    draw = ImageDraw.Draw(image)
    for i, row in enumerate(rows):
        y = margin + i * step
        draw.text((margin, y), row[0], font=font, fill=0)
        if len(row) > 1:
            draw.text((width - margin - font.getlength(row[1]), y), row[1], font=font, fill=0)
    return SmallPage(_png(image), rows)


def price_tag(width: int, seed: int, big_px: int, small_ratio: float = 0.35) -> SmallPage:
    """Three rows of a small grey label, a big red price and a small red unit, on a cream card
    ``width`` px wide; the words one space of the big font apart, the small ones ``small_ratio`` ×
    its size, all on one baseline."""
    rng = np.random.default_rng(seed)
    big = ImageFont.truetype(CJK_BOLD_FONT, big_px)
    small = ImageFont.truetype(CJK_BOLD_FONT, max(8, round(big_px * small_ratio)))
    rows = [[str(rng.choice(_LABELS)), f"{int(rng.integers(1, 99))}.{int(rng.integers(0, 10))}",
             str(rng.choice(_UNITS))] for _ in range(3)]
    step = round(big_px * 1.4)
    image = Image.new("RGB", (width, big_px + step * len(rows)), (255, 250, 240))
    draw = ImageDraw.Draw(image)
    drop = big.getmetrics()[0] - small.getmetrics()[0]  # the small words share the big one's baseline
    space = big.getlength(" ")
    for i, (label, price, unit) in enumerate(rows):
        y = big_px // 2 + i * step
        x = width / 8
        draw.text((x, y + drop), label, font=small, fill=(70, 70, 70))
        x += small.getlength(label) + space
        draw.text((x, y), price, font=big, fill=(200, 20, 20))
        x += big.getlength(price) + space
        draw.text((x, y + drop), unit, font=small, fill=(200, 20, 20))
    return SmallPage(_png(image), rows)


def menu(width: int, seed: int, font_px: int, pitch: float, chinese: bool = False) -> SmallPage:
    """Items one a line, black on white, ``width`` px wide and as tall as ``width`` × 1.2 allows;
    lines ``pitch`` × the font size apart."""
    rng = np.random.default_rng(seed)
    font = ImageFont.truetype(CJK_FONT if chinese else str(FONT), font_px)
    step = round(font_px * pitch)
    goods = _GOODS_ZH if chinese else _GOODS
    count = min(len(goods), max(4, (round(width * 1.2) - 2 * font_px) // step))
    rows = [[str(item)] for item in rng.choice(goods, size=count, replace=False)]
    image = Image.new("L", (width, 2 * font_px + step * count), 255)
    draw = ImageDraw.Draw(image)
    for i, (item,) in enumerate(rows):
        draw.text((font_px, font_px + i * step), item, font=font, fill=0)
    return SmallPage(_png(image), rows)


def check(page: SmallPage, lines: list[str]) -> tuple[list[str], list[str]]:
    """(items found in no line, lines that glue two neighbouring items of a row together with no
    space between, as "5.8起"). An item is found in a line that holds it or that is it with one
    character misread (at 11-13 px, "1L" may read "IL": the recogniser's error, not a lost line);
    spaces inside an item are ignored: PP-OCR drops some."""
    squeezed = [line.replace(" ", "") for line in lines]

    def found(item: str) -> bool:
        return any(item in line or Levenshtein.distance(item, line) <= 1 for line in squeezed)

    lost = [item for item in page.items if not found(item.replace(" ", ""))]
    fused = [line for line in lines for row in page.rows for left, right in itertools.pairwise(row)
             if left.replace(" ", "") + right.replace(" ", "") in line.replace(" ", "")
             and f"{left.split()[-1]} {right.split()[0]}" not in line]
    return lost, fused
