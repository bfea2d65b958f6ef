"""The front ends' side of the queue: submit jobs, ask for positions, fetch results.

This is the one public enqueue path: the CLI, the demo and the Discord bot all call :meth:`EaselClient.submit`.
A job's tasks go to arq (JSON payloads, see :mod:`common.serialization`); a ``queued`` event is published for each.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.jobs import Job, JobStatus

from common import serialization
from common.availability import check_servable
from common.errors import InvalidRequest, TaskFailed
from common.events import EventStream, EventType, TaskEvent
from common.keys import ARQ_IN_PROGRESS_PREFIX, TASK_FUNCTION, Keys
from common.limits import SEED_MAX, Limits
from common.models import GenerationRequest, UpscaleRequest
from common.registry import Registry
from common.settings import Settings
from common.tasks import JobRecord, Origin, TaskResult, TaskSpec, new_job_id, task_id_for


async def connect_redis(settings: Settings) -> ArqRedis:
    """An arq pool with Easel's JSON serializer and the deployment's queue name."""
    return await create_pool(
        RedisSettings.from_dsn(settings.require_redis_url()),
        job_serializer=serialization.serialize,
        job_deserializer=serialization.deserialize,
        default_queue_name=Keys(settings.redis_prefix).queue,
    )


def resolve_seed(request: GenerationRequest) -> GenerationRequest:
    """Pick the random seed now, so a retried or re-delivered task makes the same images."""
    if isinstance(request, UpscaleRequest) or request.seed != -1:
        return request
    return request.model_copy(update={"seed": random.randrange(SEED_MAX)})


class EaselClient:
    """Submit and follow jobs. Holds no state besides its Redis pool; many front ends may share a deployment."""

    def __init__(self, redis: ArqRedis, settings: Settings) -> None:
        self.redis = redis
        self.keys = Keys(settings.redis_prefix)
        self.limits: Limits = settings.limits()
        self.events = EventStream(redis, self.keys, maxlen=settings.events_maxlen)
        self.registry = Registry(redis, self.keys, ttl_s=settings.worker_ttl_s)
        self._settings = settings

    @classmethod
    @asynccontextmanager
    async def connect(cls, settings: Settings) -> AsyncIterator[EaselClient]:
        redis = await connect_redis(settings)
        try:
            yield cls(redis, settings)
        finally:
            await redis.aclose()

    async def submit(
        self,
        owner: str,
        origin: Origin,
        requests: Sequence[GenerationRequest],
        labels: Sequence[str] | None = None,
    ) -> JobRecord:
        """Validate ``requests`` against the limits and the live workers, then queue them as one job.

        Raises :class:`InvalidRequest` (too many tasks) or :class:`NotAvailable` (nothing can serve them) before
        anything is written.
        """
        if not requests:
            raise InvalidRequest(["a job needs at least one task"])
        if len(requests) > self.limits.max_sweep_tasks:
            raise InvalidRequest(
                [f"the job has {len(requests)} tasks; the limit is {self.limits.max_sweep_tasks}"]
            )
        check_servable(requests, await self.registry.live())
        job_id = new_job_id()
        labels = list(labels) if labels is not None else [""] * len(requests)
        specs = [
            TaskSpec(
                task_id=task_id_for(job_id, index),
                job_id=job_id,
                index=index,
                owner=owner,
                label=labels[index],
                request=resolve_seed(request),
            )
            for index, request in enumerate(requests)
        ]
        record = JobRecord(
            job_id=job_id, owner=owner, origin=origin, task_ids=[s.task_id for s in specs], labels=labels
        )
        await self.redis.set(self.keys.job(job_id), record.model_dump_json(), ex=self._settings.result_ttl_s)
        for spec in specs:
            await self.redis.enqueue_job(
                TASK_FUNCTION,
                spec.model_dump(mode="json"),
                _job_id=spec.task_id,
                _queue_name=self.keys.queue,
                _expires=self._settings.result_ttl_s,
            )
        positions = await self.positions(record.task_ids)
        for spec in specs:
            await self.events.publish(
                TaskEvent(
                    type=EventType.QUEUED, task_id=spec.task_id, job_id=job_id, position=positions.get(spec.task_id)
                )
            )
        return record

    async def job(self, job_id: str) -> JobRecord | None:
        raw = await self.redis.get(self.keys.job(job_id))
        return JobRecord.model_validate_json(raw) if raw else None

    async def positions(self, task_ids: Sequence[str]) -> dict[str, int | None]:
        """Place in line of each task: 0 running, 1 next, ...; None once it left the queue (done or unknown)."""
        entries = await self.redis.zrange(self.keys.queue, 0, -1)
        queued = [e.decode() for e in entries]
        async with self.redis.pipeline(transaction=False) as pipe:
            for task_id in queued:
                pipe.exists(ARQ_IN_PROGRESS_PREFIX + task_id)
            running = [bool(flag) for flag in await pipe.execute()]
        place: dict[str, int] = {}
        waiting = 0
        for task_id, is_running in zip(queued, running, strict=True):
            if is_running:
                place[task_id] = 0
            else:
                waiting += 1
                place[task_id] = waiting
        return {task_id: place.get(task_id) for task_id in task_ids}

    async def queue_depth(self) -> int:
        return int(await self.redis.zcard(self.keys.queue))

    async def result(self, task_id: str) -> TaskResult | None:
        """The task's result if it has finished, None while it is queued or running.

        Raises :class:`TaskFailed` with the worker's reason when it failed.
        """
        job = Job(task_id, self.redis, _queue_name=self.keys.queue, _deserializer=serialization.deserialize)
        info = await job.result_info()
        if info is None:
            if await job.status() == JobStatus.not_found:
                raise TaskFailed(f"task {task_id} is unknown or its result has expired")
            return None
        if info.success:
            return TaskResult.model_validate(info.result)
        if isinstance(info.result, TaskFailed):
            raise info.result
        raise TaskFailed(str(info.result))
