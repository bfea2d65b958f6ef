"""Run one task on this worker's WebUI: load its checkpoint, generate, report progress, build the result."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Awaitable, Callable

from PIL import Image

from common.errors import FailureCode, TaskFailed
from common.events import EventStream, EventType, TaskEvent
from common.models import Img2ImgRequest, Txt2ImgRequest, UpscaleRequest
from common.registry import WorkerInfo, WorkerState
from common.tasks import ImageOut, TaskResult, TaskSpec, now_ms
from workers import payloads
from workers.webui.client import WebUIClient
from workers.webui.errors import WebUIError

log = logging.getLogger(__name__)

PREVIEW_SIDE = 256  # progress previews are shrunk to this, so the event stream stays small


class CheckpointMissing(Exception):
    """This worker's WebUI does not have the task's checkpoint (another worker may)."""


class TaskRunner:
    """Turns a :class:`TaskSpec` into WebUI calls. One per worker; runs one task at a time."""

    def __init__(
        self,
        webui: WebUIClient,
        events: EventStream,
        info: WorkerInfo,
        *,
        progress_interval_s: float = 0.5,
        on_state: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.webui = webui
        self.events = events
        self.info = info
        self.progress_interval_s = progress_interval_s
        self._on_state = on_state

    async def run(self, spec: TaskSpec) -> TaskResult:
        started = now_ms()
        await self._set_state(WorkerState.BUSY, spec.task_id)
        await self._publish(spec, EventType.STARTED, position=0)
        request = spec.request
        if not isinstance(request, UpscaleRequest) and request.checkpoint is not None:
            await self._ensure_checkpoint(spec, request.checkpoint)
        poller = asyncio.create_task(self._report_progress(spec), name=f"progress {spec.task_id}")
        try:
            images, parameters, interrupted = await self._generate(request)
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        self.info.tasks_done += 1
        return TaskResult(
            task_id=spec.task_id,
            job_id=spec.job_id,
            worker=self.info.name,
            images=images,
            seeds=[image.seed for image in images],
            parameters=parameters,
            checkpoint=self.info.loaded_checkpoint,
            interrupted=interrupted,
            started_ms=started,
            finished_ms=now_ms(),
        )

    async def _generate(
        self, request: Txt2ImgRequest | Img2ImgRequest | UpscaleRequest
    ) -> tuple[list[ImageOut], dict[str, object], bool]:
        if isinstance(request, UpscaleRequest):
            extras = await self.webui.extra_single_image(payloads.extras_payload(request))
            image = payloads.upscaled_image(request, extras)
            return [image], {"upscaler": request.upscaler, "scale": request.scale}, False
        if isinstance(request, Txt2ImgRequest):
            response = await self.webui.txt2img(payloads.txt2img_payload(request))
        else:
            response = await self.webui.img2img(payloads.img2img_payload(request))
        images = payloads.generated_images(response)
        if not images:
            raise TaskFailed("the WebUI returned no images", FailureCode.MALFORMED_RESPONSE)
        parameters = response.info.model_dump(
            include={"prompt", "negative_prompt", "seed", "sampler_name", "cfg_scale", "steps", "width", "height",
                     "sd_model_name", "sd_model_hash", "denoising_strength", "version"}
        )
        interrupted = len(images) < request.batch_size
        return images, parameters, interrupted

    async def _ensure_checkpoint(self, spec: TaskSpec, query: str) -> None:
        checkpoint = self.info.find_checkpoint(query)
        if checkpoint is None:
            raise CheckpointMissing(f"worker {self.info.name} does not have checkpoint '{query}'")
        if self.info.loaded_checkpoint == checkpoint.title:
            return
        await self._set_state(WorkerState.SWITCHING, spec.task_id)
        await self._publish(spec, EventType.SWITCHING, message=f"loading {checkpoint.model_name}")
        await self.webui.set_checkpoint(checkpoint.title)
        self.info.loaded_checkpoint = checkpoint.title
        await self._set_state(WorkerState.BUSY, spec.task_id)

    async def _report_progress(self, spec: TaskSpec) -> None:
        """Poll the WebUI's (global) progress while this worker's one generation runs and publish it."""
        last: tuple[int, int] | None = None
        while True:
            await asyncio.sleep(self.progress_interval_s)
            try:
                progress = await self.webui.progress()
            except WebUIError as exc:  # progress is best effort; the generation call reports real failures
                log.debug("progress poll failed: %s", exc)
                continue
            if not progress.active:
                continue
            state = progress.state
            now = (state.job_no, state.sampling_step)
            if now == last:
                continue
            last = now
            await self._publish(
                spec,
                EventType.PROGRESS,
                step=state.sampling_step,
                steps=state.sampling_steps,
                progress=round(progress.progress, 4),
                eta_s=round(progress.eta_relative, 2),
                preview=shrink_preview(progress.current_image),
            )

    async def _publish(self, spec: TaskSpec, type_: EventType, **fields: object) -> None:
        event = TaskEvent(type=type_, task_id=spec.task_id, job_id=spec.job_id, worker=self.info.name, **fields)
        await self.events.publish(event)

    async def _set_state(self, state: WorkerState, task_id: str | None) -> None:
        self.info.state, self.info.current_task = state, task_id
        if self._on_state is not None:
            await self._on_state()


def shrink_preview(data: bytes | None) -> bytes | None:
    """A small JPEG of a progress preview, or None if there is none or it cannot be read."""
    if not data:
        return None
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
            out = io.BytesIO()
            img.convert("RGB").save(out, format="JPEG", quality=70)
            return out.getvalue()
    except (OSError, ValueError):
        return None
