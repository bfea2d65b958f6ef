"""Checks on user images and the PNG `parameters` chunk, shared by front ends and workers.

Uploaded images are hostile until proven otherwise: not an image, truncated, or a decompression bomb (a tiny file
declaring a huge canvas). The size is read from the header before any pixel is decoded.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from dataclasses import dataclass

from PIL import Image, PngImagePlugin, UnidentifiedImageError

ACCEPTED_FORMATS = {"PNG", "JPEG", "WEBP"}


class BadImage(ValueError):
    """An input image that cannot be used; the message says what to change."""


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int


_RECENT: list[tuple[bytes, int, int, ImageInfo]] = []  # the last few images inspected (held, so ids stay valid)
_RECENT_SIZE = 4


def inspect_image(data: bytes, *, max_bytes: int, max_pixels: int) -> ImageInfo:
    """Decode ``data`` fully (so truncation shows) after checking its declared size; raise :class:`BadImage`.

    A sweep validates the same init image once per task: the same bytes object is decoded only once.
    """
    for seen, seen_bytes, seen_pixels, info in _RECENT:
        if seen is data and seen_bytes == max_bytes and seen_pixels == max_pixels:
            return info
    info = _inspect(data, max_bytes=max_bytes, max_pixels=max_pixels)
    _RECENT.insert(0, (data, max_bytes, max_pixels, info))
    del _RECENT[_RECENT_SIZE:]
    return info


def _inspect(data: bytes, *, max_bytes: int, max_pixels: int) -> ImageInfo:
    if not data:
        raise BadImage("the image is empty")
    if len(data) > max_bytes:
        raise BadImage(f"the image is {len(data) / 2**20:.1f} MiB; the limit is {max_bytes / 2**20:.1f} MiB")
    try:
        with warnings.catch_warnings():
            # Pillow warns (and errors at 2x) about bombs itself; our own bound below is the one that counts.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt, (width, height) = img.format or "?", img.size
                if fmt not in ACCEPTED_FORMATS:
                    raise BadImage(f"{fmt} images are not accepted; send a PNG, JPEG or WebP")
                if width * height > max_pixels:
                    raise BadImage(
                        f"the image is {width}x{height} ({width * height:,} pixels); the limit is {max_pixels:,}"
                    )
                img.load()
    except BadImage:
        raise
    except Image.DecompressionBombError as exc:  # so large that Pillow refuses to even open it
        limit = f"the limit is {max_pixels:,} pixels"
        raise BadImage(f"the image declares a size too large to open safely; {limit}") from exc
    except UnidentifiedImageError as exc:
        raise BadImage("the file is not an image Easel can read; send a PNG, JPEG or WebP") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow's errors for truncated / corrupt data
        raise BadImage(f"the image is damaged or truncated ({exc})") from exc
    return ImageInfo(format=fmt, width=width, height=height)


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the header, without decoding pixels."""
    with Image.open(io.BytesIO(data)) as img:
        return img.size


def read_infotext(png: bytes) -> str | None:
    """The A1111 infotext stored in a PNG's ``parameters`` text chunk, if any."""
    with Image.open(io.BytesIO(png)) as img:
        value = img.info.get("parameters")
        if isinstance(value, str):
            return value
        text = getattr(img, "text", {})
        return text.get("parameters") if isinstance(text, dict) else None


def with_infotext(png: bytes, infotext: str) -> bytes:
    """The image as PNG with ``infotext`` in its ``parameters`` text chunk, replacing any there was.

    A PNG gets the chunk spliced in before its image data, pixels untouched (re-encoding costs tens of milliseconds
    per megapixel); its other chunks stay, e.g. ComfyUI's ``prompt`` graph. Other formats are converted to PNG.
    """
    chunks = _png_chunks(png)
    if chunks is None:
        return _resaved_as_png(png, infotext)
    out, text = bytearray(_PNG_SIGNATURE), _text_chunk(infotext)
    for kind, data in chunks:
        if kind in _TEXT_CHUNKS and data.split(b"\0", 1)[0] == b"parameters":
            continue
        if kind == b"IDAT" and text:
            out += text  # before the first image data, where Pillow (and A1111) put it
            text = b""
        out += _chunk(kind, data)
    return bytes(out)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]] | None:
    """(type, data) of every chunk of a well-formed PNG; None if it is not one."""
    if not data.startswith(_PNG_SIGNATURE):
        return None
    chunks, at = [], len(_PNG_SIGNATURE)
    while at + 12 <= len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        kind, body, crc = data[at + 4:at + 8], data[at + 8:at + 8 + length], data[at + 8 + length:at + 12 + length]
        if len(body) != length or len(crc) != 4 or zlib.crc32(kind + body) != struct.unpack(">I", crc)[0]:
            return None
        chunks.append((kind, body))
        at += 12 + length
        if kind == b"IEND":
            return chunks if any(k == b"IDAT" for k, _ in chunks) else None
    return None


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _text_chunk(text: str) -> bytes:
    """A ``parameters`` chunk as Pillow writes it: tEXt when the text is Latin-1, else uncompressed iTXt."""
    try:
        return _chunk(b"tEXt", b"parameters\0" + text.encode("latin-1"))
    except UnicodeEncodeError:
        return _chunk(b"iTXt", b"parameters\0\0\0\0\0" + text.encode("utf-8"))


def _resaved_as_png(data: bytes, infotext: str) -> bytes:
    with Image.open(io.BytesIO(data)) as img:
        meta = PngImagePlugin.PngInfo()
        meta.add_text("parameters", infotext)
        out = io.BytesIO()
        img.save(out, format="PNG", pnginfo=meta)
        return out.getvalue()
