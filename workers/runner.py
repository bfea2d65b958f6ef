"""Run one task on this worker's WebUI: load its checkpoint, generate, report progress, build the result.

Cancelling interrupts the WebUI (A1111 then answers with what it made so far) and the task ends as cancelled.
Out of memory on a batch is retried once as two half batches (same seeds), then fails with the backend's words.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from PIL import Image
from redis.asyncio import Redis

from common.errors import FailureCode, TaskFailed
from common.events import EventStream, EventType, TaskEvent
from common.keys import Keys
from common.models import Img2ImgRequest, Txt2ImgRequest, UpscaleRequest
from common.registry import WorkerInfo, WorkerState
from common.scheduling import Speeds, work_of
from common.tasks import ImageOut, TaskResult, TaskSpec, now_ms
from workers import payloads
from workers.webui.client import WebUIClient
from workers.webui.errors import OutOfMemory, WebUIError
from workers.webui.models import GenerationResponse

log = logging.getLogger(__name__)

PREVIEW_SIDE = 256  # progress previews are shrunk to this, so the event stream stays small


class CheckpointMissing(Exception):
    """This worker's WebUI does not have the task's checkpoint (another worker may)."""


class TaskRunner:
    """Turns a :class:`TaskSpec` into WebUI calls. One per worker; runs one task at a time."""

    def __init__(
        self,
        webui: WebUIClient,
        redis: Redis,
        keys: Keys,
        info: WorkerInfo,
        *,
        progress_interval_s: float = 0.5,
        on_state: Callable[[], Awaitable[None]] | None = None,
        events_maxlen: int = 100_000,
    ) -> None:
        self.webui = webui
        self.redis = redis
        self.keys = keys
        self.events = EventStream(redis, keys, maxlen=events_maxlen)
        self.speeds = Speeds(redis, keys)
        self.info = info
        self.progress_interval_s = progress_interval_s
        self._on_state = on_state
        self._cancelled: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()

    async def run(self, spec: TaskSpec) -> TaskResult:
        started = now_ms()
        self.info.task_started_ms = started
        _, _, cancelled = await asyncio.gather(
            self._set_state(WorkerState.BUSY, spec.task_id),
            self._publish(spec, EventType.STARTED, position=0),
            self.redis.exists(self.keys.cancel(spec.task_id)),
        )
        if cancelled:
            self._cancelled.add(spec.task_id)  # cancelled between the claim and now
        self._raise_if_cancelled(spec)
        request = spec.request
        if not isinstance(request, UpscaleRequest) and request.checkpoint is not None:
            await self._ensure_checkpoint(spec, request.checkpoint)
        poller = asyncio.create_task(self._watch(spec), name=f"progress {spec.task_id}")
        began = time.monotonic()
        try:
            images, parameters = await self._generate(request)
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        self._raise_if_cancelled(spec)
        self._in_background(self._record_speed(request, time.monotonic() - began))  # off the GPU's critical path
        self.info.tasks_done += 1
        return TaskResult(
            task_id=spec.task_id, job_id=spec.job_id, worker=self.info.name, images=images,
            seeds=[image.seed for image in images], parameters=parameters, checkpoint=self.info.loaded_checkpoint,
            submitted_ms=spec.submitted_ms, started_ms=started, finished_ms=now_ms(),
        )

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)  # keep a reference until it is done
        task.add_done_callback(self._background.discard)

    async def cancel(self, task_id: str) -> None:
        """Interrupt ``task_id`` if it is the one running here."""
        if self.info.current_task != task_id:
            return
        self._cancelled.add(task_id)
        with contextlib.suppress(WebUIError):
            await self.webui.interrupt()

    async def interrupt_quietly(self) -> None:
        """Stop whatever the WebUI is doing (the task was abandoned: shutdown or lost lease)."""
        with contextlib.suppress(WebUIError):
            await self.webui.interrupt()

    def _raise_if_cancelled(self, spec: TaskSpec) -> None:
        if spec.task_id in self._cancelled:
            self._cancelled.discard(spec.task_id)
            raise TaskFailed("cancelled while running", FailureCode.CANCELLED)

    async def _generate(
        self, request: Txt2ImgRequest | Img2ImgRequest | UpscaleRequest
    ) -> tuple[list[ImageOut], dict[str, object]]:
        if isinstance(request, UpscaleRequest):
            extras = await self.webui.extra_single_image(payloads.extras_payload(request))
            return [payloads.upscaled_image(request, extras)], {"upscaler": request.upscaler, "scale": request.scale}
        responses = await self._batches(request)
        images = [image for response in responses for image in payloads.generated_images(response)]
        if not images:
            raise TaskFailed("the WebUI returned no images", FailureCode.MALFORMED_RESPONSE)
        parameters = responses[0].info.model_dump(
            include={"prompt", "negative_prompt", "seed", "sampler_name", "cfg_scale", "steps", "width", "height",
                     "sd_model_name", "sd_model_hash", "denoising_strength", "version"}
        )
        return images, parameters

    async def _batches(self, request: Txt2ImgRequest | Img2ImgRequest) -> list[GenerationResponse]:
        """One call; on out-of-memory with more than one image, once more as two halves (seed, seed + half)."""
        try:
            return [await self._call(request, request.batch_size)]
        except OutOfMemory:
            if request.batch_size == 1:
                raise
        half = request.batch_size // 2
        log.warning("out of memory with a batch of %d: trying %d + %d", request.batch_size, half,
                    request.batch_size - half)
        first = await self._call(request, half)
        rest = request.model_copy(update={"seed": request.seed + half})
        return [first, await self._call(rest, request.batch_size - half)]

    async def _call(self, request: Txt2ImgRequest | Img2ImgRequest, batch_size: int) -> GenerationResponse:
        if isinstance(request, Txt2ImgRequest):
            return await self.webui.txt2img(payloads.txt2img_payload(request, batch_size=batch_size))
        return await self.webui.img2img(payloads.img2img_payload(request, batch_size=batch_size))

    async def _ensure_checkpoint(self, spec: TaskSpec, query: str) -> None:
        checkpoint = self.info.find_checkpoint(query)
        if checkpoint is None:
            raise CheckpointMissing(f"worker {self.info.name} does not have checkpoint '{query}'")
        if self.info.loaded_checkpoint == checkpoint.title:
            return
        await self._set_state(WorkerState.SWITCHING, spec.task_id)
        await self._publish(spec, EventType.SWITCHING, message=f"loading {checkpoint.model_name}")
        began = time.monotonic()
        await self.webui.set_checkpoint(checkpoint.title)
        self.info.loaded_checkpoint = checkpoint.title
        self.info.checkpoint_loads += 1
        await self.speeds.record_load(checkpoint=checkpoint.title, seconds=time.monotonic() - began)
        await self._set_state(WorkerState.BUSY, spec.task_id)

    async def _record_speed(self, request: Txt2ImgRequest | Img2ImgRequest | UpscaleRequest, seconds: float) -> None:
        work = work_of(request)
        checkpoint = None if isinstance(request, UpscaleRequest) else self.info.loaded_checkpoint
        await self.speeds.record(worker=self.info.name, kind=request.kind, checkpoint=checkpoint, work=work,
                                 seconds=seconds)
        rate = seconds / work
        old = self.info.seconds_per_work
        self.info.seconds_per_work = rate if old is None else 0.7 * old + 0.3 * rate

    async def _watch(self, spec: TaskSpec) -> None:
        """While the generation runs: publish progress, and notice a cancel whose pub/sub message was missed."""
        last: tuple[int, int] | None = None
        while True:
            await asyncio.sleep(self.progress_interval_s)
            if spec.task_id not in self._cancelled and await self.redis.exists(self.keys.cancel(spec.task_id)):
                await self.cancel(spec.task_id)
            try:
                progress = await self.webui.progress()
            except WebUIError as exc:  # progress is best effort; the generation call reports real failures
                log.debug("progress poll failed: %s", exc)
                continue
            state = progress.state
            if not progress.active or (state.job_no, state.sampling_step) == last:
                continue
            last = (state.job_no, state.sampling_step)
            await self._publish(
                spec, EventType.PROGRESS, step=state.sampling_step, steps=state.sampling_steps,
                progress=round(progress.progress, 4), eta_s=round(progress.eta_relative, 2),
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
