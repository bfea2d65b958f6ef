"""Easel requests -> A1111 payloads, and A1111 answers -> Easel images."""

from __future__ import annotations

from typing import Any

from common.images import image_size, read_infotext, with_infotext
from common.models import Img2ImgRequest, Txt2ImgRequest, UpscaleRequest
from common.tasks import ImageOut
from workers.backends import results
from workers.backends.a1111.models import (
    ExtrasPayload,
    ExtrasResponse,
    GenerationResponse,
    Img2ImgPayload,
    Txt2ImgPayload,
    encode_image,
)


def _shared_fields(request: Txt2ImgRequest | Img2ImgRequest, batch_size: int | None) -> dict[str, Any]:
    return {
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "sampler_name": request.sampler,
        "scheduler": request.scheduler,
        "steps": request.steps,
        "cfg_scale": request.cfg_scale,
        "width": request.width,
        "height": request.height,
        "seed": request.seed,
        "batch_size": batch_size or request.batch_size,
    }


def txt2img_payload(request: Txt2ImgRequest, *, batch_size: int | None = None) -> Txt2ImgPayload:
    payload = Txt2ImgPayload(**_shared_fields(request, batch_size))
    if request.hires is not None:
        payload.enable_hr = True
        payload.hr_scale = request.hires.scale
        payload.hr_upscaler = request.hires.upscaler
        payload.hr_second_pass_steps = request.hires.second_pass_steps
        payload.denoising_strength = request.hires.denoising_strength
        payload.hr_cfg = request.cfg_scale
    return payload


def img2img_payload(request: Img2ImgRequest, *, batch_size: int | None = None) -> Img2ImgPayload:
    return Img2ImgPayload(
        **_shared_fields(request, batch_size),
        init_images=[encode_image(request.init_image)],
        denoising_strength=request.denoising_strength,
        resize_mode=request.resize_mode,
    )


def extras_payload(request: UpscaleRequest) -> ExtrasPayload:
    return ExtrasPayload(
        image=encode_image(request.image), upscaling_resize=request.scale, upscaler_1=request.upscaler
    )


def generated_images(response: GenerationResponse) -> list[ImageOut]:
    """The images of a txt2img/img2img answer with their seeds (seed + i) and infotexts.

    A1111 writes the infotext into each PNG; a fork that does not (or a JPEG sample format) gets it written here.
    """
    info = response.info
    images = []
    for i, data in enumerate(response.generated):
        seed = info.all_seeds[i] if i < len(info.all_seeds) else info.seed + i
        infotext = info.infotexts[i] if i < len(info.infotexts) else None
        embedded = read_infotext(data)
        if embedded is None and infotext is not None:
            data = with_infotext(data, infotext)
        text = embedded or infotext or ""
        width, height = image_size(data)
        images.append(ImageOut(png=data, seed=seed, infotext=text, width=width, height=height))
    return images


def upscaled_image(request: UpscaleRequest, response: ExtrasResponse) -> ImageOut:
    """The extras answer as an image whose infotext is the source's plus the upscale, as A1111's extras tab does."""
    return results.upscaled(request, response.image)
