"""What the stub WebUI pretends to have installed: checkpoints, samplers, schedulers, upscalers, LoRAs.

Shapes and names follow A1111 1.10 (../shared/reference/webui-api.md section 1.6).
"""

from __future__ import annotations

from typing import Any

VERSION = "v1.10.1"

CHECKPOINTS: list[dict[str, Any]] = [
    {
        "title": "v1-5-pruned-emaonly.safetensors [6ce0161689]",
        "model_name": "v1-5-pruned-emaonly",
        "hash": "6ce0161689",
        "sha256": "6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa",
        "filename": "/models/Stable-diffusion/v1-5-pruned-emaonly.safetensors",
        "config": None,
    },
    {
        "title": "sd_xl_base_1.0.safetensors [31e35c80fc]",
        "model_name": "sd_xl_base_1.0",
        "hash": "31e35c80fc",
        "sha256": "31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b",
        "filename": "/models/Stable-diffusion/sd_xl_base_1.0.safetensors",
        "config": None,
    },
    {
        "title": "dreamshaper_8.safetensors [879db523c3]",
        "model_name": "dreamshaper_8",
        "hash": "879db523c3",
        "sha256": "879db523c30d3b9017143d56705015e15a2cb5628762c11d086fed9538abd7fd",
        "filename": "/models/Stable-diffusion/dreamshaper_8.safetensors",
        "config": None,
    },
]

# name, aliases, default scheduler option
_SAMPLERS = [
    ("DPM++ 2M", ["k_dpmpp_2m"], {"scheduler": "karras"}),
    ("DPM++ SDE", ["k_dpmpp_sde"], {"scheduler": "karras"}),
    ("DPM++ 2M SDE", ["k_dpmpp_2m_sde_ka"], {"brownian_noise": True}),
    ("Euler a", ["k_euler_a", "k_euler_ancestral"], {"uses_ensd": True}),
    ("Euler", ["k_euler"], {}),
    ("LMS", ["k_lms"], {}),
    ("Heun", ["k_heun"], {"second_order": True}),
    ("DDIM", ["ddim"], {}),
    ("UniPC", ["unipc"], {}),
]
SAMPLERS: list[dict[str, Any]] = [{"name": n, "aliases": a, "options": o} for n, a, o in _SAMPLERS]

_SCHEDULERS = [
    ("automatic", "Automatic"), ("uniform", "Uniform"), ("karras", "Karras"), ("exponential", "Exponential"),
    ("polyexponential", "Polyexponential"), ("sgm_uniform", "SGM Uniform"), ("kl_optimal", "KL Optimal"),
    ("align_your_steps", "Align Your Steps"), ("simple", "Simple"), ("normal", "Normal"), ("ddim", "DDIM"),
    ("beta", "Beta"),
]
SCHEDULERS: list[dict[str, Any]] = [
    {"name": n, "label": label, "aliases": None, "default_rho": -1, "need_inner_model": False}
    for n, label in _SCHEDULERS
]

UPSCALERS: list[dict[str, Any]] = [
    {"name": "None", "model_name": None, "model_path": None, "model_url": None, "scale": 4},
    {"name": "Lanczos", "model_name": None, "model_path": None, "model_url": None, "scale": 4},
    {"name": "Nearest", "model_name": None, "model_path": None, "model_url": None, "scale": 4},
    {"name": "ESRGAN_4x", "model_name": "ESRGAN_4x", "model_path": None, "model_url": None, "scale": 4},
    {"name": "R-ESRGAN 4x+", "model_name": None, "model_path": None, "model_url": None, "scale": 4},
    {"name": "R-ESRGAN 4x+ Anime6B", "model_name": None, "model_path": None, "model_url": None, "scale": 4},
]

LATENT_MODES = [
    "Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)", "Latent (nearest)",
    "Latent (nearest-exact)",
]

LORAS: list[dict[str, Any]] = [
    {"name": "add_detail", "alias": "add_detail", "path": "/models/Lora/add_detail.safetensors",
     "metadata": {"ss_output_name": "add_detail"}, "hash": "7c6bad76eb54"},
    {"name": "film_grain", "alias": "filmgrain", "path": "/models/Lora/film_grain.safetensors",
     "metadata": {"ss_output_name": "filmgrain"}, "hash": "0123456789ab"},
]


SD_VAE: list[dict[str, Any]] = [{"model_name": "vae-ft-mse-840000-ema-pruned.safetensors",
                                 "filename": "/models/VAE/vae-ft-mse-840000-ema-pruned.safetensors"}]
SD_MODULES: list[dict[str, Any]] = [{"model_name": "sdxl_vae.safetensors",
                                     "filename": "/models/VAE/sdxl_vae.safetensors"}]

# SD.Next's /schedulers: its samplers' diffusers classes (it has no A1111 schedule types)
SDNEXT_SCHEDULERS: list[dict[str, Any]] = [
    {"name": "Euler a", "cls": "EulerAncestralDiscreteScheduler", "options": {}},
    {"name": "DPM++ 2M", "cls": "DPMSolverMultistepScheduler", "options": {"solver_order": 2}},
    {"name": "UniPC", "cls": "UniPCMultistepScheduler", "options": {}},
]
_ARCHITECTURES = {"sd_xl_base_1.0": "sdxl"}


def sd_models(*, with_type: bool) -> list[dict[str, Any]]:
    """/sd-models; SD.Next adds each model's ``type``."""
    if not with_type:
        return CHECKPOINTS
    return [{**cp, "type": _ARCHITECTURES.get(cp["model_name"], "sd")} for cp in CHECKPOINTS]


def sampler_listing(*, aliases: bool) -> list[dict[str, Any]]:
    """/samplers; SD.Next's items have no aliases."""
    return SAMPLERS if aliases else [{"name": s["name"], "options": s["options"]} for s in SAMPLERS]


def find_checkpoint(name: str) -> dict[str, Any] | None:
    """Resolve any of A1111's accepted aliases: title, file name, model name, stem, short hash, sha256."""
    for cp in CHECKPOINTS:
        file_name = cp["title"].split(" [")[0]
        if name in (cp["title"], file_name, cp["model_name"], cp["hash"], cp["sha256"], cp["filename"]):
            return cp
    return None


def find_sampler(name: str) -> dict[str, Any] | None:
    return next((s for s in SAMPLERS if s["name"] == name), None)


def find_scheduler(name: str) -> dict[str, Any] | None:
    lowered = name.lower()
    return next((s for s in SCHEDULERS if lowered in (s["name"], s["label"].lower())), None)


def upscaler_names() -> list[str]:
    return [u["name"] for u in UPSCALERS]


def lora_listing() -> list[dict[str, Any]]:
    """/sdapi/v1/loras items (the hash is only used in infotext)."""
    return [{k: v for k, v in lora.items() if k != "hash"} for lora in LORAS]
