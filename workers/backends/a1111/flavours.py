"""Which member of the A1111 family answers, told from what it shows (../shared/reference/webui-api.md §6-7), and
the differences Easel has to handle.

- **SD.Next** answers ``GET /sdapi/v1/version`` with ``{"app": "sd.next", "commit": ...}``. Its API rate-limits
  ``/sdapi/v1/progress`` (a call costs 60 of the 300 units a client may spend on it a minute), so progress comes
  from the UI's ``/internal/progress`` (free); it has no A1111 schedule types (``scheduler`` is not a field) and
  takes the hires denoise as ``hr_denoising_strength``; an unknown sampler is a 404 "Sampler not found".
- **Forge** and **Forge Neo** replace ``/sdapi/v1/sd-vae`` with ``/sdapi/v1/sd-modules`` and keep ``forge_*`` options.
  Forge still has the memory options (``forge_inference_memory``, ``forge_async_loading``, ``forge_pin_shared_memory``);
  Neo dropped them and answers 500 (KeyError) when any of them is sent, as an option or an override. Both select a
  checkpoint lazily (loaded by the next generation) and need ``hr_cfg`` set, or the hires pass ignores the negative
  prompt.
- **A1111** 1.10 is the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workers.backends.a1111.client import WebUIClient
from workers.backends.a1111.models import GenerationPayload, Txt2ImgPayload
from workers.backends.base import Flavour, architecture_from_name

LEGACY_FORGE_OPTIONS = ("forge_inference_memory", "forge_async_loading", "forge_pin_shared_memory")


@dataclass(frozen=True)
class Detected:
    flavour: Flavour
    version: str | None = None


async def detect(client: WebUIClient) -> Detected:
    """Ask the server what it is (three cheap GETs at most; none takes the generation lock)."""
    sdnext = await client.sdnext_version()
    if sdnext is not None:
        return Detected(Flavour.SDNEXT, str(sdnext.get("commit") or sdnext.get("updated") or "") or None)
    options = await client.get_options()
    if "forge_preset" in options or await client.exists("/sdapi/v1/sd-modules"):
        neo = not any(key in options for key in LEGACY_FORGE_OPTIONS)
        return Detected(Flavour.FORGE_NEO if neo else Flavour.FORGE)
    return Detected(Flavour.A1111)


def adapt(payload: GenerationPayload, flavour: Flavour) -> None:
    """Adjust a txt2img/img2img payload, in place, to what ``flavour`` expects."""
    if flavour == Flavour.FORGE_NEO:
        payload.override_settings = sanitized_overrides(payload.override_settings)
    if flavour != Flavour.SDNEXT:
        return
    payload.scheduler = None  # not a field there (its samplers carry their schedule)
    if isinstance(payload, Txt2ImgPayload):
        payload.hr_cfg = None
        if payload.enable_hr:
            payload.hr_denoising_strength = payload.denoising_strength


def sanitized_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """Overrides without the forge_* memory keys Forge Neo no longer knows (it answers 500 to them)."""
    return {k: v for k, v in overrides.items() if k not in LEGACY_FORGE_OPTIONS}


def architecture_of(title: str, sdnext_type: str | None = None) -> str | None:
    """``sdxl`` / ``sd15`` from SD.Next's model type, else from the checkpoint's name."""
    lowered = (sdnext_type or "").lower()
    if lowered in ("sdxl", "sd-xl"):
        return "sdxl"
    if lowered in ("sd", "sd15", "sd1"):
        return "sd15"
    return architecture_from_name(title)
