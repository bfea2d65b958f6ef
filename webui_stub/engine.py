"""The stub's "GPU": one generation at a time (FIFO lock), per-step timing, progress state, interrupt, checkpoints.

Behaviour follows A1111 1.10 as described in ../shared/reference/webui-api.md: defaults, seed+i, sampler fallback,
the global progress state (stale fields kept when idle), interrupt returning what was made, and a checkpoint
load that holds the queue lock.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import random
import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from PIL import Image

from webui_stub import catalog, draw
from webui_stub.controls import Stats
from webui_stub.flavours import A1111, Flavour
from webui_stub.infotext import format_infotext
from webui_stub.requests import ExtrasRequest, GenerationRequest, Img2ImgRequest, Txt2ImgRequest


class StubHTTPError(Exception):
    """An error A1111 would answer with ``status`` and its error body."""

    def __init__(self, status: int, error: str, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.status, self.error, self.detail = status, error, detail


@dataclass
class StubConfig:
    step_ms: float = 30.0
    load_ms: float = 1000.0
    preview_every: int = 10  # A1111's show_progress_every_n_steps default
    checkpoint: str = catalog.CHECKPOINTS[0]["title"]
    flavour: Flavour = A1111


@dataclass
class State:
    """A1111's shared.state, as /progress reports it."""

    skipped: bool = False
    interrupted: bool = False
    stopping_generation: bool = False
    job: str = ""
    job_count: int = 0
    job_timestamp: str = "0"
    job_no: int = 0
    sampling_step: int = 0
    sampling_steps: int = 0
    started: float = 0.0
    preview_source: tuple[Image.Image, int] | None = None  # (final image, seed) of the batch being sampled
    preview_step: int = 0

    def public(self) -> dict[str, Any]:
        keys = ("skipped", "interrupted", "stopping_generation", "job", "job_count", "job_timestamp", "job_no",
                "sampling_step", "sampling_steps")
        return {k: getattr(self, k) for k in keys}


