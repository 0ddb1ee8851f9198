"""Pages with a known reading order, drawn here from Debian's fonts: grids of cards, two-column
articles, receipts, key/value forms and columns of Chinese verse, at any size and spacing.

Each page comes with the blocks a reader sees, in order, each a list of rows (a row's pieces
joined by one space): what ``OcrResult.text`` must give, blank lines between blocks.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
NOTO_CJK = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")


@dataclass(frozen=True)
class Page:
    png: bytes
    blocks: tuple[tuple[str, ...], ...]

    @property
    def text(self) -> str:
        return "\n\n".join("\n".join(rows) for rows in self.blocks)


@cache
def font(name: str, size: int) -> ImageFont.FreeTypeFont:
    if name == "cjk":
        # The collection's faces are JP, KR, SC, TC, HK; pick Simplified Chinese by name.
        for index in range(10):
            face = ImageFont.truetype(str(NOTO_CJK), size, index=index)
            if face.getname()[0].endswith(" SC"):
                return face
        raise FileNotFoundError(f"no SC face in {NOTO_CJK}")
    return ImageFont.truetype(str(DEJAVU / f"{name}.ttf"), size)


class Canvas:
    """A white page that grows to hold what is drawn; ``finish`` pads it and encodes it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: list[tuple[float, float, str, ImageFont.FreeTypeFont, str]] = []
        self.boxes: list[tuple[float, float, float, float, str]] = []

    def width(self, text: str, face: ImageFont.FreeTypeFont) -> float:
        return face.getlength(text)

    def text(self, x: float, y: float, text: str, face: ImageFont.FreeTypeFont, fill: str = "black") -> float:
        """Draws ``text`` with its top-left at (x, y); returns its width."""
        self.items.append((x, y, text, face, fill))
        return self.width(text, face)

    def box(self, x0: float, y0: float, x1: float, y1: float, outline: str = "#999999") -> None:
        self.boxes.append((x0, y0, x1, y1, outline))

    def finish(self, margin: int, angle: float = 0.0) -> bytes:
        right = max([x + self.width(t, f) for x, _y, t, f, _c in self.items] + [b[2] for b in self.boxes])
        bottom = max([y + f.size * 1.3 for _x, y, _t, f, _c in self.items] + [b[3] for b in self.boxes])
        image = Image.new("RGB", (int(right) + margin, int(bottom) + margin), "white")
        draw = ImageDraw.Draw(image)
        for x0, y0, x1, y1, outline in self.boxes:
            draw.rounded_rectangle((x0, y0, x1, y1), radius=self.size // 3, outline=outline, width=2)
        for x, y, text, face, fill in self.items:
            draw.text((x, y), text, font=face, fill=fill)
        if angle:
            image = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor="white")
        out = io.BytesIO()
        image.save(out, "PNG")
        return out.getvalue()


CARDS = [
    ("Harbour Ferry", ["Leaves pier 4 at 9:15", "Returns by noon", "Tickets on board"]),
    ("City Museum", ["Open daily 10 to 17", "Free on Sundays"]),
    ("Night Market", ["Fridays from 18:00", "Street food and music", "Cash only"]),
    ("Botanic Garden", ["Glasshouses reopen", "Guided walks at 14:00"]),
    ("Old Library", ["Reading room upstairs", "Quiet please"]),
    ("River Walk", ["Six miles of path", "Dogs welcome", "Cafe at the lock"]),
]


