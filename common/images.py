"""Checks on user images and the PNG `parameters` chunk, shared by front ends and workers.

Uploaded images are hostile until proven otherwise: not an image, truncated, or a decompression bomb (a tiny file
declaring a huge canvas). The size is read from the header before any pixel is decoded.
"""

from __future__ import annotations

import io
import warnings
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


def inspect_image(data: bytes, *, max_bytes: int, max_pixels: int) -> ImageInfo:
    """Decode ``data`` fully (so truncation shows) after checking its declared size; raise :class:`BadImage`."""
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
    """Re-save a PNG with ``infotext`` in its ``parameters`` chunk (used for images made outside A1111's txt2img).

    Other text chunks stay (e.g. ComfyUI's ``prompt`` graph), in their order, before ``parameters``.
    """
    with Image.open(io.BytesIO(png)) as img:
        meta = PngImagePlugin.PngInfo()
        text = getattr(img, "text", {})
        for key, value in (text.items() if isinstance(text, dict) else ()):
            if key != "parameters" and isinstance(value, str):
                meta.add_text(key, value)
        meta.add_text("parameters", infotext)
        out = io.BytesIO()
        img.save(out, format="PNG", pnginfo=meta)
        return out.getvalue()
