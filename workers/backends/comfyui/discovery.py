"""What a ComfyUI server offers, read from ``/system_stats``, ``/object_info`` and ``/models``.

Combo inputs come in two shapes: ``[["a", "b"], {...}]`` (classic nodes) and ``["COMBO", {"options": [...]}]``
(v3 nodes such as ``UpscaleModelLoader`` in 0.3.64). Checkpoints get an architecture hint from their safetensors
metadata (``modelspec.architecture``) or else their name.
"""

from __future__ import annotations

import asyncio
from pathlib import PurePosixPath
from typing import Any

from common.registry import CheckpointInfo
from workers.backends import samplers
from workers.backends.base import SD15, SDXL, BackendKind, Capabilities, Flavour, architecture_from_name
from workers.backends.comfyui.catalog import LATENT_UPSCALERS, PIXEL_UPSCALERS, Catalog
from workers.backends.comfyui.client import ComfyClient

_METADATA_LOOKUPS = 64  # checkpoints whose metadata is read for the architecture (more would slow start-up)


def combo(object_info: dict[str, Any], node: str, name: str) -> list[str]:
    """The choices of a combo input, in either shape; [] if the node or input is absent."""
    spec = object_info.get(node, {}).get("input", {})
    entry = spec.get("required", {}).get(name) or spec.get("optional", {}).get(name)
    if not isinstance(entry, list) or not entry:
        return []
    if isinstance(entry[0], list):
        return [str(choice) for choice in entry[0]]
    if entry[0] == "COMBO" and len(entry) > 1 and isinstance(entry[1], dict):
        return [str(choice) for choice in entry[1].get("options", [])]
    return []


async def discover(client: ComfyClient) -> tuple[Capabilities, Catalog]:
    stats, object_info, folders = await asyncio.gather(
        client.system_stats(), client.object_info(), client.model_folders()
    )
    listed = await asyncio.gather(*(client.models(folder) for folder in folders))
    models = {folder: files for folder, files in zip(folders, listed, strict=True) if files}
    checkpoint_files = models.get("checkpoints") or combo(object_info, "CheckpointLoaderSimple", "ckpt_name")
    catalog = Catalog(
        checkpoints=await _checkpoints(client, checkpoint_files),
        samplers=combo(object_info, "KSampler", "sampler_name"),
        schedulers=combo(object_info, "KSampler", "scheduler"),
        loras=models.get("loras") or combo(object_info, "LoraLoader", "lora_name"),
        upscale_models=models.get("upscale_models") or combo(object_info, "UpscaleModelLoader", "model_name"),
        node_classes=set(object_info),
    )
    caps = Capabilities(
        kind=BackendKind.COMFYUI, flavour=Flavour.COMFYUI, version=stats.system.comfyui_version,
        checkpoints=catalog.checkpoints, samplers=samplers.advertised_samplers(catalog.samplers),
        schedulers=samplers.advertised_schedulers(catalog.schedulers),
        upscalers=_upscalers(catalog, object_info), loras=sorted({_stem(f) for f in catalog.loras}),
        node_classes=sorted(object_info), models=models,
    )
    return caps, catalog


def _stem(file: str) -> str:
    return PurePosixPath(file).stem


def _upscalers(catalog: Catalog, object_info: dict[str, Any]) -> list[str]:
    names = set(PIXEL_UPSCALERS) if "ImageScale" in object_info else set()
    if "LatentUpscaleBy" in object_info:
        names |= set(LATENT_UPSCALERS)
    if "ImageUpscaleWithModel" in object_info:
        names |= {n for f in catalog.upscale_models for n in (f, _stem(f))}
    return sorted(names)


async def _checkpoints(client: ComfyClient, files: list[str]) -> list[CheckpointInfo]:
    metadata = await asyncio.gather(*(
        client.metadata("checkpoints", f) if f.endswith(".safetensors") and i < _METADATA_LOOKUPS else _none()
        for i, f in enumerate(files)
    ))
    return [
        CheckpointInfo(title=f, model_name=_stem(f), filename=f, architecture=_architecture(f, meta))
        for f, meta in zip(files, metadata, strict=True)
    ]


async def _none() -> dict[str, Any]:
    return {}


def _architecture(file: str, metadata: dict[str, Any]) -> str | None:
    spec = str(metadata.get("modelspec.architecture", "")).lower()
    if "stable-diffusion-xl" in spec:
        return SDXL
    if "stable-diffusion-v1" in spec:
        return SD15
    return architecture_from_name(file)
