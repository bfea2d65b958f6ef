"""Fair order and task cost.

Fair order is start-time fair queueing over *virtual time*: each owner has a clock; their next task starts at
``max(queue clock, owner clock)`` and advances the owner clock by the task's estimated cost. So a user's n-th queued
task lands after everyone else's earlier ones, whatever the arrival order. The queue clock follows the virtual start
of the latest task to start. A priority class gives a head start (seconds of virtual time); ``aging_rate`` makes
waiting count too, so a low-priority task is passed by boosted newcomers for at most ``boost / aging_rate``.
The fair key (score in the ``waiting`` and lane sorted sets) is
``vstart + aging_rate * (enqueue_ms - EPOCH_MS) - boost_ms``; it is computed in ``lua/enqueue.lua``.

Task cost is *work* (steps x megapixels x images, or output megapixels for upscales) times a measured
seconds-per-work moving average (per worker, per checkpoint, overall), kept in :class:`Speeds`.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from common.models import GenerationRequest, Img2ImgRequest, UpscaleRequest, WorkflowRequest
from common.queue.keys import Keys
from common.queue.models import TaskMeta

EPOCH_MS = 1_767_225_600_000  # 2026-01-01: keeps fair keys small
EMA_ALPHA = 0.3
DEFAULT_S_PER_WORK = 0.25  # a guess (about 5 s for 20 steps at 512x512) until a worker has measured
DEFAULT_LOAD_S = 5.0


def work_of(request: GenerationRequest) -> float:
    """Units of GPU work in a request, so that speeds measured on one size apply to another."""
    if isinstance(request, UpscaleRequest):
        return 1.0 + request.scale**2  # output megapixels grow with the square of the scale
    if isinstance(request, WorkflowRequest):
        return request.definition.work  # as its admin declared (a graph's cost cannot be read off it)
    megapixels = request.width * request.height / 2**20
    steps = float(request.steps)
    if request.hires is not None:
        steps += (request.hires.second_pass_steps or request.steps) * request.hires.scale**2
    if isinstance(request, Img2ImgRequest):
        steps = max(1.0, steps * request.denoising_strength)  # img2img runs only the denoised share of the steps
    return steps * megapixels * request.batch_size


class Speeds:
    """Moving averages of seconds per unit of work and of checkpoint load time, shared in Redis."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._key = keys.speeds

    async def record(self, *, worker: str, kind: str, checkpoint: str | None, work: float, seconds: float) -> None:
        if work <= 0 or seconds <= 0:
            return
        rate = seconds / work
        fields = [f"{kind}", f"{kind}:w:{worker}"] + ([f"{kind}:c:{checkpoint}"] if checkpoint else [])
        await self._update(fields, rate)

    async def record_load(self, *, checkpoint: str, seconds: float) -> None:
        await self._update(["load", f"load:{checkpoint}"], seconds)

    async def _update(self, fields: list[str], value: float) -> None:
        old = await self._redis.hmget(self._key, fields)  # type: ignore[misc]
        new = {
            field: value if before is None else (1 - EMA_ALPHA) * float(before) + EMA_ALPHA * value
            for field, before in zip(fields, old, strict=True)
        }
        await self._redis.hset(self._key, mapping=new)  # type: ignore[misc]

    async def snapshot(self) -> SpeedTable:
        raw = await self._redis.hgetall(self._key)  # type: ignore[misc]
        return SpeedTable({k.decode(): float(v) for k, v in raw.items()})


@dataclass
class SpeedTable:
    values: dict[str, float]

    def seconds(self, meta: TaskMeta, worker: str | None = None) -> float:
        for field in (f"{meta.kind}:w:{worker}", f"{meta.kind}:c:{meta.checkpoint}", meta.kind):
            if field in self.values:
                return self.values[field] * meta.work
        return DEFAULT_S_PER_WORK * meta.work

    def load_seconds(self, checkpoint: str | None) -> float:
        return self.values.get(f"load:{checkpoint}", self.values.get("load", DEFAULT_LOAD_S))


