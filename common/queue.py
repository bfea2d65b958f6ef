"""The front ends' side of the queue: submit jobs, ask for positions and ETAs, cancel, fetch results.

This is the one public enqueue path: the CLI, the demo and the Discord bot all call :meth:`EaselClient.submit`.
A job's tasks are written atomically (one Lua script: arq payloads, the queue, the fair order, the per-user limit),
idle workers are woken through pub/sub, and a ``queued`` event is published for each task.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from enum import StrEnum
from typing import Any

from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus, serialize_job, serialize_result

from common import serialization
from common.availability import check_servable
from common.connection import open_redis
from common.errors import FailureCode, InvalidRequest, TaskFailed
from common.events import EventStream, EventType, TaskEvent
from common.keys import (
    ARQ_IN_PROGRESS_PREFIX,
    ARQ_JOB_PREFIX,
    ARQ_RESULT_PREFIX,
    ARQ_RETRY_PREFIX,
    TASK_FUNCTION,
    Keys,
)
from common.limits import SEED_MAX, Limits
from common.models import GenerationRequest, UpscaleRequest
from common.registry import Registry
from common.scheduling import EPOCH_MS, Estimate, QueuedTask, Speeds, TaskMeta, estimate, work_of
from common.scripts import CANDIDATE_FIELDS, Scripts, text
from common.settings import Settings
from common.tasks import JobRecord, Origin, TaskResult, TaskSpec, new_job_id, now_ms, task_id_for


async def connect_redis(settings: Settings) -> ArqRedis:
    """An arq pool with Easel's JSON serializer and the deployment's queue name."""
    return await open_redis(settings)


def resolve_seed(request: GenerationRequest) -> GenerationRequest:
    """Pick the random seed now, so a retried or re-delivered task makes the same images."""
    if isinstance(request, UpscaleRequest) or request.seed != -1:
        return request
    return request.model_copy(update={"seed": random.randrange(SEED_MAX)})


class TaskState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # includes cancelled (see the failure's code)
    MISSING = "missing"  # neither queued nor finished: the queue lost it, or its result expired


class CancelOutcome(StrEnum):
    REMOVED = "removed"  # was queued; will never run
    INTERRUPTING = "running"  # its worker was told to interrupt it
    GONE = "gone"  # already finished (or unknown)


class EaselClient:
    """Submit and follow jobs. Holds no state besides its Redis pool; many front ends may share a deployment."""

    def __init__(self, redis: ArqRedis, settings: Settings) -> None:
        self.redis = redis
        self.keys = Keys(settings.redis_prefix)
        self.limits: Limits = settings.limits()
        self.events = EventStream(redis, self.keys, maxlen=settings.events_maxlen)
        self.registry = Registry(redis, self.keys, ttl_s=settings.worker_ttl_s)
        self.speeds = Speeds(redis, self.keys)
        self.scripts = Scripts(redis)
        self._settings = settings

    @classmethod
    @asynccontextmanager
    async def connect(cls, settings: Settings) -> AsyncIterator[EaselClient]:
        redis = await connect_redis(settings)
        try:
            yield cls(redis, settings)
        finally:
            await redis.aclose()

    # --- submitting ----------------------------------------------------------------------------------------

    async def submit(
        self,
        owner: str,
        origin: Origin,
        requests: Sequence[GenerationRequest],
        labels: Sequence[str] | None = None,
        *,
        priority: str = "default",
        job_id: str | None = None,
    ) -> JobRecord:
        """Validate ``requests`` against the limits and the live workers, then queue them as one job.

        Raises :class:`InvalidRequest` (too many tasks, over the per-user limit, unknown priority class) or
        :class:`NotAvailable` (nothing can serve them) before anything is written.
        """
        settings = self._settings
        if not requests:
            raise InvalidRequest(["a job needs at least one task"])
        if len(requests) > self.limits.max_sweep_tasks:
            raise InvalidRequest([f"the job has {len(requests)} tasks; the limit is {self.limits.max_sweep_tasks}"])
        if priority not in settings.priority_classes:
            known = ", ".join(settings.priority_classes)
            raise InvalidRequest([f"priority: unknown class '{priority}'; known: {known}"])
        check_servable(requests, await self.registry.live())
        job_id = job_id or new_job_id()
        labels = list(labels) if labels is not None else [""] * len(requests)
        specs = [
            TaskSpec(task_id=task_id_for(job_id, i), job_id=job_id, index=i, owner=owner, label=labels[i],
                     request=resolve_seed(request))
            for i, request in enumerate(requests)
        ]
        record = JobRecord(job_id=job_id, owner=owner, origin=origin, task_ids=[s.task_id for s in specs],
                           labels=labels)
        await self._enqueue(record, specs, priority)
        positions = await self.positions(record.task_ids)
        for spec in specs:
            await self.events.publish(TaskEvent(type=EventType.QUEUED, task_id=spec.task_id, job_id=job_id,
                                                position=positions.get(spec.task_id)))
        return record

    async def requeue(self, record: JobRecord, specs: list[TaskSpec], priority: str = "default") -> None:
        """Put tasks that the queue lost (e.g. Redis was reset) back, under their own ids."""
        await self._enqueue(record, specs, priority)

    async def _enqueue(self, record: JobRecord, specs: list[TaskSpec], priority: str) -> None:
        settings, now = self._settings, now_ms()
        speeds = await self.speeds.snapshot()
        args: list[Any] = [
            record.owner, now, settings.max_queued_per_user, settings.aging_rate,
            settings.priority_classes[priority] * 1000, EPOCH_MS, int(settings.result_ttl_s * 1000), self.keys.wake,
        ]
        for spec in specs:
            request = spec.request
            meta = TaskMeta(
                task_id=spec.task_id, job_id=spec.job_id, owner=spec.owner, kind=request.kind,
                checkpoint=None if isinstance(request, UpscaleRequest) else request.checkpoint,
                enqueue_ms=now, work=work_of(request), priority=priority,
            )
            job = serialize_job(TASK_FUNCTION, (spec.model_dump(mode="json"),), {}, None, now,
                                serializer=serialization.serialize)
            args += [spec.task_id, speeds.seconds(meta) * 1000, job, meta.model_dump_json()]
        keys = [self.keys.order, self.keys.meta, self.keys.user_clocks, self.keys.vclock,
                self.keys.user_tasks(record.owner), self.keys.queue,
                *(ARQ_JOB_PREFIX + spec.task_id for spec in specs)]
        await self.redis.set(self.keys.job(record.job_id), record.model_dump_json(), ex=settings.result_ttl_s)
        status, queued = await self.scripts.enqueue(keys=keys, args=args)
        if int(status) < 0:
            limit = settings.max_queued_per_user
            await self.redis.delete(self.keys.job(record.job_id))
            raise InvalidRequest([
                f"you have {queued} tasks queued, the limit is {limit}: "
                f"this job would add {len(specs)}; wait for some to finish or cancel some"
            ])

    # --- reading -------------------------------------------------------------------------------------------

    async def job(self, job_id: str) -> JobRecord | None:
        raw = await self.redis.get(self.keys.job(job_id))
        return JobRecord.model_validate_json(raw) if raw else None

    async def queue(self, limit: int = 10_000) -> list[QueuedTask]:
        """Every queued or running task in fair order."""
        flat = await self.scripts.candidates(
            keys=[self.keys.order, self.keys.meta, self.keys.queue, self.keys.passed, self.keys.avoid],
            args=[limit, ARQ_IN_PROGRESS_PREFIX],
        )
        tasks = []
        for i in range(0, len(flat), CANDIDATE_FIELDS):
            if not flat[i + 2]:
                continue  # removed between reads
            meta = TaskMeta.model_validate_json(flat[i + 2])
            tasks.append(QueuedTask(meta=meta, key=float(flat[i + 1]), running=bool(int(flat[i + 4]))))
        return tasks

    async def positions(self, task_ids: Sequence[str]) -> dict[str, int | None]:
        """Place in line of each task: 0 running, 1 next, ...; None once it left the queue (done or unknown)."""
        place: dict[str, int] = {}
        waiting = 0
        for task in await self.queue():
            if task.running:
                place[task.meta.task_id] = 0
            else:
                waiting += 1
                place[task.meta.task_id] = waiting
        return {task_id: place.get(task_id) for task_id in task_ids}

    async def estimates(self) -> dict[str, Estimate]:
        """Position and expected start time of every queued task, from measured speeds and the live workers."""
        tasks, workers, speeds = await self.queue(), await self.registry.live(), await self.speeds.snapshot()
        return estimate(tasks, workers, speeds, int(time.time() * 1000))

    async def queue_depth(self) -> int:
        return int(await self.redis.zcard(self.keys.order))

    def _job(self, task_id: str) -> Job:
        return Job(task_id, self.redis, _queue_name=self.keys.queue, _deserializer=serialization.deserialize)

    async def _outcome(self, job: Job) -> TaskResult | TaskFailed | None:
        """The stored result or failure of a finished task; None if it has not finished (or is unknown)."""
        info = await job.result_info()
        if info is None:
            return None
        if info.success:
            return TaskResult.model_validate(info.result)
        return info.result if isinstance(info.result, TaskFailed) else TaskFailed(str(info.result))

    async def lookup(self, task_id: str) -> tuple[TaskState, TaskResult | TaskFailed | None]:
        """Where a task is: (state, its result or failure once it has ended)."""
        outcome = await self._outcome(self._job(task_id))
        if outcome is not None:
            return (TaskState.DONE if isinstance(outcome, TaskResult) else TaskState.FAILED), outcome
        position = (await self.positions([task_id]))[task_id]
        if position is None:
            return TaskState.MISSING, None
        return (TaskState.RUNNING if position == 0 else TaskState.QUEUED), None

    async def result(self, task_id: str) -> TaskResult | None:
        """The task's result if it has finished, None while it is queued or running.

        Raises :class:`TaskFailed` with the worker's reason when it failed or was cancelled.
        """
        job = self._job(task_id)
        outcome = await self._outcome(job)
        if isinstance(outcome, TaskFailed):
            raise outcome
        if outcome is None and await job.status() == JobStatus.not_found:
            raise TaskFailed(f"task {task_id} is unknown or its result has expired")
        return outcome

    # --- cancelling ----------------------------------------------------------------------------------------

    async def cancel(self, task_id: str, *, by: str = "its owner") -> CancelOutcome:
        """Cancel one task: a queued one is removed and never runs; a running one is interrupted on its WebUI."""
        job_id = task_id.rpartition(".")[0]
        failure = TaskFailed(f"cancelled by {by}", FailureCode.CANCELLED)
        result = serialize_result(TASK_FUNCTION, (), {}, 0, now_ms(), False, failure, now_ms(), now_ms(),
                                  task_id, self.keys.queue, task_id, serializer=serialization.serialize)
        keys = [self.keys.queue, ARQ_IN_PROGRESS_PREFIX + task_id, self.keys.order, self.keys.meta,
                ARQ_JOB_PREFIX + task_id, ARQ_RESULT_PREFIX + task_id, self.keys.cancel(task_id),
                ARQ_RETRY_PREFIX + task_id, self.keys.passed, self.keys.avoid]
        message = json.dumps({"cancel": task_id, "by": by})
        args: list[Any] = [task_id, result or b"", int(self._settings.result_ttl_s * 1000), self.keys.user_tasks(""),
                self.keys.control, message]
        outcome = CancelOutcome(text(await self.scripts.cancel(keys=keys, args=args)))
        if outcome == CancelOutcome.REMOVED:
            await self.events.publish(TaskEvent(type=EventType.CANCELLED, task_id=task_id, job_id=job_id,
                                                message=str(failure), code=FailureCode.CANCELLED.value))
        return outcome

    async def cancel_job(self, job_id: str, *, by: str = "its owner") -> dict[str, CancelOutcome]:
        record = await self.job(job_id)
        if record is None:
            raise InvalidRequest([f"job {job_id} is unknown or has expired"])
        return {task_id: await self.cancel(task_id, by=by) for task_id in record.task_ids}

