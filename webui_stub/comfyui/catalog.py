"""What the ComfyUI stub pretends to have: model files by folder, their safetensors metadata, and node definitions.

The node definitions are ``/object_info`` of a real ComfyUI 0.3.64 (object_info.json, recorded on the rig) for the
nodes the stub can run; the combo lists of files are filled from the folders here, as the real server does.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

VERSION = "0.3.64"

# GET /models, in the real server's order
FOLDERS = [
    "checkpoints", "configs", "loras", "vae", "text_encoders", "diffusion_models", "clip_vision", "style_models",
    "embeddings", "diffusers", "vae_approx", "controlnet", "gligen", "upscale_models", "custom_nodes",
    "hypernetworks", "photomaker", "classifiers", "model_patches", "audio_encoders",
]

MODELS: dict[str, list[str]] = {
    "checkpoints": ["dreamshaper_8.safetensors", "sd_xl_base_1.0.safetensors", "v1-5-pruned-emaonly.safetensors"],
    "loras": ["add_detail.safetensors", "film_grain.safetensors"],
    "upscale_models": ["4x-UltraSharp.pth", "RealESRGAN_x2plus.pth"],
}

# GET /view_metadata/{folder}?filename= : the safetensors __metadata__ (404 when a file has none)
METADATA: dict[tuple[str, str], dict[str, str]] = {
    ("checkpoints", "sd_xl_base_1.0.safetensors"): {"modelspec.architecture": "stable-diffusion-xl-v1-base"},
    ("checkpoints", "v1-5-pruned-emaonly.safetensors"): {"modelspec.architecture": "stable-diffusion-v1"},
    ("loras", "add_detail.safetensors"): {"ss_output_name": "add_detail"},
}

# the inputs whose choices are files: (node, input) -> folder ("input" = uploaded images)
_FILE_COMBOS = {
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
    ("LoraLoader", "lora_name"): "loras",
    ("UpscaleModelLoader", "model_name"): "upscale_models",
    ("LoadImage", "image"): "input",
}


@cache
def _recorded() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((Path(__file__).parent / "object_info.json").read_text())
    return data


def object_info(inputs: list[str]) -> dict[str, Any]:
    """``GET /object_info`` with the file lists of this stub (``inputs``: the uploaded images)."""
    info = copy.deepcopy(_recorded())
    for (node, name), folder in _FILE_COMBOS.items():
        files = sorted(inputs) if folder == "input" else MODELS.get(folder, [])
        entry = info[node]["input"]["required"][name]
        if entry[0] == "COMBO":  # v3 nodes: ["COMBO", {"options": [...]}]
            entry[1]["options"] = list(files)
        else:
            entry[0] = list(files)
    return info


def upscale_factor(model: str) -> int:
    """What an upscale model's name says about its factor (4x-UltraSharp, RealESRGAN_x2plus)."""
    lowered = model.lower()
    for factor in (8, 4, 3, 2):
        if f"{factor}x" in lowered or f"x{factor}" in lowered:
            return factor
    return 4