def card_grid(size: int, gap: float, columns: int = 2, rows: int = 2, same_shape: bool = False) -> Page:
    """Cards in a grid, ``gap`` line heights apart; read card by card, row of cards by row.

    ``same_shape`` gives every card the same number of lines, so the lines of neighbouring
    cards sit level with each other, as on a web page built from one template.
    """
    title, body = font("DejaVuSans-Bold", size), font("DejaVuSans", size)
    cards = CARDS[: columns * rows]
    if same_shape:
        cards = [(name, lines[:2]) for name, lines in cards]
    pitch = size * 1.5
    pad = size * 0.8
    card_w = max(max(body.getlength(t) for t in [*lines, name]) for name, lines in cards) + 2 * pad
    card_h = max(len(lines) + 1 for _name, lines in cards) * pitch + 2 * pad
    canvas = Canvas(size)
    for k, (name, lines) in enumerate(cards):
        x0 = size + (k % columns) * (card_w + gap * size)
        y0 = size + (k // columns) * (card_h + gap * size)
        canvas.box(x0, y0, x0 + card_w, y0 + card_h)
        canvas.text(x0 + pad, y0 + pad, name, title)
        for i, line in enumerate(lines):
            canvas.text(x0 + pad, y0 + pad + (i + 1) * pitch, line, body)
    blocks = tuple((name, *lines) for name, lines in cards)
    return Page(canvas.finish(size), blocks)


ARTICLE = [
    "Rail freight across the region grew for the third year running, carried by new terminals "
    "and longer trains.",
    "Operators expect the growth to slow once the northern line closes for repairs next spring.",
    "The port authority reported record container traffic in October, with most boxes moving "
    "inland by rail rather than by road.",
    "A second crane is due in March and should cut waiting times at the quay by a third.",
]


def wrap(text: str, face: ImageFont.FreeTypeFont, width: float) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and face.getlength(lines[-1] + " " + word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def two_column_article(size: int, gutter: float, column_chars: int = 34) -> Page:
    """A heading across the page, then two columns of ragged-right paragraphs ``gutter`` line
    heights apart, whose lines sit on the same baselines; read the left column, then the right."""
    heading, body = font("DejaVuSerif-Bold", int(size * 1.4)), font("DejaVuSerif", size)
    column_w = body.getlength("n") * column_chars
    pitch = size * 1.45
    canvas = Canvas(size)
    canvas.text(size, size, "Freight on the rise", heading)
    top = size + size * 3
    blocks: list[tuple[str, ...]] = [("Freight on the rise",)]
    for column, paragraphs in enumerate((ARTICLE[:2], ARTICLE[2:])):
        x = size + column * (column_w + gutter * size)
        row = 0
        for paragraph in paragraphs:
            lines = wrap(paragraph, body, column_w)
            for line in lines:
                canvas.text(x, top + row * pitch, line, body)
                row += 1
            row += 1  # a blank line between paragraphs
            blocks.append(tuple(lines))
    return Page(canvas.finish(size), tuple(blocks))


ITEMS = [("Flat white", "3.20"), ("Almond croissant", "2.85"), ("Orange juice", "2.40"),
         ("Porridge with honey", "4.75"), ("Tea", "1.90")]


def receipt(size: int, price_gap: float, angle: float = 0.0) -> Page:
    """A till receipt: a centred header, items with prices right-aligned ``price_gap`` line
    heights right of the longest item, a total, a footer; read row by row."""
    bold, regular = font("DejaVuSans-Bold", size), font("DejaVuSans", size)
    pitch = size * 1.5
    item_w = max(regular.getlength(item) for item, _ in ITEMS)
    price_w = regular.getlength("00.00")
    right = size + item_w + price_gap * size + price_w
    canvas = Canvas(size)

    def centred(y: float, text: str, face: ImageFont.FreeTypeFont) -> None:
        canvas.text((size + right - face.getlength(text)) / 2, y, text, face)

    centred(size, "CORNER CAFE", bold)
    centred(size + pitch, "8 Mill Lane, York", regular)
    y = size + 3.5 * pitch
    for item, price in ITEMS:
        canvas.text(size, y, item, regular)
        canvas.text(right - regular.getlength(price), y, price, regular)
        y += pitch
    y += pitch  # a blank line before the total
    canvas.text(size, y, "Total", bold)
    canvas.text(right - bold.getlength("15.10"), y, "15.10", bold)
    centred(y + 2.5 * pitch, "Thank you for visiting", regular)
    blocks = (
        ("CORNER CAFE", "8 Mill Lane, York"),
        tuple(f"{item} {price}" for item, price in ITEMS),
        ("Total 15.10",),
        ("Thank you for visiting",),
    )
    return Page(canvas.finish(size, angle), blocks)


FIELDS = [("Name:", ["Alice Martin"]), ("Address:", ["12 Station Road", "Leeds LS1 4AB"]),
          ("Phone:", ["0113 496 0000"]), ("Member since:", ["March 2019"]), ("Signature:", []),
          ("Date:", ["4 June 2024"])]


def key_value_form(size: int, tab: float, spacing: float) -> Page:
    """Labels with their values ``tab`` line heights right of the longest label, fields
    ``spacing`` line heights apart; one field is empty, one value takes two lines. Read row by row."""
    bold, regular = font("DejaVuSans-Bold", size), font("DejaVuSans", size)
    value_x = size + max(bold.getlength(k) for k, _ in FIELDS) + tab * size
    canvas = Canvas(size)
    canvas.text(size, size, "Membership form", font("DejaVuSans-Bold", int(size * 1.3)))
    y = size + 5 * size
    rows = []
    for key, values in FIELDS:
        canvas.text(size, y, key, bold)
        for i, value in enumerate(values):
            canvas.text(value_x, y + i * size * 1.4, value, regular)
        rows += [f"{key} {values[0]}" if values else key, *values[1:]]
        y += max(1, len(values)) * size * 1.4 + (spacing - 1.4) * size
    return Page(canvas.finish(size), (("Membership form",), tuple(rows)))


VERSE = [
    ["春晓", "孟浩然", "春眠不觉晓", "处处闻啼鸟", "夜来风雨声", "花落知多少"],
    ["登楼", "白日依山尽", "黄河入海流", "欲穷千里目", "更上一层楼"],
    ["静夜思", "李白", "床前明月光", "疑是地上霜", "举头望明月", "低头思故乡"],
    ["江雪", "千山鸟飞绝", "万径人踪灭", "孤舟蓑笠翁", "独钓寒江雪"],
]


def verse_columns(size: int, gutter: float) -> Page:
    """Two columns of Chinese quatrains on one baseline grid, ``gutter`` line heights apart, a
    blank line after each poem, so the breaks fall on different rows. Read column by column."""
    face = font("cjk", size)
    pitch = size * 1.5
    column_w = max(face.getlength(line) for poem in VERSE for line in poem)
    canvas = Canvas(size)
    blocks = []
    for column, poems in enumerate(((VERSE[1], VERSE[0]), (VERSE[2], VERSE[3]))):
        x = size + column * (column_w + gutter * size)
        row = 0
        for poem in poems:
            for line in poem:
                canvas.text(x, size + row * pitch, line, face)
                row += 1
            row += 1
            blocks.append(tuple(poem))
    return Page(canvas.finish(size), tuple(blocks))
