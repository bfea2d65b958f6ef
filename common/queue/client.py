"""The front ends' side of the queue: submit jobs, ask for places and ETAs, cancel, fetch results.

This is the one enqueue path: the CLI, the demo, the bot and the web all call :meth:`EaselClient.submit`. A job's
tasks are written atomically (one Lua script: arq payloads, the waiting index and lanes, the per-user limit), one idle
worker is woken per task, and a ``queued`` event is published for each task with its place in line.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from arq.connections import ArqRedis
from arq.jobs import deserialize_result, serialize_job, serialize_result

from common import serialization
from common.availability import check_servable
from common.connection import open_redis
from common.errors import FailureCode, InvalidRequest, TaskFailed
from common.events import EventStream, EventType, TaskEvent
from common.limits import SEED_MAX, Limits
from common.models import GenerationRequest, UpscaleRequest, WorkflowRequest
from common.queue import messages
from common.queue.blobs import Blobs, images_of, to_payload
from common.queue.estimates import WINDOW, estimate
from common.queue.fairness import Speeds, SpeedTable, work_of
from common.queue.keys import ARQ_RESULT_PREFIX, TASK_FUNCTION, Keys
from common.queue.lanes import Requirements, requirements_for
from common.queue.models import CancelOutcome, Estimate, QueuedTask, TaskMeta, TaskState
from common.queue.policy import idle_stale_ms
from common.queue.scripts import NewTask, QueueScripts
from common.registry import Registry, WorkerInfo
from common.settings import Settings
from common.tasks import JobRecord, Origin, TaskResult, TaskSpec, new_job_id, now_ms, task_id_for

SNAPSHOT_S = 2.0  # live workers and speeds are re-read at most this often per client (a submit stays cheap)


async def connect_redis(settings: Settings) -> ArqRedis:
    """An arq pool with Easel's JSON serializer (see :func:`common.connection.open_redis`)."""
    return await open_redis(settings)


def resolve_seed(request: GenerationRequest) -> GenerationRequest:
    """Pick the random seed now, so a retried or re-delivered task makes the same images."""
    if isinstance(request, WorkflowRequest):
        return request.with_seeds(lambda: random.randrange(SEED_MAX))
    if isinstance(request, UpscaleRequest) or request.seed != -1:
        return request
    return request.model_copy(update={"seed": random.randrange(SEED_MAX)})


