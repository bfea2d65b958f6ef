"""Pictures for job messages: smaller copies of images over the upload limit, and one page of a big job as a 2x2
grid, the way Midjourney shows four images in one picture.

Each cell shows one image, scaled into the cell, with its number in the job in the corner; a kept image gets a green
frame, a deleted one is dimmed and marked. The grid is a JPEG: four full PNGs would not fit Discord's upload limit.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

CELL = 512  # pixels per cell side: 1024 x 1024 in all, a few hundred KB as JPEG
GAP = 8
KEPT = (46, 204, 113)
BACKGROUND = (32, 34, 37)


@dataclass(frozen=True)
class Cell:
    number: int  # the image's number in the job (1-based)
    png: bytes | None  # None: deleted, or its file purged by retention
    kept: bool = False
    deleted: bool = False


def render(cells: list[Cell], *, quality: int = 85) -> bytes:
    """The JPEG of up to four cells, laid out left to right, top to bottom."""
    columns = 2 if len(cells) > 1 else 1
    rows = 2 if len(cells) > 2 else 1
    grid = Image.new("RGB", (columns * CELL + (columns - 1) * GAP, rows * CELL + (rows - 1) * GAP), BACKGROUND)
    font = ImageFont.load_default(size=48)
    for i, cell in enumerate(cells[:4]):
        x, y = (i % 2) * (CELL + GAP), (i // 2) * (CELL + GAP)
        _paste(grid, cell, x, y)
        draw = ImageDraw.Draw(grid)
        if cell.kept:
            draw.rectangle((x, y, x + CELL - 1, y + CELL - 1), outline=KEPT, width=10)
        if cell.png is None:
            note = "deleted" if cell.deleted else "purged"
            draw.text((x + CELL // 2, y + CELL // 2), note, fill=(200, 200, 200), font=font, anchor="mm")
        draw.text((x + 20, y + 16), str(cell.number), fill="white", font=font, stroke_width=4, stroke_fill="black")
    out = io.BytesIO()
    grid.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def _paste(grid: Image.Image, cell: Cell, x: int, y: int) -> None:
    if cell.png is None:
        return
    with Image.open(io.BytesIO(cell.png)) as source:
        image = source.convert("RGB")
    image.thumbnail((CELL, CELL))
    grid.paste(image, (x + (CELL - image.width) // 2, y + (CELL - image.height) // 2))


def fit(cells: list[Cell], limit: int) -> bytes:
    """The grid under ``limit`` bytes (smaller and lower quality as needed; the PNGs stay in the store)."""
    data = render(cells)
    return data if len(data) <= limit else shrink(data, limit)


def shrink(data: bytes, limit: int) -> bytes:
    """A JPEG copy of an image under ``limit`` bytes; smaller each try."""
    with Image.open(io.BytesIO(data)) as img:
        image = img.convert("RGB")
    quality, scale = 90, 1.0
    while True:
        out = io.BytesIO()
        size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
        image.resize(size).save(out, format="JPEG", quality=quality)
        if out.tell() <= limit or (quality <= 40 and scale <= 0.1):
            return out.getvalue()
        quality, scale = max(40, quality - 15), scale * (0.85 if quality <= 40 else 1.0)
