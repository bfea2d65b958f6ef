"""Request models for the generation kinds: what a user asks for, validated at every boundary.

The same models are built from slash-command options, from CLI flags and from arq job payloads. Bounds come in two
layers: absolute ones (A1111's own ranges) always apply; a deployment's :class:`~common.limits.Limits` narrow them
through the validation context. Every error names the field and the allowed range.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from common.images import BadImage, ImageInfo, inspect_image
from common.limits import (
    HARD_MAX_BATCH,
    HARD_MAX_STEPS,
    MAX_SIDE,
    MIN_SIDE,
    SEED_MAX,
    SIDE_MULTIPLE,
    Limits,
    limits_from,
)
from common.workflow_models import InputType, WorkflowDef


def _b64_to_bytes(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return base64.b64decode(value.split(",", 1)[-1] if value.startswith("data:") else value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise PydanticCustomError("bad_image", "is not valid base64 image data") from exc
    return value


ImageBytes = Annotated[
    bytes,
    BeforeValidator(_b64_to_bytes),
    PlainSerializer(lambda data: base64.b64encode(data).decode("ascii"), return_type=str, when_used="json"),
]
"""Raw image bytes in Python; base64 text in JSON (arq payloads, results)."""

# C0 controls but tab, newline and carriage return; DEL; C1 controls; lone surrogates (what invalid UTF-8 becomes
# under surrogateescape, e.g. on a command line). A surrogate cannot be encoded for the WebUI or a PNG text chunk,
# and control characters corrupt infotext (NUL ends a PNG text chunk).
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """What is wrong with free text (``contains ... at position N; remove it``), or None if it is clean."""
    match = _FORBIDDEN.search(value)
    if match is None:
        return None
    char, position = match.group(), match.start() + 1
    if "\ud800" <= char <= "\udfff":
        return (f"contains a lone surrogate U+{ord(char):04X} at position {position} (invalid UTF-8, e.g. from a "
                "command line); remove it or fix the text's encoding")
    return f"contains a control character U+{ord(char):04X} at position {position}; remove it"


def _clean_text(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise PydanticCustomError("bad_text", "{problem}", {"problem": problem})
    return value


Text = Annotated[str, AfterValidator(_clean_text)]
"""Free text a user typed (prompts, names, labels): refused if it holds a control character or a lone surrogate."""

LORA_TAG = re.compile(r"<(?:lora|lyco):([^:>]+)((?::[^:>]*)*)>")


class LoraRef(BaseModel):
    """A ``<lora:name:weight>`` tag found in a prompt (A1111 applies it; Easel checks the name exists)."""

    name: str
    weight: float


def out_of_range(value: float, lo: float, hi: float) -> PydanticCustomError:
    return PydanticCustomError(
        "out_of_range", "must be between {lo} and {hi}, got {value}", {"lo": lo, "hi": hi, "value": value}
    )


def check_range(value: float, lo: float, hi: float) -> Any:
    if not lo <= value <= hi:
        raise out_of_range(value, lo, hi)
    return value


def check_prompt(value: str, info: ValidationInfo, *, required: bool) -> str:
    value = value.strip()
    if required and not value:
        raise PydanticCustomError("bad_prompt", "must not be empty: describe the image you want")
    limits = limits_from(info)
    if limits and len(value) > limits.max_prompt_length:
        raise PydanticCustomError(
            "bad_prompt",
            "is {length} characters long; the limit is {limit}: shorten it",
            {"length": len(value), "limit": limits.max_prompt_length},
        )
    return value


def check_image(data: bytes, info: ValidationInfo) -> ImageInfo:
    limits = limits_from(info) or Limits(max_image_bytes=2**31, max_image_pixels=2**31)
    try:
        return inspect_image(data, max_bytes=limits.max_image_bytes, max_pixels=limits.max_image_pixels)
    except BadImage as exc:
        raise PydanticCustomError("bad_image", "{reason}", {"reason": str(exc)}) from exc


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=False, ser_json_inf_nan="constants")


class HiresFix(StrictModel):
    """A1111's hires fix: a second img2img pass at ``scale`` times the first-pass size."""

    scale: float = Field(default=2.0, description="Factor of the second pass, 1-4.")
    upscaler: Text | None = Field(default=None, description="Upscaler for the second pass; None = Latent.")
    denoising_strength: float = Field(default=0.5, description="How much the second pass may change, 0-1.")
    second_pass_steps: int = Field(default=0, description="Steps of the second pass; 0 = same as steps.")

    @field_validator("scale")
    @classmethod
    def _scale(cls, v: float) -> float:
        return check_range(v, 1.0, 4.0)

    @field_validator("denoising_strength")
    @classmethod
    def _denoise(cls, v: float) -> float:
        return check_range(v, 0.0, 1.0)

    @field_validator("second_pass_steps")
    @classmethod
    def _steps(cls, v: int) -> int:
        return check_range(v, 0, HARD_MAX_STEPS)


