"""A1111 infotext for images ComfyUI made, so Easel's stored PNGs read the same whichever server made them.

Keys and order as A1111 writes them (webui-api.md §3); the prompt keeps its ``<lora:...>`` tags; ``Model hash`` and
``Lora hashes`` are left out (ComfyUI does not hash files); ``Version`` names ComfyUI's version.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from common.infotext import format_infotext
from common.models import Img2ImgRequest, Txt2ImgRequest, WorkflowRequest
from common.workflow_models import InputType
from workers.backends import samplers
from workers.backends.comfyui.workflows import Plan


def generation(request: Txt2ImgRequest | Img2ImgRequest, plan: Plan, *, seed: int, version: str | None) -> str:
    names = plan.names
    assert names is not None
    params: dict[str, Any] = {
        "Steps": request.steps,
        "Sampler": samplers.to_a1111_sampler(names.sampler),
        "Schedule type": samplers.schedule_label(request.scheduler, request.sampler),
        "CFG scale": request.cfg_scale,
        "Seed": seed,
        "Size": f"{request.width}x{request.height}",
        "Model": names.checkpoint.model_name,
        "Denoising strength": None,
    }
    if isinstance(request, Img2ImgRequest):
        params["Denoising strength"] = request.denoising_strength
    elif request.hires is not None:
        params["Denoising strength"] = request.hires.denoising_strength
        params["Hires upscale"] = request.hires.scale
        params["Hires steps"] = request.hires.second_pass_steps or None
        params["Hires upscaler"] = request.hires.upscaler  # None (Latent) is left out, as A1111 does
    params["Version"] = f"ComfyUI {version}" if version else "ComfyUI"
    return format_infotext(request.prompt, request.negative_prompt, params)


# declared input names that mean what an A1111 infotext key means, so Parameters and re-runs read them alike
_A1111_KEYS = {"steps": "Steps", "cfg": "CFG scale", "cfg_scale": "CFG scale", "sampler": "Sampler",
               "scheduler": "Schedule type", "denoise": "Denoising strength",
               "denoising_strength": "Denoising strength"}


def custom(request: WorkflowRequest, *, seed: int, version: str | None) -> str:
    """Infotext for an admin's workflow: the prompt (if it declares one), the values set in A1111's keys where one
    fits (Steps, CFG scale, Seed, Size, Model), the rest by input name, and ``Workflow: NAME``."""
    values = request.values
    negative = values.get("negative_prompt", "")
    params: dict[str, Any] = {}
    if "width" in values and "height" in values:
        params["Size"] = f"{values['width']}x{values['height']}"
    for declared in request.definition.inputs:
        name = declared.name
        if name in ("prompt", "negative_prompt", "width", "height") or declared.type == InputType.IMAGE:
            continue
        if declared.type == InputType.SEED:
            params["Seed"] = seed
        elif declared.type == InputType.CHECKPOINT:
            params["Model"] = PurePosixPath(str(values[name])).stem
        else:
            params[_A1111_KEYS.get(name, name.replace("_", " ").capitalize())] = values[name]
    params["Workflow"] = request.workflow
    params["Version"] = f"ComfyUI {version}" if version else "ComfyUI"
    return format_infotext(request.prompt, str(negative), params)
