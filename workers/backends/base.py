"""The seam between a worker and its generation server: what every backend offers, and the shapes it speaks in.

A worker owns one :class:`Backend` and runs one task on it at a time. Requests go in as Easel's own models
(:mod:`common.models`); images come back as :class:`~common.tasks.ImageOut` whose PNGs carry A1111-style infotext on
every backend, so the bot, the job store and re-runs never need to know which server made them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, Field

from common.models import Img2ImgRequest, Txt2ImgRequest, UpscaleRequest, WorkflowRequest
from common.registry import CheckpointInfo, WorkerInfo
from common.tasks import ImageOut


class BackendKind(StrEnum):
    """Which API the server speaks."""

    A1111 = "a1111"  # /sdapi/v1 (A1111, Forge, Forge Neo, SD.Next)
    COMFYUI = "comfyui"


class Flavour(StrEnum):
    """Which server it is; flavours of one kind share an API but differ in details the backend handles."""

    A1111 = "a1111"
    FORGE = "forge"
    FORGE_NEO = "forge-neo"
    SDNEXT = "sdnext"
    COMFYUI = "comfyui"


GenerationTask = Txt2ImgRequest | Img2ImgRequest | UpscaleRequest | WorkflowRequest

SDXL, SD15 = "sdxl", "sd15"
_SDXL_NAMES = ("sdxl", "sd_xl", "_xl", "xl_", "pony", "illustrious")
_SD15_NAMES = ("sd15", "sd_15", "sd1.5", "sd_1.5", "v1_5", "sd_1_5")


def architecture_from_name(name: str) -> str | None:
    """``sdxl`` / ``sd15`` when a checkpoint's file name says so (most do), else None."""
    lowered = name.lower().replace("-", "_")
    if any(token in lowered for token in _SDXL_NAMES):
        return SDXL
    if any(token in lowered for token in _SD15_NAMES):
        return SD15
    return None


@dataclass(frozen=True)
class Progress:
    """What the backend last saw of a running generation."""

    step: int  # sampling step within the current pass (0 before the first one)
    steps: int  # steps of the current pass
    fraction: float  # of the whole task, 0..1 (all passes and images)
    eta_s: float | None = None  # seconds left, when the server says or it can be estimated
    preview: bytes | None = None  # a preview image (JPEG or PNG) of the current pass, full size as the server sent it


ProgressCallback = Callable[[Progress], Awaitable[None]]
"""Called on every observed change of progress; it must return quickly (it runs on the backend's own loop)."""


@dataclass
class Generated:
    """A finished generation: images in order (seed + i), the resolved parameters, the checkpoint used."""

    images: list[ImageOut]
    parameters: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None


class Capabilities(BaseModel):
    """What a server offers, in Easel's (A1111's) names, for the registry and capability routing."""

    kind: BackendKind
    flavour: Flavour
    version: str | None = Field(default=None, description="The server's version, when it tells.")
    checkpoints: list[CheckpointInfo] = Field(default_factory=list)
    loaded_checkpoint: str | None = Field(default=None, description="Title of the loaded (or selected) checkpoint.")
    samplers: list[str] = Field(default_factory=list, description="Sampler names (A1111's) and aliases.")
    schedulers: list[str] = Field(default_factory=list, description="Schedule types (A1111's names and labels).")
    upscalers: list[str] = Field(default_factory=list, description="Upscaler names, latent modes included.")
    loras: list[str] = Field(default_factory=list, description="LoRA names as written in <lora:NAME:w>.")
    node_classes: list[str] = Field(default_factory=list, description="ComfyUI node classes (/object_info).")
    models: dict[str, list[str]] = Field(default_factory=dict, description="ComfyUI model files by folder.")

    def apply_to(self, info: WorkerInfo) -> None:
        """Copy into a worker's registry entry."""
        info.backend, info.flavour, info.backend_version = self.kind.value, self.flavour.value, self.version
        info.checkpoints = list(self.checkpoints)
        info.loaded_checkpoint = self.loaded_checkpoint
        info.samplers, info.schedulers = list(self.samplers), list(self.schedulers)
        info.upscalers, info.loras = list(self.upscalers), list(self.loras)
        info.node_classes, info.models = list(self.node_classes), dict(self.models)


class Backend(Protocol):
    """One generation server. A worker owns one; it runs one task at a time."""

    @property
    def kind(self) -> BackendKind: ...

    @property
    def flavour(self) -> Flavour: ...

    @property
    def base_url(self) -> str: ...

    async def discover(self) -> Capabilities:
        """What the server offers now (checkpoints, samplers, ...), its flavour and version."""
        ...

    async def health(self) -> None:
        """Return if the server answers; raise BackendUnreachable / BackendTimeout if not."""
        ...

    async def load_checkpoint(self, checkpoint: CheckpointInfo) -> None:
        """Make ``checkpoint`` the one the next generations use (A1111: loads it; ComfyUI: remembered)."""
        ...

    async def generate(
        self, request: GenerationTask, *, task_id: str, on_progress: ProgressCallback
    ) -> Generated:
        """Run one task to the end. Raises :class:`~workers.backends.errors.Interrupted` if it was interrupted."""
        ...

    async def interrupt(self, task_id: str) -> None:
        """Stop exactly this task, running or still queued on the server; a task not running here is left alone."""
        ...

    async def aclose(self) -> None: ...
