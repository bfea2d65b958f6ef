"""Deterministic pictures: the same prompt, seed and settings always give the same pixels.

Not art — just enough that different prompts, seeds and settings look different, previews fill in step by step,
and img2img visibly keeps its init image.
"""

from __future__ import annotations

import hashlib
import io
import random

from PIL import Image, ImageDraw, ImageFilter, PngImagePlugin


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _palette(prompt: str) -> list[tuple[int, int, int]]:
    rng = _rng("palette", prompt)
    return [(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(5)]


def draw(prompt: str, seed: int, width: int, height: int, style: str = "") -> Image.Image:
    """The finished image for (prompt, seed, size, style)."""
    colors = _palette(prompt)
    rng = _rng("shapes", prompt, seed, style)
    img = Image.new("RGB", (width, height), colors[0])
    canvas = ImageDraw.Draw(img)
    top, bottom = colors[0], colors[1]
    for y in range(0, height, 4):  # vertical gradient in 4-pixel bands (fast, still smooth enough)
        t = y / max(1, height - 1)
        band = tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        canvas.rectangle((0, y, width, y + 4), fill=band)
    for _ in range(12):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(max(8, min(width, height) // 10), max(16, min(width, height) // 3))
        shape = rng.choice(("ellipse", "rectangle"))
        fill = rng.choice(colors[2:])
        getattr(canvas, shape)((x0 - r, y0 - r, x0 + r, y0 + r), fill=fill, outline=colors[1])
    canvas.text((8, 8), f"{prompt[:48]}\nseed {seed}", fill=(255, 255, 255))
    return img


def noise(seed: int, width: int, height: int) -> Image.Image:
    """The 'latent noise' a run starts from."""
    rng = _rng("noise", seed)
    size = (max(1, width // 8), max(1, height // 8))
    small = Image.frombytes("RGB", size, rng.randbytes(3 * size[0] * size[1]))
    return small.resize((width, height), Image.Resampling.NEAREST)


def partial(final: Image.Image, seed: int, fraction: float) -> Image.Image:
    """What the sampler has after ``fraction`` of its steps: noise fading into the final image."""
    start = noise(seed, final.width, final.height)
    blurred = final.filter(ImageFilter.GaussianBlur(radius=max(0.0, 8 * (1 - fraction))))
    return Image.blend(start, blurred, max(0.0, min(1.0, fraction)))


def img2img(
    init: Image.Image, prompt: str, seed: int, width: int, height: int, denoise: float, style: str
) -> Image.Image:
    """Init image resized to (width, height), changed towards the prompt's picture by ``denoise``."""
    base = init.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
    return Image.blend(base, draw(prompt, seed, width, height, style), max(0.0, min(1.0, denoise)))


def upscale(image: Image.Image, factor: float, upscaler: str) -> Image.Image:
    size = (max(1, int(image.width * factor)), max(1, int(image.height * factor)))
    if upscaler == "Nearest":
        return image.resize(size, Image.Resampling.NEAREST)
    result = image.resize(size, Image.Resampling.LANCZOS)
    if upscaler not in ("Lanczos", "None"):  # the "model" upscalers sharpen a little
        result = result.filter(ImageFilter.UnsharpMask(radius=2, percent=60))
    return result


def encode_png(img: Image.Image, infotext: str | None = None) -> bytes:
    """PNG bytes; the infotext goes in the `parameters` text chunk, as A1111 does with enable_pnginfo."""
    out = io.BytesIO()
    meta = None
    if infotext is not None:
        meta = PngImagePlugin.PngInfo()
        meta.add_text("parameters", infotext)
    img.save(out, format="PNG", pnginfo=meta)
    return out.getvalue()
