"""Run one task on this worker's backend: load its checkpoint, generate, report progress, build the result.

The runner knows nothing of the server's API: it drives a :class:`~workers.backends.base.Backend` (A1111 family or
ComfyUI). Cancelling interrupts exactly this task on the backend and the task ends as cancelled. Out of memory on a
batch is retried once as two half batches (same seeds), then fails with the backend's words. A generation whose
progress does not move for ``stall_s`` is interrupted and reported as :class:`BackendStalled` (the worker hands it
back), instead of waiting for the read timeout. Progress, previews and speeds are best effort: a Redis outage while
a generation runs costs some progress events, never the generation.
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

from common.errors import FailureCode, TaskFailed
from common.events import EventType, TaskEvent
from common.models import UpscaleRequest, WorkflowRequest
from common.outage import bounded, is_outage
from common.queue.fairness import work_of
from common.registry import WorkerInfo, WorkerState
from common.tasks import TaskResult, TaskSpec, now_ms
from workers.backends.base import Backend, Generated, GenerationTask, Progress
from workers.backends.errors import BackendError, BackendServerError, BackendTimeout, Interrupted, OutOfMemory
from workers.source import TaskSource

log = logging.getLogger(__name__)

PREVIEW_SIDE = 256  # progress previews are shrunk to this


class CheckpointMissing(Exception):
    """This worker's server does not have the task's checkpoint (another worker may)."""


class BackendStalled(BackendTimeout):
    """The generation made no progress for ``stall_s``; it was interrupted."""


class _Latest:
    """The backend's progress reports: each is published at once unless one went out less than ``interval_s`` ago;
    the watcher flushes the held-back last one, so fast steps cost at most one event per interval."""

    def __init__(self, publish: Callable[[Progress], Awaitable[None]], interval_s: float) -> None:
        self._publish, self._interval_s = publish, interval_s
        self.progress: Progress | None = None
        self.moved = time.monotonic()
        self._published: Progress | None = None
        self._published_at = 0.0

    async def update(self, progress: Progress) -> None:
        self.progress, self.moved = progress, time.monotonic()
        if self.moved - self._published_at >= self._interval_s:
            await self.flush()

    async def flush(self) -> None:
        progress = self.progress
        if progress is None or progress is self._published:
            return
        self._published, self._published_at = progress, time.monotonic()
        await self._publish(progress)


class TaskRunner:
    """Turns a :class:`TaskSpec` into backend calls. One per worker; runs one task at a time."""

    def __init__(
        self,
        backend: Backend,
        source: TaskSource,
        info: WorkerInfo,
        *,
        progress_interval_s: float = 0.5,
        stall_s: float = 120.0,
        on_state: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.backend = backend
        self.source = source
        self.info = info
        self.progress_interval_s = progress_interval_s
        self.stall_s = stall_s
        self._on_state = on_state
        self._cancelled: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._announcing: asyncio.Task[None] | None = None

    async def run(self, spec: TaskSpec, *, cancel_requested: bool = False) -> TaskResult:
        """Run ``spec``; ``cancel_requested``: it was cancelled between the claim and now."""
        started = now_ms()
        self.info.task_started_ms = started
        self.info.state, self.info.current_task = WorkerState.BUSY, spec.task_id
        # The heartbeat and the `started` event go out beside the generation, not before it (a millisecond or two
        # of GPU time per task); every later event of the task waits for them, so `started` still comes first.
        self._announcing = asyncio.create_task(self._announce(spec), name=f"announce {spec.task_id}")
        try:
            generated = await self._start_and_generate(spec, cancel_requested)
        finally:
            await asyncio.shield(self._announcing)
        self.info.tasks_done += 1
        images = generated.images
        return TaskResult(
            task_id=spec.task_id, job_id=spec.job_id, worker=self.info.name, images=images,
            seeds=[image.seed for image in images], parameters=generated.parameters,
            checkpoint=generated.checkpoint or self.info.loaded_checkpoint,
            submitted_ms=spec.submitted_ms, started_ms=started, finished_ms=now_ms(),
        )

    async def _announce(self, spec: TaskSpec) -> None:
        await asyncio.gather(self._on_state_quietly(), self._publish(spec, EventType.STARTED, position=0))

    async def _start_and_generate(self, spec: TaskSpec, cancel_requested: bool) -> Generated:
        if cancel_requested:
            self._cancelled.add(spec.task_id)
        self._raise_if_cancelled(spec)
        request = spec.request
        checkpoint = None if isinstance(request, UpscaleRequest) else request.checkpoint
        if checkpoint is not None:
            await self._ensure_checkpoint(spec, checkpoint)
            self._raise_if_cancelled(spec)  # cancelled while the checkpoint loaded: the backend had nothing to stop
        began = time.monotonic()
        generated = await self._generate_watched(spec)
        self._raise_if_cancelled(spec)
        self._in_background(self._record_speed(request, time.monotonic() - began))  # off the GPU's critical path
        return generated

    async def cancel(self, task_id: str) -> None:
        """Interrupt ``task_id`` if it is the one running here."""
        if self.info.current_task != task_id:
            return
        self._cancelled.add(task_id)
        with contextlib.suppress(BackendError):
            await self.backend.interrupt(task_id)

    async def interrupt_quietly(self) -> None:
        """Stop the running task on the backend (it was abandoned: shutdown, lost lease, timeout)."""
        if self.info.current_task is None:
            return
        with contextlib.suppress(BackendError):
            await self.backend.interrupt(self.info.current_task)

    def _raise_if_cancelled(self, spec: TaskSpec) -> None:
        if spec.task_id in self._cancelled:
            self._cancelled.discard(spec.task_id)
            raise TaskFailed("cancelled while running", FailureCode.CANCELLED)

    # --- generating, watched ---------------------------------------------------------------------------

    async def _generate_watched(self, spec: TaskSpec) -> Generated:
        """The generation, with a watcher beside it that reports progress and ends it if it stalls."""
        latest = _Latest(lambda progress: self._report(spec, progress), self.progress_interval_s)
        generation = asyncio.create_task(self._generate(spec, latest), name=f"generate {spec.task_id}")
        watcher = asyncio.create_task(self._watch(spec, latest), name=f"progress {spec.task_id}")
        try:
            await asyncio.wait({generation, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (generation, watcher):
                if not task.done():
                    task.cancel()
            await asyncio.gather(generation, watcher, return_exceptions=True)
        if not generation.cancelled():
            return generation.result()
        watcher.result()  # the watcher ended the generation: it stalled (or the watcher itself failed)
        with contextlib.suppress(BackendError):
            await self.backend.interrupt(spec.task_id)
        raise BackendStalled(
            f"the {self.backend.flavour.value} server at {self.backend.base_url} made no progress for "
            f"{self.stall_s:.0f}s (EASEL_STALL_S); the generation was interrupted"
        )

    async def _watch(self, spec: TaskSpec, latest: _Latest) -> None:
        """Flush held-back progress; notice a cancel whose message was missed; return when progress stalls."""
        while time.monotonic() - latest.moved < self.stall_s:
            await asyncio.sleep(self.progress_interval_s)
            if spec.task_id not in self._cancelled and await self._quietly(self.source.cancel_requested(spec.task_id)):
                await self.cancel(spec.task_id)
            await latest.flush()

    async def _report(self, spec: TaskSpec, progress: Progress) -> None:
        preview = shrink_preview(progress.preview)
        if preview is not None:
            await self._quietly(self.source.set_preview(spec.task_id, preview))
        await self._publish(
            spec, EventType.PROGRESS, step=progress.step, steps=progress.steps, progress=round(progress.fraction, 4),
            eta_s=round(progress.eta_s, 2) if progress.eta_s is not None else None,
            has_preview=preview is not None or None,
        )

    async def _generate(self, spec: TaskSpec, latest: _Latest) -> Generated:
        """One call; on out-of-memory with more than one image, once more as two halves (seed, seed + half)."""
        request = spec.request
        try:
            return await self._call(spec, request, latest)
        except OutOfMemory:
            if isinstance(request, UpscaleRequest | WorkflowRequest) or request.batch_size == 1:
                raise
        half = request.batch_size // 2
        log.warning("out of memory with a batch of %d: trying %d + %d", request.batch_size, half,
                    request.batch_size - half)
        first = await self._call(spec, request.model_copy(update={"batch_size": half}), latest)
        rest = request.model_copy(update={"seed": request.seed + half, "batch_size": request.batch_size - half})
        second = await self._call(spec, rest, latest)
        return Generated(first.images + second.images, first.parameters, first.checkpoint)

    async def _call(self, spec: TaskSpec, request: GenerationTask, latest: _Latest) -> Generated:
        try:
            generated = await self.backend.generate(request, task_id=spec.task_id, on_progress=latest.update)
        except Interrupted as exc:
            self._raise_if_cancelled(spec)  # ours: the task ends as cancelled
            raise BackendServerError(f"{exc} (by someone on the server)") from exc
        if not generated.images:
            raise TaskFailed("the server returned no images", FailureCode.MALFORMED_RESPONSE)
        return generated

    # --- checkpoint, speed, events -------------------------------------------------------------------------

    async def _ensure_checkpoint(self, spec: TaskSpec, query: str) -> None:
        checkpoint = self.info.find_checkpoint(query)
        if checkpoint is None:
            raise CheckpointMissing(f"worker {self.info.name} does not have checkpoint '{query}'")
        if self.info.loaded_checkpoint == checkpoint.title:
            return
        await self._set_state(WorkerState.SWITCHING, spec.task_id)
        await self._publish(spec, EventType.SWITCHING, message=f"loading {checkpoint.model_name}")
        began = time.monotonic()
        await self.backend.load_checkpoint(checkpoint)
        self.info.loaded_checkpoint = checkpoint.title
        self.info.checkpoint_loads += 1
        self._in_background(self._quietly(self.source.record_load(checkpoint=checkpoint.title,
                                                                  seconds=time.monotonic() - began)))
        await self._set_state(WorkerState.BUSY, spec.task_id)

    async def _record_speed(self, request: GenerationTask, seconds: float) -> None:
        work = work_of(request)
        checkpoint = None if isinstance(request, UpscaleRequest) else self.info.loaded_checkpoint
        await self._quietly(self.source.record_speed(kind=request.kind, checkpoint=checkpoint, work=work,
                                                     seconds=seconds))
        rate = seconds / work
        old = self.info.seconds_per_work
        self.info.seconds_per_work = rate if old is None else 0.7 * old + 0.3 * rate

    def _in_background(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)  # keep a reference until it is done
        task.add_done_callback(self._background.discard)

    async def _publish(self, spec: TaskSpec, type_: EventType, **fields: object) -> None:
        event = TaskEvent(type=type_, task_id=spec.task_id, job_id=spec.job_id, worker=self.info.name, **fields)
        if type_ != EventType.STARTED:
            await self._announced()
        await self._quietly(self.source.publish(event))

    async def _set_state(self, state: WorkerState, task_id: str | None) -> None:
        self.info.state, self.info.current_task = state, task_id
        await self._announced()
        await self._on_state_quietly()

    async def _on_state_quietly(self) -> None:
        if self._on_state is not None:
            await self._quietly(self._on_state())

    async def _announced(self) -> None:
        """Wait until the running task's heartbeat and ``started`` event are out (they must precede the rest)."""
        announcing = self._announcing
        if announcing is not None and announcing is not asyncio.current_task():
            await asyncio.shield(announcing)

    @staticmethod
    async def _quietly(work: Awaitable[Any]) -> Any:
        """Best-effort Redis work while a generation runs: an outage must not stop the generation."""
        try:
            return await bounded(work)
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.debug("skipped while Redis is unreachable: %s", exc)
            return None


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