class Engine:
    def __init__(self, config: StubConfig) -> None:
        self.config = config
        self.lock = asyncio.Lock()  # FIFO: waiters are served in arrival order, like A1111's queue_lock
        self.state = State()
        self.stats = Stats()
        self.loaded: str = config.checkpoint
        self.holding = False  # tests: generations pause after their first step until released (or interrupted)
        self.options: dict[str, Any] = {
            "sd_model_checkpoint": config.checkpoint,
            "sd_vae": "Automatic",
            "samples_format": "png",
            "enable_pnginfo": True,
            "live_previews_enable": True,
            "show_progress_every_n_steps": config.preview_every,
            "CLIP_stop_at_last_layers": 1,
            "eta_noise_seed_delta": 0,
            **config.flavour.extra_options,
        }
        self.flavour = config.flavour

    # --- options and checkpoints -------------------------------------------------------------------------

    async def set_options(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if key not in self.options:
                raise StubHTTPError(500, "KeyError", repr(key))
            if key == "sd_model_checkpoint":
                checkpoint = catalog.find_checkpoint(str(value))
                if checkpoint is None:
                    raise StubHTTPError(500, "RuntimeError", f"model {value!r} not found")
                if not self.flavour.lazy_checkpoint:  # Forge only selects it; the next generation loads it
                    async with self.lock:  # A1111 loads synchronously under the queue lock
                        await self._load(checkpoint["title"])
                value = checkpoint["title"]
            self.options[key] = value

    async def _load(self, title: str) -> None:
        if title != self.loaded:
            await asyncio.sleep(self.config.load_ms / 1000)
            self.loaded = title
            self.stats.loads += 1

    # --- progress ----------------------------------------------------------------------------------------

    def interrupt(self) -> None:
        self.state.interrupted = True

    def progress(self, skip_current_image: bool) -> dict[str, Any]:
        state = self.state
        if state.job_count == 0:
            return {"progress": 0, "eta_relative": 0, "state": state.public(), "current_image": None, "textinfo": None}
        progress = 0.01 + state.job_no / state.job_count
        if state.sampling_steps:
            progress += state.sampling_step / state.sampling_steps / state.job_count
        progress = min(progress, 1.0)
        elapsed = time.monotonic() - state.started
        image = None
        if (
            not skip_current_image
            and self.options["live_previews_enable"]
            and self.options["show_progress_every_n_steps"] != -1
            and state.preview_source is not None
            and state.preview_step > 0
        ):
            final, seed = state.preview_source
            preview = draw.partial(final, seed, state.preview_step / max(1, state.sampling_steps))
            image = base64.b64encode(draw.encode_png(preview)).decode()
        if self.flavour.sdnext:
            return {"id": state.job_timestamp, "progress": round(progress, 2),
                    "eta_relative": round(elapsed / progress - elapsed, 2), "state": state.public(),
                    "current_image": image, "textinfo": None}
        return {
            "progress": progress,
            "eta_relative": elapsed / progress - elapsed,
            "state": state.public(),
            "current_image": image,
            "textinfo": None,
        }

    def internal_progress(self, id_live_preview: int) -> dict[str, Any]:
        """SD.Next's ``/internal/progress`` for id_task "undefined": whatever job runs."""
        state = self.state
        active = state.job_count > 0
        answer = self.progress(skip_current_image=not active or id_live_preview == -1)
        image = answer.pop("current_image")
        return {"job": state.job, "textinfo": None, "active": active, "queued": False, "paused": False,
                "completed": False, "debug": False, "step": state.sampling_step, "steps": max(1, state.sampling_steps),
                "batch_no": state.job_no, "batch_count": state.job_count, "progress": answer["progress"],
                "eta": answer["eta_relative"] if active else None,
                "live_preview": f"data:image/png;base64,{image}" if image else None,
                "id_live_preview": state.preview_step}

    # --- generation --------------------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest, init: list[Image.Image] | None = None) -> dict[str, Any]:
        async with self.lock:
            started = time.monotonic()
            self.stats.first_start = self.stats.first_start or started
            try:
                return await self._generate(request, init)
            finally:
                ended = time.monotonic()
                self.stats.busy_s += ended - started
                self.stats.last_end = ended
                self.stats.generations += 1
                self.state.job_count, self.state.job = 0, ""  # A1111's end() resets only these two

    async def _generate(self, request: GenerationRequest, init: list[Image.Image] | None) -> dict[str, Any]:
        checkpoint = self._checkpoint_for(request)
        await self._load(checkpoint["title"])
        seed = request.seed if request.seed not in (-1, None) else random.randrange(4294967294)
        sampler, scheduler_label = resolve_sampler(request, strict=self.flavour.sdnext)
        batch_size = request.batch_size
        if init is not None:
            if len(init) > batch_size:
                raise StubHTTPError(500, "RuntimeError", "bs must be >= number of init images")
            batch_size = len(init) if len(init) > 1 else batch_size
        hires = isinstance(request, Txt2ImgRequest) and request.enable_hr
        hr_steps = request.hr_second_pass_steps if isinstance(request, Txt2ImgRequest) else 0
        hr_upscaler = request.hr_upscaler if isinstance(request, Txt2ImgRequest) else None
        if hires and hr_upscaler and hr_upscaler not in [*catalog.upscaler_names(), *catalog.LATENT_MODES]:
            raise StubHTTPError(500, "Exception", f"could not find upscaler named {hr_upscaler}")
        total = batch_size * request.n_iter
        seeds = [seed + i for i in range(total)]
        style = f"{checkpoint['model_name']}|{sampler}|{request.steps}|{request.cfg_scale}"
        self._begin(request, passes=2 if hires else 1)
        images: list[Image.Image] = []
        for iteration in range(request.n_iter):
            batch_seeds = seeds[iteration * batch_size:(iteration + 1) * batch_size]
            finals = [
                self._final_image(request, s, style, init[i % len(init)] if init else None)
                for i, s in enumerate(batch_seeds)
            ]
            self.state.job_no = iteration * (2 if hires else 1)
            done = await self._sample(finals[0], batch_seeds[0], request.steps)
            if hires and done:
                self.state.job_no += 1
                done = await self._sample(finals[0], batch_seeds[0], hr_steps or request.steps)
            fraction = 1.0 if done else self.state.sampling_step / max(1, self.state.sampling_steps)
            images.extend(f if done else draw.partial(f, s, fraction) for f, s in zip(finals, batch_seeds, strict=True))
            if not done:
                break  # interrupted: no further batches start
        infotexts = [self._infotext(request, checkpoint, sampler, scheduler_label, s) for s in seeds[: len(images)]]
        if hires:
            assert isinstance(request, Txt2ImgRequest)
            images = [img.resize(hires_size(request), Image.Resampling.LANCZOS) for img in images]
        encoded = [
            base64.b64encode(draw.encode_png(img, text)).decode() for img, text in zip(images, infotexts, strict=True)
        ]
        info = self._info(request, checkpoint, sampler, seeds, infotexts, batch_size)
        return {"images": encoded, "parameters": request.echo(), "info": json.dumps(info)}

    def _checkpoint_for(self, request: GenerationRequest) -> dict[str, Any]:
        for key in request.override_settings or {}:
            if key not in self.options:  # opts.set on a key the server does not have
                raise StubHTTPError(500, "KeyError", repr(key))
        override = (request.override_settings or {}).get("sd_model_checkpoint")
        found = catalog.find_checkpoint(str(override)) if override else None  # unknown overrides are dropped
        return found or catalog.find_checkpoint(self.options["sd_model_checkpoint"]) or catalog.CHECKPOINTS[0]

    def _begin(self, request: GenerationRequest, passes: int) -> None:
        state = self.state
        state.interrupted = state.skipped = state.stopping_generation = False
        state.job_count = request.n_iter * passes
        state.job = "scripts_img2img" if isinstance(request, Img2ImgRequest) else "scripts_txt2img"
        state.job_timestamp = datetime.now().strftime("%Y%m%d%H%M%S")
        state.job_no = state.sampling_step = 0
        state.started = time.monotonic()
        state.preview_source, state.preview_step = None, 0

    def _final_image(
        self, request: GenerationRequest, seed: int, style: str, init: Image.Image | None
    ) -> Image.Image:
        if init is not None and isinstance(request, Img2ImgRequest):
            return draw.img2img(
                init, request.prompt, seed, request.width, request.height, request.denoising_strength, style
            )
        return draw.draw(request.prompt, seed, request.width, request.height, style)

    async def _sample(self, final: Image.Image, seed: int, steps: int) -> bool:
        """Run ``steps`` steps; False if interrupted part-way."""
        state = self.state
        state.sampling_steps, state.sampling_step = steps, 0
        state.preview_source, state.preview_step = (final, seed), 0
        every = int(self.options["show_progress_every_n_steps"])
        for step in range(1, steps + 1):
            await asyncio.sleep(self.config.step_ms / 1000)
            while self.holding and step > 1 and not state.interrupted:  # noqa: ASYNC110 (interrupt sets no event)
                await asyncio.sleep(0.01)
            if state.interrupted:
                return False
            state.sampling_step = step
            if every > 0 and step % every == 0:
                state.preview_step = step
        return True

    def _infotext(
        self, request: GenerationRequest, checkpoint: dict[str, Any], sampler: str, scheduler: str, seed: int
    ) -> str:
        if self.flavour.sdnext:
            return self._sdnext_infotext(request, checkpoint, sampler, seed)
        params: dict[str, Any] = {
            "Steps": request.steps,
            "Sampler": sampler,
            "Schedule type": scheduler,
            "CFG scale": request.cfg_scale,
            "Seed": seed,
            "Size": f"{request.width}x{request.height}",
            "Model hash": checkpoint["hash"],
            "Model": checkpoint["model_name"],
        }
        extra: dict[str, Any] = {}
        if isinstance(request, Img2ImgRequest):
            params["Denoising strength"] = request.denoising_strength
        elif request.enable_hr:
            params["Denoising strength"] = request.denoising_strength
            extra["Hires upscale"] = request.hr_scale
            extra["Hires steps"] = request.hr_second_pass_steps or None
            extra["Hires upscaler"] = request.hr_upscaler
            if self.flavour.forge:
                extra["Hires CFG Scale"] = request.hr_cfg
        hashes = lora_hashes(request.prompt)
        if hashes:
            extra["Lora hashes"] = hashes
        return format_infotext(request.prompt, request.negative_prompt, params, extra, self.flavour.version)

    def _sdnext_infotext(self, request: GenerationRequest, checkpoint: dict[str, Any], sampler: str, seed: int) -> str:
        """SD.Next's own keys (processing_info.py): no Schedule type; App, Pipeline and Operations."""
        params: dict[str, Any] = {
            "Steps": request.steps, "Size": f"{request.width}x{request.height}", "Sampler": sampler, "Seed": seed,
            "CFG scale": request.cfg_scale, "Model": checkpoint["model_name"], "Model hash": checkpoint["hash"],
        }
        extra: dict[str, Any] = {"App": "SD.Next", "Pipeline": "StableDiffusionPipeline"}
        if isinstance(request, Img2ImgRequest):
            params["Denoising strength"] = request.denoising_strength
        elif request.enable_hr:
            params["Denoising strength"] = request.hr_denoising_strength or request.denoising_strength
            extra["Hires upscale"] = request.hr_scale
            extra["Hires upscaler"] = request.hr_upscaler
        extra["Operations"] = "img2img" if isinstance(request, Img2ImgRequest) else "txt2img"
        return format_infotext(request.prompt, request.negative_prompt, params, extra, self.flavour.version)

    def _info(
        self,
        request: GenerationRequest,
        checkpoint: dict[str, Any],
        sampler: str,
        seeds: list[int],
        infotexts: list[str],
        batch_size: int,
    ) -> dict[str, Any]:
        count = len(infotexts)
        return {
            "prompt": request.prompt,
            "all_prompts": [request.prompt] * count,
            "negative_prompt": request.negative_prompt,
            "all_negative_prompts": [request.negative_prompt] * count,
            "seed": seeds[0],
            "all_seeds": seeds[:count],
            "subseed": seeds[0] + 1,
            "all_subseeds": [s + 1 for s in seeds[:count]],
            "subseed_strength": 0,
            "width": request.width,
            "height": request.height,
            "sampler_name": sampler,
            "cfg_scale": request.cfg_scale,
            "steps": request.steps,
            "batch_size": batch_size,
            "restore_faces": False,
            "face_restoration_model": None,
            "sd_model_name": checkpoint["model_name"],
            "sd_model_hash": checkpoint["hash"],
            "sd_vae_name": None,
            "sd_vae_hash": None,
            "seed_resize_from_w": -1,
            "seed_resize_from_h": -1,
            "denoising_strength": getattr(request, "denoising_strength", None),
            "extra_generation_params": {},
            "index_of_first_image": 0,
            "infotexts": infotexts,
            "styles": [],
            "job_timestamp": self.state.job_timestamp,
            "clip_skip": 1,
            "is_using_inpainting_conditioning": False,
            "version": self.flavour.version,
        }

    # --- extras ------------------------------------------------------------------------------------------

    async def upscale(self, request: ExtrasRequest, image: Image.Image) -> dict[str, Any]:
        if request.upscaler_1 not in catalog.upscaler_names():
            raise StubHTTPError(500, "AssertionError", f"could not find upscaler named {request.upscaler_1}")
        if request.resize_mode == 0 and request.upscaling_resize <= 0:
            raise StubHTTPError(500, "AssertionError", "upscaling_resize must be > 0")
        async with self.lock:
            await asyncio.sleep(self.config.step_ms * 5 / 1000)
            if request.resize_mode == 1:
                factor = request.upscaling_resize_w / image.width
                result = draw.upscale(image, factor, request.upscaler_1).resize(
                    (request.upscaling_resize_w, request.upscaling_resize_h)
                )
            else:
                result = draw.upscale(image, request.upscaling_resize, request.upscaler_1)
        html = f"<p>Postprocess upscale by: {request.upscaling_resize}, Postprocess upscaler: {request.upscaler_1}</p>"
        return {"html_info": html, "image": base64.b64encode(draw.encode_png(result)).decode()}


def resolve_sampler(request: GenerationRequest, *, strict: bool = False) -> tuple[str, str]:
    """(sampler, schedule type label) as A1111 1.9+ resolves them: unknown samplers fall back to DPM++ 2M.

    ``strict`` (SD.Next): an unknown sampler is a 404 instead, after a case-insensitive lookup.
    """
    name = request.sampler_name or request.sampler_index or "Euler"
    if strict:
        found = next((s["name"] for s in catalog.SAMPLERS if s["name"].lower() == name.lower()), None)
        if found is None:
            raise StubHTTPError(404, "HTTPException", "404: Sampler not found", detail="Sampler not found")
        name = found
    scheduler = catalog.find_scheduler(request.scheduler) if request.scheduler else None
    if catalog.find_sampler(name) is None:
        head, _, tail = name.rpartition(" ")
        if head and catalog.find_sampler(head) and catalog.find_scheduler(tail):
            name, scheduler = head, scheduler or catalog.find_scheduler(tail)
        else:
            name = "DPM++ 2M"
    sampler = catalog.find_sampler(name)
    assert sampler is not None
    if scheduler is None or scheduler["name"] == "automatic":
        default = sampler["options"].get("scheduler")
        scheduler = catalog.find_scheduler(default) if default else None
    return name, scheduler["label"] if scheduler else "Automatic"


_LORA = re.compile(r"<(?:lora|lyco):([^:>]+)[^>]*>")


def lora_hashes(prompt: str) -> str | None:
    """``"name: hash, ..."`` for known LoRAs in the prompt; unknown ones are ignored, as A1111 does."""
    found = []
    for name in dict.fromkeys(_LORA.findall(prompt)):
        lora = next((x for x in catalog.LORAS if name in (x["name"], x["alias"])), None)
        if lora is not None:
            found.append(f"{name}: {lora['hash']}")
    return ", ".join(found) or None


def hires_size(request: Txt2ImgRequest) -> tuple[int, int]:
    if request.hr_resize_x or request.hr_resize_y:
        w = request.hr_resize_x or int(request.width * request.hr_resize_y / request.height)
        h = request.hr_resize_y or int(request.height * request.hr_resize_x / request.width)
        return w, h
    return int(request.width * request.hr_scale), int(request.height * request.hr_scale)


def decode_image(data: str) -> Image.Image:
    """A1111's decode_base64_to_image: plain base64 or a data URI; anything else is 500 'Invalid encoded image'."""
    if data.startswith("data:image/"):
        data = data.split(";")[1].split(",")[1] if ";" in data else data
    try:
        img = Image.open(io.BytesIO(base64.b64decode(data)))
        img.load()
        return img
    except Exception as exc:
        raise StubHTTPError(500, "HTTPException", "Invalid encoded image", detail="Invalid encoded image") from exc
