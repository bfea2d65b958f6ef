"""Infotext written into PNGs: spliced in as a chunk, other chunks and pixels untouched."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from common.images import read_infotext, with_infotext


def png_with(texts: dict[str, str]) -> bytes:
    meta = PngImagePlugin.PngInfo()
    for key, value in texts.items():
        meta.add_text(key, value)
    out = io.BytesIO()
    Image.new("RGB", (16, 8), (200, 30, 30)).save(out, format="PNG", pnginfo=meta)
    return out.getvalue()


@given(st.text(min_size=1, max_size=200).filter(lambda t: "\x00" not in t))
def test_any_text_round_trips_and_replaces_the_old_one(text: str) -> None:
    png = with_infotext(png_with({"prompt": '{"1": {}}', "parameters": "old"}), text)
    with Image.open(io.BytesIO(png)) as img:
        img.load()
        assert img.text == {"prompt": '{"1": {}}', "parameters": text}  # type: ignore[attr-defined]
        assert img.getpixel((0, 0)) == (200, 30, 30)
    assert read_infotext(png) == text


def test_other_formats_become_png() -> None:
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, format="JPEG")
    png = with_infotext(out.getvalue(), "Steps: 20")
    with Image.open(io.BytesIO(png)) as img:
        assert img.format == "PNG"
    assert read_infotext(png) == "Steps: 20"