class EaselClient:
    """Submit and follow jobs. Holds no state besides its Redis pool and short-lived snapshots."""

    def __init__(self, redis: ArqRedis, settings: Settings) -> None:
        self.redis = redis
        self.keys = Keys(settings.redis_prefix)
        self.limits: Limits = settings.limits()
        self.events = EventStream(redis, self.keys, maxlen=settings.events_maxlen,
                                  max_age_s=settings.events_max_age_s)
        self.registry = Registry(redis, self.keys, ttl_s=settings.worker_ttl_s)
        self.speeds = Speeds(redis, self.keys)
        self.blobs = Blobs(redis, self.keys, ttl_s=settings.result_ttl_s + 86_400)
        self.scripts = QueueScripts(redis, self.keys)
        self._settings = settings
        self._live: tuple[float, list[WorkerInfo]] = (-SNAPSHOT_S, [])
        self._speeds: tuple[float, SpeedTable] = (-SNAPSHOT_S, SpeedTable({}))

    @classmethod
    @asynccontextmanager
    async def connect(cls, settings: Settings) -> AsyncIterator[EaselClient]:
        redis = await connect_redis(settings)
        try:
            yield cls(redis, settings)
        finally:
            await redis.aclose()

    async def live_workers(self) -> list[WorkerInfo]:
        """The live workers, read at most every ``SNAPSHOT_S`` (submits must not cost a registry scan each)."""
        at, workers = self._live
        if time.monotonic() - at >= SNAPSHOT_S:
            workers = await self.registry.live()
            self._live = (time.monotonic(), workers)
        return workers

    async def _speed_table(self) -> SpeedTable:
        at, table = self._speeds
        if time.monotonic() - at >= SNAPSHOT_S:
            table = await self.speeds.snapshot()
            self._speeds = (time.monotonic(), table)
        return table

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
        check_servable(requests, await self.live_workers())
        job_id = job_id or new_job_id()
        labels = list(labels) if labels is not None else [""] * len(requests)
        specs = [
            TaskSpec(task_id=task_id_for(job_id, i), job_id=job_id, index=i, owner=owner, label=labels[i],
                     request=resolve_seed(request))
            for i, request in enumerate(requests)
        ]
        record = JobRecord(job_id=job_id, owner=owner, origin=origin, task_ids=[s.task_id for s in specs],
                           labels=labels)
        places = await self._enqueue(record, specs, priority)
        async with self.redis.pipeline(transaction=False) as pipe:
            for spec, place in zip(specs, places, strict=True):
                self.events.add_to(pipe, TaskEvent(type=EventType.QUEUED, task_id=spec.task_id, job_id=job_id,
                                                   position=place))
            await pipe.execute()
        return record

    async def requeue(self, record: JobRecord, specs: list[TaskSpec], priority: str = "default") -> None:
        """Put tasks that the queue lost (e.g. Redis was reset) back, under their own ids.

        The job's record keeps every task it had: a later ``cancel_job`` reaches all of them.
        """
        existing = await self.job(record.job_id)
        if existing is not None:
            known = set(existing.task_ids)
            record = existing.model_copy(update={
                "task_ids": [*existing.task_ids, *(t for t in record.task_ids if t not in known)],
            })
        await self._enqueue(record, specs, priority)

    async def _enqueue(self, record: JobRecord, specs: list[TaskSpec], priority: str) -> list[int]:
        settings, now = self._settings, now_ms()
        speeds, workers = await self._speed_table(), await self.live_workers()
        refs: dict[int, str] = {}  # id(image bytes) -> blob reference: a sweep's shared image is stored once
        tasks = []
        for spec in specs:
            request = spec.request
            requirements = requirements_for(request, workers)
            meta = TaskMeta(
                task_id=spec.task_id, job_id=spec.job_id, owner=spec.owner, kind=request.kind,
                checkpoint=None if isinstance(request, UpscaleRequest) else request.checkpoint,
                lane=requirements.lane, enqueue_ms=now, work=work_of(request), priority=priority,
            )
            fields = {}
            for field, data in images_of(spec).items():
                if id(data) not in refs:
                    refs[id(data)] = await self.blobs.put(data)
                fields[field] = refs[id(data)]
            job = serialize_job(TASK_FUNCTION, (to_payload(spec, fields),), {}, None, now,
                                serializer=serialization.serialize)
            tasks.append(NewTask(spec.task_id, speeds.seconds(meta) * 1000, job, meta,
                                 requirements.model_dump_json()))
        await self.redis.set(self.keys.job(record.job_id), record.model_dump_json(), ex=settings.result_ttl_s)
        outcome = await self.scripts.enqueue(
            owner=record.owner, now_ms=now, limit=settings.max_queued_per_user, aging=settings.aging_rate,
            boost_ms=settings.priority_classes[priority] * 1000, ttl_ms=int(settings.result_ttl_s * 1000),
            idle_stale_ms=idle_stale_ms(settings), tasks=tasks,
        )
        if not outcome.accepted:
            limit = settings.max_queued_per_user
            await self.redis.delete(self.keys.job(record.job_id))
            raise InvalidRequest([
                f"you have {outcome.queued_before} tasks queued, the limit is {limit}: "
                f"this job would add {len(specs)}; wait for some to finish or cancel some"
            ])
        return outcome.places

    # --- reading -------------------------------------------------------------------------------------------

    async def job(self, job_id: str) -> JobRecord | None:
        raw = await self.redis.get(self.keys.job(job_id))
        return JobRecord.model_validate_json(raw) if raw else None

    async def queue(self, limit: int = 100, offset: int = 0) -> list[QueuedTask]:
        """Running tasks, then ``limit`` waiting tasks in fair order from place ``offset + 1``: one page, any depth."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrange(self.keys.running, 0, -1)
            pipe.zrange(self.keys.waiting, offset, offset + limit - 1)
            running_ids, waiting_ids = await pipe.execute()
        ids = [*running_ids, *waiting_ids]
        metas = await self.redis.hmget(self.keys.meta, ids) if ids else []  # type: ignore[misc]
        tasks = []
        for n, raw in enumerate(metas):
            if raw is None:
                continue  # it left the queue between the two reads
            running = n < len(running_ids)
            place = 0 if running else offset + n - len(running_ids) + 1
            tasks.append(QueuedTask(TaskMeta.model_validate_json(raw), running, place))
        return tasks

    async def positions(self, task_ids: Sequence[str]) -> dict[str, int | None]:
        """Place in line of each task: 0 running, 1 next, ...; None once it left the queue (done or unknown).

        An order-statistic rank in the waiting index: exact at any depth, O(log n) per task.
        """
        async with self.redis.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.zrank(self.keys.waiting, task_id)
                pipe.zscore(self.keys.running, task_id)
            replies = await pipe.execute()
        places: dict[str, int | None] = {}
        for n, task_id in enumerate(task_ids):
            rank, running = replies[2 * n], replies[2 * n + 1]
            places[task_id] = 0 if running is not None else (None if rank is None else int(rank) + 1)
        return places

    async def estimates(self, task_ids: Sequence[str] | None = None) -> dict[str, Estimate]:
        """Place and expected start of the given tasks (default: the running ones and the first ``WINDOW``
        waiting), from measured speeds and the live workers; the cost does not grow with the queue's depth."""
        window = await self.queue(limit=WINDOW)
        running = [t for t in window if t.running]
        waiting = [t for t in window if not t.running]
        beyond: dict[str, tuple[int, TaskMeta]] = {}
        if task_ids is not None:
            shown = {t.meta.task_id for t in window}
            missing = [t for t in task_ids if t not in shown]
            places = await self.positions(missing) if missing else {}
            found = [t for t in missing if places.get(t)]
            metas = await self.redis.hmget(self.keys.meta, found) if found else []  # type: ignore[misc]
            for task_id, raw in zip(found, metas, strict=True):
                place = places[task_id]
                if raw is not None and place:
                    beyond[task_id] = (place, TaskMeta.model_validate_json(raw))
        workers, speeds = await self.registry.live(), await self.speeds.snapshot()  # fresh: ETAs follow the pool
        self._live, self._speeds = (time.monotonic(), workers), (time.monotonic(), speeds)
        lanes = await self.redis.hgetall(self.keys.lanes)  # type: ignore[misc]  # a few entries: one per lane
        requirements = {(k.decode() if isinstance(k, bytes) else k): Requirements.model_validate_json(v)
                        for k, v in lanes.items()}
        result = estimate(running, waiting, workers, speeds, beyond=beyond, requirements=requirements)
        if task_ids is None:
            return result
        return {t: result[t] for t in task_ids if t in result}

    async def queue_depth(self) -> int:
        """Waiting and running tasks."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(self.keys.waiting)
            pipe.zcard(self.keys.running)
            waiting, running = await pipe.execute()
        return int(waiting) + int(running)

    async def lookup(self, task_id: str) -> tuple[TaskState, TaskResult | TaskFailed | None]:
        """Where a task is: (state, its result or failure once it has ended).

        One MULTI/EXEC: finishing stores the result and leaves the index in one atomic step, so a task is never
        seen in neither place while it moves from one to the other.
        """
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(ARQ_RESULT_PREFIX + task_id)
            pipe.zscore(self.keys.running, task_id)
            pipe.zscore(self.keys.waiting, task_id)
            raw, running, waiting = await pipe.execute()
        if raw is not None:
            info = deserialize_result(raw, deserializer=serialization.deserialize)
            if info.success:
                return TaskState.DONE, TaskResult.model_validate(info.result)
            failure = info.result if isinstance(info.result, TaskFailed) else TaskFailed(str(info.result))
            return TaskState.FAILED, failure
        if running is not None:
            return TaskState.RUNNING, None
        return (TaskState.QUEUED if waiting is not None else TaskState.MISSING), None

    async def result(self, task_id: str) -> TaskResult | None:
        """The task's result if it has finished, None while it is waiting or running.

        Raises :class:`TaskFailed` with the worker's reason when it failed or was cancelled.
        """
        state, outcome = await self.lookup(task_id)
        if isinstance(outcome, TaskFailed):
            raise outcome
        if state == TaskState.MISSING:
            raise TaskFailed(f"task {task_id} is unknown or its result has expired")
        return outcome

    # --- cancelling ----------------------------------------------------------------------------------------

    async def cancel(self, task_id: str, *, by: str = "its owner") -> CancelOutcome:
        """Cancel one task: a waiting one is removed and never runs; a running one is interrupted on its WebUI."""
        job_id = task_id.rpartition(".")[0]
        failure = TaskFailed(f"cancelled by {by}", FailureCode.CANCELLED)
        now = now_ms()
        result = serialize_result(TASK_FUNCTION, (), {}, 0, now, False, failure, now, now, task_id,
                                  self.keys.waiting, task_id, serializer=serialization.serialize)
        message = messages.encode(messages.CancelTask(task_id=task_id, by=by))
        outcome = await self.scripts.cancel(task_id=task_id, result=result or b"",
                                            result_ttl_ms=int(self._settings.result_ttl_s * 1000), message=message)
        if outcome == CancelOutcome.REMOVED:
            await self.events.publish(TaskEvent(type=EventType.CANCELLED, task_id=task_id, job_id=job_id,
                                                message=str(failure), code=FailureCode.CANCELLED.value))
        return outcome

    async def cancel_job(self, job_id: str, *, by: str = "its owner") -> dict[str, CancelOutcome]:
        record = await self.job(job_id)
        if record is None:
            raise InvalidRequest([f"job {job_id} is unknown or has expired"])
        return {task_id: await self.cancel(task_id, by=by) for task_id in record.task_ids}

    # --- steering workers ----------------------------------------------------------------------------------

    async def tell(self, worker: str, message: messages.ControlMessage) -> int:
        """Send a control message to one worker's inbox; returns how many listeners got it (0: none live)."""
        return int(await self.redis.publish(self.keys.inbox(worker), messages.encode(message)))