class GenerationParams(StrictModel):
    """Fields shared by txt2img and img2img."""

    prompt: Text = Field(description="What to draw; may hold <lora:name:weight> tags.")
    negative_prompt: Text = Field(default="", description="What to avoid.")
    checkpoint: Text | None = Field(default=None, description="Checkpoint (title, name or hash); None = any.")
    sampler: Text = Field(default="Euler a", description="Sampler name as the WebUI lists it.")
    scheduler: Text | None = Field(default=None, description="Schedule type; None = the sampler's default.")
    steps: int = Field(default=20, description="Sampling steps.")
    cfg_scale: float = Field(default=7.0, description="Classifier-free guidance scale, 1-30.")
    width: int = Field(default=512, description="Width in pixels, a multiple of 8.")
    height: int = Field(default=512, description="Height in pixels, a multiple of 8.")
    seed: int = Field(default=-1, description="Seed of the first image; -1 = random. Image i uses seed+i.")
    batch_size: int = Field(default=1, description="Images made together in this task.")
    hires: HiresFix | None = Field(default=None, description="Hires fix (txt2img only); None = off.")

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, v: str, info: ValidationInfo) -> str:
        return check_prompt(v, info, required=True)

    @field_validator("negative_prompt")
    @classmethod
    def _negative(cls, v: str, info: ValidationInfo) -> str:
        return check_prompt(v, info, required=False)

    @field_validator("checkpoint", "scheduler")
    @classmethod
    def _optional_name(cls, v: str | None) -> str | None:
        return (v.strip() or None) if v is not None else None

    @field_validator("sampler")
    @classmethod
    def _sampler(cls, v: str) -> str:
        if not v.strip():
            raise PydanticCustomError("bad_choice", "must name a sampler, e.g. 'Euler a' or 'DPM++ 2M'")
        return v.strip()

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: int, info: ValidationInfo) -> int:
        limits = limits_from(info)
        return check_range(v, 1, limits.max_steps if limits else HARD_MAX_STEPS)

    @field_validator("cfg_scale")
    @classmethod
    def _cfg(cls, v: float) -> float:
        return check_range(v, 1.0, 30.0)

    @field_validator("seed")
    @classmethod
    def _seed(cls, v: int) -> int:
        return check_range(v, -1, SEED_MAX)

    @field_validator("batch_size")
    @classmethod
    def _batch(cls, v: int, info: ValidationInfo) -> int:
        limits = limits_from(info)
        return check_range(v, 1, limits.max_batch if limits else HARD_MAX_BATCH)

    @field_validator("width", "height")
    @classmethod
    def _side(cls, v: int) -> int:
        check_range(v, MIN_SIDE, MAX_SIDE)
        if v % SIDE_MULTIPLE:
            lower = v - v % SIDE_MULTIPLE
            raise PydanticCustomError(
                "bad_size",
                "must be a multiple of 8, got {value} (try {lower} or {upper})",
                {"value": v, "lower": max(lower, MIN_SIDE), "upper": lower + SIDE_MULTIPLE},
            )
        return v

    @model_validator(mode="after")
    def _area(self, info: ValidationInfo) -> GenerationParams:
        limits = limits_from(info)
        if limits is None:
            return self
        pixels = self.width * self.height
        if pixels > limits.max_pixels:
            raise PydanticCustomError(
                "bad_size",
                "size: {w}x{h} is {pixels} pixels; the limit is {limit} (e.g. 1024x1024 or 832x1216)",
                {"w": self.width, "h": self.height, "pixels": pixels, "limit": limits.max_pixels},
            )
        if self.hires is not None:
            final = int(self.width * self.hires.scale) * int(self.height * self.hires.scale)
            if final > limits.max_hires_pixels:
                raise PydanticCustomError(
                    "bad_size",
                    "hires.scale: {w}x{h} at x{scale} makes {final} pixels; the limit is {limit}",
                    {"w": self.width, "h": self.height, "scale": self.hires.scale, "final": final,
                     "limit": limits.max_hires_pixels},
                )
        return self

    @property
    def loras(self) -> list[LoraRef]:
        """The LoRA tags in the prompt, with A1111's default weight of 1."""
        refs = []
        for match in LORA_TAG.finditer(self.prompt):
            args = [a for a in match.group(2).split(":") if a]
            weight = 1.0
            if args and "=" not in args[0]:
                try:
                    weight = float(args[0])
                except ValueError:
                    weight = 1.0
            refs.append(LoraRef(name=match.group(1), weight=weight))
        return refs


