"""The nodes the ComfyUI stub can run, simulated: what flows between them is a description of the picture, drawn
deterministically with Pillow (:mod:`webui_stub.draw`) when a VAE decodes it.

Each node is ``async def (ctx, node_id, **inputs) -> (outputs, ui)``; ``ui`` is what an output node reports
(``{"images": [...]}``). Timing, progress, previews, interrupts and faults live in the context
(:class:`webui_stub.comfyui.engine.Execution`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from PIL import Image

from webui_stub import draw
from webui_stub.comfyui.catalog import MODELS, upscale_factor

_RESAMPLE = {"nearest-exact": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
             "area": Image.Resampling.BOX, "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS,
             "bislerp": Image.Resampling.BILINEAR}


class NodeFailure(Exception):
    """An exception a real node would raise; ``kind`` is its full type name as ComfyUI reports it."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Context(Protocol):
    async def load(self, checkpoint: str) -> None: ...

    async def sample(self, node_id: str, steps: int, final: Image.Image, seed: int) -> None: ...

    def save(self, images: list[Image.Image], prefix: str, kind: str) -> list[dict[str, str]]: ...

    def input_image(self, name: str) -> Image.Image: ...


@dataclass(frozen=True)
class Model:
    checkpoint: str
    loras: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Cond:
    text: str
    model: Model


@dataclass(frozen=True)
class Latent:
    width: int
    height: int
    batch: int
    images: tuple[Image.Image, ...] | None = None  # None: empty (noise); else what the latent "holds"


Outputs = tuple[tuple[Any, ...], dict[str, Any] | None]
NodeFunction = Callable[..., Awaitable[Outputs]]


async def checkpoint_loader(ctx: Context, node_id: str, ckpt_name: str) -> Outputs:
    await ctx.load(ckpt_name)
    model = Model(ckpt_name)
    return (model, model, ckpt_name), None


async def lora_loader(ctx: Context, node_id: str, model: Model, clip: Model, lora_name: str,
                      strength_model: float, strength_clip: float) -> Outputs:
    return (Model(model.checkpoint, (*model.loras, (lora_name, strength_model))),
            Model(clip.checkpoint, (*clip.loras, (lora_name, strength_clip)))), None


async def clip_text_encode(ctx: Context, node_id: str, text: str, clip: Model) -> Outputs:
    return (Cond(text, clip),), None


async def clip_text_encode_sdxl(ctx: Context, node_id: str, clip: Model, text_g: str, text_l: str,
                                **size: int) -> Outputs:
    return (Cond(text_g if text_g == text_l else f"{text_g} | {text_l}", clip),), None


async def empty_latent(ctx: Context, node_id: str, width: int, height: int, batch_size: int) -> Outputs:
    return (Latent(width, height, batch_size),), None


async def ksampler(ctx: Context, node_id: str, model: Model, seed: int, steps: int, cfg: float, sampler_name: str,
                   scheduler: str, positive: Cond, negative: Cond, latent_image: Latent, denoise: float) -> Outputs:
    style = "|".join(map(str, (model.checkpoint, model.loras, sampler_name, scheduler, steps, cfg,
                                hashlib.sha256(negative.text.encode()).hexdigest()[:8])))
    w, h = latent_image.width, latent_image.height
    finals = []
    for i in range(latent_image.batch):
        base = latent_image.images[i % len(latent_image.images)] if latent_image.images else None
        if base is None or denoise >= 1.0:
            finals.append(draw.draw(positive.text, seed + i, w, h, style))
        else:
            finals.append(draw.img2img(base, positive.text, seed + i, w, h, denoise, style))
    await ctx.sample(node_id, steps, finals[0], seed)
    return (Latent(w, h, latent_image.batch, tuple(finals)),), None


async def vae_decode(ctx: Context, node_id: str, samples: Latent, vae: str) -> Outputs:
    if samples.images is None:
        return ([draw.noise(i, samples.width, samples.height) for i in range(samples.batch)],), None
    return ([img.resize((samples.width, samples.height)) for img in samples.images],), None


