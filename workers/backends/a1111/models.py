"""Typed shapes of the A1111 API (../shared/reference/webui-api.md): request payloads and responses.

Payload models use A1111's field names; response models accept unknown keys (versions and forks add fields) and
decode what Easel needs: base64 images, the JSON-encoded ``info`` string, progress state.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator


def _decode_b64(value: Any) -> Any:
    if isinstance(value, str):
        text = value.split(",", 1)[1] if value.startswith("data:") else value
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("not valid base64") from exc
    return value


B64Image = Annotated[bytes, BeforeValidator(_decode_b64)]


def encode_image(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore")


# --- payloads ----------------------------------------------------------------------------------------------


class GenerationPayload(BaseModel):
    """Fields common to /txt2img and /img2img, named as A1111 names them."""

    prompt: str
    negative_prompt: str = ""
    sampler_name: str
    scheduler: str | None = None
    steps: int
    cfg_scale: float
    width: int
    height: int
    seed: int
    batch_size: int = 1
    n_iter: int = 1
    send_images: bool = True
    save_images: bool = False
    override_settings: dict[str, Any] = Field(default_factory=dict)


class Txt2ImgPayload(GenerationPayload):
    enable_hr: bool = False
    hr_scale: float = 2.0
    hr_upscaler: str | None = None
    hr_second_pass_steps: int = 0
    denoising_strength: float | None = None
    hr_cfg: float | None = None  # Forge: set explicitly, or the negative prompt is ignored in the hires pass
    hr_denoising_strength: float | None = None  # SD.Next's name for the hires pass's denoise


class Img2ImgPayload(GenerationPayload):
    init_images: list[str]
    denoising_strength: float
    resize_mode: int = 0


class ExtrasPayload(BaseModel):
    image: str
    resize_mode: int = 0
    upscaling_resize: float = 2.0
    upscaler_1: str
    show_extras_results: bool = True


# --- responses ---------------------------------------------------------------------------------------------


class GenerationInfo(_Response):
    """The decoded ``info`` string of a generation response (only the keys Easel uses)."""

    prompt: str = ""
    negative_prompt: str = ""
    seed: int
    all_seeds: list[int]
    subseed: int | None = None
    width: int
    height: int
    sampler_name: str | None = None
    cfg_scale: float | None = None
    steps: int | None = None
    batch_size: int | None = None
    sd_model_name: str | None = None
    sd_model_hash: str | None = None
    denoising_strength: float | None = None
    index_of_first_image: int = 0
    infotexts: list[str] = Field(default_factory=list)
    job_timestamp: str | None = None
    version: str | None = None
    extra_generation_params: dict[str, Any] = Field(default_factory=dict)


class GenerationResponse(_Response):
    """/txt2img and /img2img answer."""

    images: list[B64Image]
    parameters: dict[str, Any] = Field(default_factory=dict)
    info: GenerationInfo

    @field_validator("info", mode="before")
    @classmethod
    def _decode_info(cls, value: Any) -> Any:
        # A1111 sends info as a JSON *string* inside the JSON body.
        return json.loads(value) if isinstance(value, str) else value

    @property
    def generated(self) -> list[bytes]:
        """The images without a leading grid (A1111 prepends one when it saves images)."""
        return self.images[self.info.index_of_first_image :]


class ExtrasResponse(_Response):
    image: B64Image
    html_info: str = ""


class ProgressState(_Response):
    skipped: bool = False
    interrupted: bool = False
    job: str = ""
    job_count: int = 0
    job_timestamp: str = ""
    job_no: int = 0
    sampling_step: int = 0
    sampling_steps: int = 0


class Progress(_Response):
    progress: float = 0.0
    eta_relative: float = 0.0
    state: ProgressState
    current_image: B64Image | None = None
    textinfo: str | None = None

    @property
    def active(self) -> bool:
        return self.state.job_count > 0


class InternalProgress(_Response):
    """SD.Next's ``POST /internal/progress`` answer (the UI's own progress route)."""

    active: bool = False
    step: int | None = None
    steps: int | None = None
    batch_no: int | None = None
    batch_count: int | None = None
    progress: float | None = None
    eta: float | None = None
    live_preview: str | None = None  # a data: URI
    id_live_preview: int | None = None

    @property
    def preview(self) -> bytes | None:
        if not self.live_preview:
            return None
        try:
            return bytes(_decode_b64(self.live_preview))
        except ValueError:
            return None


class SDModel(_Response):
    title: str
    model_name: str
    hash: str | None = None
    sha256: str | None = None
    filename: str | None = None
    type: str | None = None  # SD.Next: the architecture ("sd", "sdxl", ...)


class Sampler(_Response):
    name: str
    aliases: list[str] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)


class Scheduler(_Response):
    name: str
    label: str | None = None
    aliases: list[str] | None = None


class Upscaler(_Response):
    name: str
    model_name: str | None = None
    scale: float | None = None


class LatentUpscaleMode(_Response):
    name: str


class Lora(_Response):
    name: str
    alias: str | None = None
    path: str | None = None