class Txt2ImgRequest(GenerationParams):
    """Draw from a prompt."""

    kind: Literal["txt2img"] = "txt2img"


class Img2ImgRequest(GenerationParams):
    """Redraw an init image guided by a prompt. Width/height default to the init image's, fitted to the limits."""

    kind: Literal["img2img"] = "img2img"
    init_image: ImageBytes = Field(description="The image to start from (PNG, JPEG or WebP).")
    denoising_strength: float = Field(default=0.6, description="How much may change: 0 keeps it, 1 ignores it.")
    resize_mode: int = Field(default=0, description="0 resize, 1 crop and resize, 2 resize and fill.")

    @model_validator(mode="before")
    @classmethod
    def _size_from_image(cls, data: Any, info: ValidationInfo) -> Any:
        # Only fill in what the user left out; the image itself is checked field by field below.
        if isinstance(data, dict) and ("width" not in data or "height" not in data):
            image = _b64_to_bytes(data.get("init_image"))
            if isinstance(image, bytes):
                try:
                    size = check_image(image, info)
                except PydanticCustomError:
                    return data
                limits = limits_from(info) or Limits()
                width, height = fit_size(size.width, size.height, limits.max_pixels)
                data = {"width": width, "height": height, **data}
        return data

    @field_validator("init_image")
    @classmethod
    def _image(cls, v: bytes, info: ValidationInfo) -> bytes:
        check_image(v, info)
        return v

    @field_validator("denoising_strength")
    @classmethod
    def _denoise(cls, v: float) -> float:
        return check_range(v, 0.0, 1.0)

    @field_validator("resize_mode")
    @classmethod
    def _resize_mode(cls, v: int) -> int:
        return check_range(v, 0, 2)

    @model_validator(mode="after")
    def _no_hires(self) -> Img2ImgRequest:
        if self.hires is not None:
            raise PydanticCustomError("bad_choice", "hires: hires fix applies to txt2img only; upscale instead")
        return self


