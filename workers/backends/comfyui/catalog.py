"""What one ComfyUI server has, and how Easel's names (A1111's) resolve to its files and node options.

A name the server lacks is refused with :class:`~workers.backends.errors.BackendRejected` naming the Easel field,
before anything is queued there — except LoRAs, which go to ComfyUI as asked so that its own validation
(``LoraLoader.lora_name`` not in its list) answers, as it does for any graph.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from common.models import LORA_TAG
from common.registry import CheckpointInfo
from workers.backends import samplers
from workers.backends.errors import BackendRejected

# A1111 upscaler names that are plain resizes (ImageScaleBy's upscale_method) or latent resizes (LatentUpscaleBy)
PIXEL_UPSCALERS = {"Lanczos": "lanczos", "Nearest": "nearest-exact", "None": "lanczos"}
LATENT_UPSCALERS = {
    "Latent": "bilinear", "Latent (antialiased)": "bilinear", "Latent (bicubic)": "bicubic",
    "Latent (bicubic antialiased)": "bicubic", "Latent (nearest)": "nearest-exact",
    "Latent (nearest-exact)": "nearest-exact",
}


@dataclass(frozen=True)
class Upscaler:
    """How one A1111 upscaler name is done here: exactly one of the three is set."""

    latent_method: str | None = None  # LatentUpscaleBy.upscale_method
    pixel_method: str | None = None  # ImageScaleBy.upscale_method
    model: str | None = None  # UpscaleModelLoader.model_name


@dataclass(frozen=True)
class LoraUse:
    """One ``<lora:name:te[:unet]>`` tag: the file to load and its text-encoder / UNet weights."""

    name: str
    file: str
    te: float
    unet: float


def _stem(file: str) -> str:
    return PurePosixPath(file).stem


@dataclass
class Catalog:
    checkpoints: list[CheckpointInfo] = field(default_factory=list)
    samplers: list[str] = field(default_factory=list)  # ComfyUI names
    schedulers: list[str] = field(default_factory=list)
    loras: list[str] = field(default_factory=list)  # files in models/loras
    upscale_models: list[str] = field(default_factory=list)  # files in models/upscale_models
    node_classes: set[str] = field(default_factory=set)

    def checkpoint(self, query: str | None, selected: CheckpointInfo | None) -> CheckpointInfo:
        """The request's checkpoint; without one, the selected (last loaded) one, else the first listed."""
        if query is not None:
            found = next((c for c in self.checkpoints if c.matches(query)), None)
            if found is None:
                raise BackendRejected(f"checkpoint: this ComfyUI has no checkpoint '{query}'", field="checkpoint")
            return found
        if selected is not None:
            return selected
        if not self.checkpoints:
            raise BackendRejected("checkpoint: this ComfyUI has no checkpoints in models/checkpoints",
                                  field="checkpoint")
        return self.checkpoints[0]

    def sampler(self, name: str) -> str:
        comfy = samplers.to_comfy_sampler(name, self.samplers)
        if comfy is None:
            raise BackendRejected(f"sampler: this ComfyUI has no sampler '{name}'", field="sampler")
        return comfy

    def scheduler(self, label: str | None, sampler: str) -> str:
        comfy = samplers.to_comfy_scheduler(label, sampler, self.schedulers)
        if comfy is None:
            raise BackendRejected(f"scheduler: this ComfyUI has no schedule type '{label}'", field="scheduler")
        return comfy

    def upscaler(self, name: str | None, where: str, *, latent: bool) -> Upscaler:
        """``name`` as a latent resize (hires fix only), a plain resize, or an upscale model file."""
        if name is None or (latent and name in LATENT_UPSCALERS):
            return Upscaler(latent_method=LATENT_UPSCALERS[name or "Latent"])
        if name in PIXEL_UPSCALERS:
            return Upscaler(pixel_method=PIXEL_UPSCALERS[name])
        lowered = name.lower()
        model = next((f for f in self.upscale_models if lowered in (f.lower(), _stem(f).lower())), None)
        if model is None:
            raise BackendRejected(f"{where}: this ComfyUI has no upscaler '{name}'", field=where)
        return Upscaler(model=model)

    def lora_uses(self, prompt: str) -> tuple[str, list[LoraUse]]:
        """The prompt without its LoRA tags (what CLIPTextEncode gets) and the LoRAs to chain, in order."""
        uses = [self._lora_use(match) for match in LORA_TAG.finditer(prompt)]
        text = re.sub(r"[ \t]{2,}", " ", LORA_TAG.sub("", prompt)).strip()
        return text, uses

    def _lora_use(self, match: re.Match[str]) -> LoraUse:
        name = match.group(1).strip()
        te, unet = _lora_weights([a for a in match.group(2).split(":") if a])
        lowered = name.lower()
        file = next((f for f in self.loras if _stem(f) == name), None) or next(
            (f for f in self.loras if _stem(f).lower() == lowered), None
        )
        # A LoRA this server lacks goes as "<name>.safetensors": ComfyUI's validation refuses it by name.
        return LoraUse(name=name, file=file or f"{name}.safetensors", te=te, unet=unet)


def _lora_weights(args: list[str]) -> tuple[float, float]:
    """A1111's ``<lora:name:te:unet>`` arguments (positional or ``te=``/``unet=``); unet defaults to te, te to 1."""
    named = dict(a.split("=", 1) for a in args if "=" in a)
    positional = [a for a in args if "=" not in a]

    def number(text: str | None, default: float) -> float:
        try:
            return float(text) if text is not None else default
        except ValueError:
            return default

    te = number(named.get("te", positional[0] if positional else None), 1.0)
    unet = number(named.get("unet", positional[1] if len(positional) > 1 else None), te)
    return te, unet
