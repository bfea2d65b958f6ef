"""Request bodies the stub accepts, with A1111's defaults (webui-api.md 1.1-1.3). Unknown keys are ignored."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Generation(_Body):
    prompt: str = ""
    negative_prompt: str = ""
    styles: list[str] | None = None
    seed: int = -1
    subseed: int = -1
    subseed_strength: float = 0
    sampler_name: str | None = None
    sampler_index: str = "Euler"
    scheduler: str | None = None
    batch_size: int = 1
    n_iter: int = 1
    steps: int = 50
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    override_settings: dict[str, Any] | None = None
    override_settings_restore_afterwards: bool = True
    send_images: bool = True
    save_images: bool = False
    denoising_strength: float = 0.75

    def echo(self) -> dict[str, Any]:
        """The `parameters` of the answer: the request after defaults (not the resolved values)."""
        return self.model_dump(exclude={"init_images", "mask"}) | self._nulled()

    def _nulled(self) -> dict[str, Any]:
        return {}


class Txt2ImgRequest(_Generation):
    enable_hr: bool = False
    hr_scale: float = 2.0
    hr_upscaler: str | None = None
    hr_second_pass_steps: int = 0
    hr_resize_x: int = 0
    hr_resize_y: int = 0
    hr_cfg: float = 1.0
    hr_denoising_strength: float = 0.0  # SD.Next's name; 0 = denoising_strength
    firstphase_width: int = 0
    firstphase_height: int = 0


class Img2ImgRequest(_Generation):
    init_images: list[str] | None = None
    resize_mode: int = 0
    image_cfg_scale: float | None = None
    mask: str | None = None
    include_init_images: bool = False

    def _nulled(self) -> dict[str, Any]:
        return {"init_images": None, "mask": None}


GenerationRequest = Txt2ImgRequest | Img2ImgRequest


class ExtrasRequest(_Body):
    image: str = ""
    resize_mode: int = 0
    show_extras_results: bool = True
    gfpgan_visibility: float = 0
    codeformer_visibility: float = 0
    codeformer_weight: float = 0
    upscaling_resize: float = 2
    upscaling_resize_w: int = 512
    upscaling_resize_h: int = 512
    upscaling_crop: bool = True
    upscaler_1: str = "None"
    upscaler_2: str = "None"
    extras_upscaler_2_visibility: float = 0
    upscale_first: bool = False
