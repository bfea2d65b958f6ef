"""Finished images as Easel keeps them, whichever backend made them: PNG bytes whose ``parameters`` chunk holds the
A1111 infotext, the seed that reproduces each, and the size."""

from __future__ import annotations

from common.images import image_size, read_infotext, with_infotext
from common.infotext import parse_infotext
from common.models import UpscaleRequest
from common.tasks import ImageOut


def image_out(png: bytes, *, seed: int, infotext: str) -> ImageOut:
    """An image whose PNG carries ``infotext`` (written in; its other chunks stay)."""
    png = with_infotext(png, infotext)
    width, height = image_size(png)
    return ImageOut(png=png, seed=seed, infotext=infotext, width=width, height=height)


def upscaled(request: UpscaleRequest, png: bytes) -> ImageOut:
    """An upscale result whose infotext is the source's plus the upscale, as A1111's extras tab writes it."""
    source_text = read_infotext(request.image) or ""
    step = f"Postprocess upscale by: {request.scale}, Postprocess upscaler: {request.upscaler}"
    infotext = f"{source_text}, {step}" if source_text else step
    seed = parse_infotext(source_text).seed if source_text else None
    return image_out(png, seed=seed if seed is not None else -1, infotext=infotext)