async def vae_encode(ctx: Context, node_id: str, pixels: list[Image.Image], vae: str) -> Outputs:
    w, h = pixels[0].size
    return (Latent(w // 8 * 8, h // 8 * 8, len(pixels), tuple(pixels)),), None


async def latent_upscale_by(ctx: Context, node_id: str, samples: Latent, upscale_method: str,
                            scale_by: float) -> Outputs:
    w, h = round(samples.width / 8 * scale_by) * 8, round(samples.height / 8 * scale_by) * 8
    images = tuple(img.resize((w, h), _RESAMPLE[upscale_method]) for img in samples.images) \
        if samples.images else None
    return (Latent(w, h, samples.batch, images),), None


async def load_image(ctx: Context, node_id: str, image: str) -> Outputs:
    picture = ctx.input_image(image).convert("RGB")
    return ([picture], [picture.convert("L")]), None


async def image_scale(ctx: Context, node_id: str, image: list[Image.Image], upscale_method: str, width: int,
                      height: int, crop: str) -> Outputs:
    out = []
    for img in image:
        w = width or round(img.width * height / img.height)
        h = height or round(img.height * width / img.width)
        if crop == "center":
            scale = max(w / img.width, h / img.height)
            cw, ch = round(w / scale), round(h / scale)
            left, top = (img.width - cw) // 2, (img.height - ch) // 2
            img = img.crop((left, top, left + cw, top + ch))
        out.append(img.resize((w, h), _RESAMPLE[upscale_method]))
    return (out,), None


async def image_scale_by(ctx: Context, node_id: str, image: list[Image.Image], upscale_method: str,
                         scale_by: float) -> Outputs:
    return ([img.resize((round(img.width * scale_by), round(img.height * scale_by)), _RESAMPLE[upscale_method])
             for img in image],), None


async def upscale_model_loader(ctx: Context, node_id: str, model_name: str) -> Outputs:
    if model_name not in MODELS["upscale_models"]:
        raise NodeFailure("FileNotFoundError",
                          f"Model in folder 'upscale_models' with filename '{model_name}' not found.")
    return (upscale_factor(model_name),), None


async def upscale_with_model(ctx: Context, node_id: str, upscale_model: int, image: list[Image.Image]) -> Outputs:
    return ([draw.upscale(img, upscale_model, "model") for img in image],), None


async def save_image(ctx: Context, node_id: str, images: list[Image.Image], filename_prefix: str) -> Outputs:
    return (), {"images": ctx.save(images, filename_prefix, "output")}


async def preview_image(ctx: Context, node_id: str, images: list[Image.Image]) -> Outputs:
    return (), {"images": ctx.save(images, "ComfyUI_temp", "temp")}


async def empty_image(ctx: Context, node_id: str, width: int, height: int, batch_size: int, color: int) -> Outputs:
    rgb = ((color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF)
    return ([Image.new("RGB", (width, height), rgb) for _ in range(batch_size)],), None


NODES: dict[str, NodeFunction] = {
    "CheckpointLoaderSimple": checkpoint_loader,
    "LoraLoader": lora_loader,
    "CLIPTextEncode": clip_text_encode,
    "CLIPTextEncodeSDXL": clip_text_encode_sdxl,
    "EmptyLatentImage": empty_latent,
    "KSampler": ksampler,
    "VAEDecode": vae_decode,
    "VAEEncode": vae_encode,
    "LatentUpscaleBy": latent_upscale_by,
    "LoadImage": load_image,
    "ImageScale": image_scale,
    "ImageScaleBy": image_scale_by,
    "UpscaleModelLoader": upscale_model_loader,
    "ImageUpscaleWithModel": upscale_with_model,
    "SaveImage": save_image,
    "PreviewImage": preview_image,
    "EmptyImage": empty_image,
}