class UpscaleRequest(StrictModel):
    """Enlarge an image with one of the WebUI's upscalers (A1111's extras tab)."""

    kind: Literal["upscale"] = "upscale"
    image: ImageBytes = Field(description="The image to enlarge.")
    upscaler: Text = Field(default="R-ESRGAN 4x+", description="Upscaler name as the WebUI lists it.")
    scale: float = Field(default=2.0, description="Enlargement factor.")

    @field_validator("image")
    @classmethod
    def _image(cls, v: bytes, info: ValidationInfo) -> bytes:
        check_image(v, info)
        return v

    @field_validator("scale")
    @classmethod
    def _scale(cls, v: float, info: ValidationInfo) -> float:
        limits = limits_from(info)
        return check_range(v, 1.0, limits.max_upscale_scale if limits else 8.0)

    @model_validator(mode="after")
    def _output_size(self, info: ValidationInfo) -> UpscaleRequest:
        limits = limits_from(info)
        if limits is None:
            return self
        size = check_image(self.image, info)
        w, h = int(size.width * self.scale), int(size.height * self.scale)
        if w * h > limits.max_upscale_pixels:
            raise PydanticCustomError(
                "over_limit",
                "scale: {w0}x{h0} at x{scale} makes {w}x{h}; the limit is {limit} pixels: use a smaller scale",
                {"w0": size.width, "h0": size.height, "scale": self.scale, "w": w, "h": h,
                 "limit": limits.max_upscale_pixels},
            )
        return self


class WorkflowRequest(StrictModel):
    """Run an admin's registered ComfyUI workflow with the user's values for its declared inputs.

    ``definition`` is the workflow as registered, copied in by the front end from the store (users give only the name
    and values); ``values`` holds every declared input, checked against its declaration.
    """

    kind: Literal["workflow"] = "workflow"
    workflow: str = Field(description="The registered workflow's name.")
    definition: WorkflowDef = Field(description="The workflow as registered (graph and declared inputs).")
    values: dict[str, int | float | str] = Field(default_factory=dict, description="Every declared input's value.")

    @model_validator(mode="after")
    def _values(self) -> WorkflowRequest:
        if self.definition.name != self.workflow:
            raise PydanticCustomError("bad_choice", "workflow: the definition is not the named workflow's")
        try:
            self.values = self.definition.bind_values(self.values)
        except ValueError as exc:
            raise PydanticCustomError("bad_value", "{reason}", {"reason": str(exc)}) from None
        return self

    @property
    def checkpoint(self) -> str | None:
        chosen = self.definition.checkpoint_input()
        return str(self.values[chosen.name]) if chosen is not None else None

    @property
    def prompt(self) -> str:
        """The ``prompt`` input's value if the workflow declares one (for listings), else the workflow's name."""
        value = self.values.get("prompt")
        return value if isinstance(value, str) else f"workflow {self.workflow}"

    @property
    def seed(self) -> int:
        """The first seed input's value (-1 = not drawn yet), or 0 when the workflow declares none."""
        seeds = [i.name for i in self.definition.inputs if i.type == InputType.SEED]
        return int(self.values[seeds[0]]) if seeds else 0

    def with_seeds(self, draw: Callable[[], int]) -> WorkflowRequest:
        """A copy whose random (-1) seed inputs have drawn seeds."""
        values = dict(self.values)
        for declared in self.definition.inputs:
            if declared.type == InputType.SEED and values.get(declared.name) == -1:
                values[declared.name] = draw()
        return self.model_copy(update={"values": values})

    def reseeded(self) -> WorkflowRequest:
        """A copy whose seed inputs are random again (-1), for a re-run with new seeds."""
        values = dict(self.values)
        for declared in self.definition.inputs:
            if declared.type == InputType.SEED:
                values[declared.name] = -1
        return self.model_copy(update={"values": values})

    def needs(self) -> list[str]:
        return self.definition.needs(self.values)


GenerationRequest = Annotated[
    Txt2ImgRequest | Img2ImgRequest | UpscaleRequest | WorkflowRequest, Field(discriminator="kind")
]
"""Any of the four kinds, told apart by ``kind``."""


def fit_size(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """Scale (width, height) down to fit ``max_pixels``, keep the aspect, round to multiples of 8."""
    scale = min(1.0, (max_pixels / (width * height)) ** 0.5)

    def side(v: int) -> int:
        return int(max(MIN_SIDE, min(MAX_SIDE, (v * scale) // SIDE_MULTIPLE * SIDE_MULTIPLE)))

    return side(width), side(height)
