"""Recording jobs: every job a front end submits is recorded (job, tasks, requests) *before* it is queued; its
results are stored exactly once when they are read back from Redis; and :meth:`Recording.reconcile` puts back what
the queue lost.

:meth:`Recording.sync` may run in any front end, at any time, as often as it likes: files are written atomically under
deterministic names and image rows are inserted once (unique ids), so several front ends sharing a store never
duplicate an image. :meth:`Recording.reconcile` also puts back tasks the queue lost (e.g. Redis was reset) or fails
them with a reason.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from common.errors import EaselError, FailureCode, TaskFailed
from common.models import GenerationRequest
from common.queue import EaselClient, TaskState, resolve_seed
from common.settings import SettingMissing, Settings
from common.sweep import expand, parse_spec
from common.tasks import JobRecord, Origin, TaskResult, TaskSpec, new_job_id, now_ms
from jobs.models import JobStatus, SyncReport, TaskStatus
from jobs.store.job_store import JobStore
from jobs.store.tables import ImageRow, JobRow, TaskRow

_REQUEST = TypeAdapter(GenerationRequest)
_IMAGE_FIELDS = ("init_image", "image")  # request fields holding image bytes, stored as input references


class Recording:
    """Submitting through the store, and bringing results (or losses) from Redis into it."""

    def __init__(self, store: JobStore, client: EaselClient | None, settings: Settings) -> None:
        self.store = store
        self._client = client
        self.settings = settings

    @property
    def client(self) -> EaselClient:
        """The queue client; a front end opened without Redis (e.g. to read the store) has none."""
        if self._client is None:
            raise SettingMissing("this needs the queue, and REDIS_URL is not set: "
                                 "export REDIS_URL=redis://host:6379/0 or pass --redis-url")
        return self._client

    @property
    def has_queue(self) -> bool:
        return self._client is not None

    # --- submitting ----------------------------------------------------------------------------------------

    async def submit_sweep(self, actor: str, origin: Origin, spec: str, base: dict[str, Any],
                           priority: str = "default") -> JobRecord:
        """Parse ``prompt | prompt :: name=v1,v2 ...``, expand it over ``base`` and submit it as one job."""
        prompts, axes = parse_spec(spec)
        tasks = expand(base, prompts, axes, limits=self.client.limits)
        return await self.submit(actor, origin, tasks, spec=spec, priority=priority)

    async def submit(
        self,
        actor: str,
        origin: Origin,
        tasks: Sequence[tuple[str, GenerationRequest]],
        *,
        action: str = "generate",
        spec: str = "",
        parent_job_id: str | None = None,
        parents: Sequence[str | None] | None = None,
        priority: str = "default",
    ) -> JobRecord:
        """Record the job, then queue it. If queueing is refused, the record is removed again."""
        client = self.client
        job_id, now = new_job_id(), now_ms()
        tasks = [(label, resolve_seed(request)) for label, request in tasks]  # the record holds the real seeds
        parents = list(parents) if parents is not None else [None] * len(tasks)
        async with self.store.sessions.begin() as session:
            session.add(JobRow(id=job_id, owner=actor, origin=origin.model_dump_json(), action=action, spec=spec,
                               parent_job_id=parent_job_id, status=JobStatus.QUEUED, created_ms=now,
                               updated_ms=now))
            for index, ((label, request), parent) in enumerate(zip(tasks, parents, strict=True)):
                session.add(TaskRow(id=f"{job_id}.{index}", job_id=job_id, index=index, kind=request.kind,
                                    label=label, request=await self._stored_request(request),
                                    parent_image_id=parent, status=TaskStatus.QUEUED, submitted_ms=now))
        try:
            record = await client.submit(actor, origin, [r for _, r in tasks], [label for label, _ in tasks],
                                         priority=priority, job_id=job_id)
        except BaseException:
            async with self.store.sessions.begin() as session:
                job = await session.get(JobRow, job_id)
                if job is not None:
                    await session.delete(job)
            raise
        return record

    async def _stored_request(self, request: GenerationRequest) -> str:
        """The request as JSON with its image bytes replaced by input-store references."""
        data = request.model_dump(mode="python")
        for field in _IMAGE_FIELDS:
            if isinstance(data.get(field), bytes):
                data[field] = await asyncio.to_thread(self.store.files.put_input, data[field])
        return json.dumps(data)

    def loaded_request(self, stored: str) -> GenerationRequest:
        """A stored request read back, with its input images."""
        data = json.loads(stored)
        for field in _IMAGE_FIELDS:
            if isinstance(data.get(field), str) and data[field].startswith("sha256:"):
                data[field] = self.store.files.get_input(data[field])
        return _REQUEST.validate_python(data, context={"limits": None})

    # --- storing results ----------------------------------------------------------------------------------

    async def sync(self, job_id: str | None = None) -> SyncReport:
        """Store the results of every pending task (or those of one job) that have arrived in Redis."""
        report = SyncReport()
        for task in await self.store.pending_tasks(job_id):
            state, outcome = await self.client.lookup(task.id)
            await self._settle(task, state, outcome, report)
        return report

    async def reconcile(self) -> SyncReport:
        """At start-up: store what arrived while we were down; put back (or fail) what the queue lost."""
        report = await self.sync()
        lost: dict[str, list[TaskRow]] = {}
        for task in await self.store.pending_tasks():
            state, _ = await self.client.lookup(task.id)
            if state == TaskState.MISSING:
                lost.setdefault(task.job_id, []).append(task)
        for job_id, tasks in lost.items():
            await self._recover(job_id, tasks, report)
        return report

    async def _settle(self, task: TaskRow, state: TaskState, outcome: TaskResult | TaskFailed | None,
                      report: SyncReport) -> None:
        if isinstance(outcome, TaskResult):
            report.stored_images += await self._store(task, outcome)
            report.finished_tasks += 1
        elif isinstance(outcome, TaskFailed):
            status = TaskStatus.CANCELLED if outcome.code == FailureCode.CANCELLED else TaskStatus.FAILED
            await self._set_status(task.id, status, error=str(outcome))
            report.failed_tasks += 1
        elif state == TaskState.RUNNING and task.status != TaskStatus.RUNNING:
            await self._set_status(task.id, TaskStatus.RUNNING)

    async def _store(self, task: TaskRow, result: TaskResult) -> int:
        """Files first (atomic, deterministic names), then one row per image — inserted once, ever."""
        files = self.store.files
        paths = [files.image_path(task.id, n, image.seed) for n, image in enumerate(result.images)]
        try:
            for path, image in zip(paths, result.images, strict=True):
                await asyncio.to_thread(files.write, path, image.png)
        except OSError as exc:  # e.g. a full disk: no rows are written; the results wait in Redis for the next sync
            raise EaselError(
                f"could not store the images of task {task.id} in {files.root}: {exc.strerror or exc}; "
                "they stay in Redis and are stored by the next sync"
            ) from exc
        now = now_ms()
        async with self.store.sessions.begin() as session:
            rows = [
                {"id": f"{task.id}.{n}", "task_id": task.id, "job_id": task.job_id, "index": n, "path": path,
                 "seed": image.seed, "infotext": image.infotext, "width": image.width, "height": image.height,
                 "parent_image_id": task.parent_image_id, "kept": False, "deleted": False, "created_ms": now}
                for n, (path, image) in enumerate(zip(paths, result.images, strict=True))
            ]
            inserted = await session.execute(insert(ImageRow).on_conflict_do_nothing().values(rows))
            row = await session.get(TaskRow, task.id)
            if row is not None:
                row.status, row.worker, row.error, row.tries = TaskStatus.DONE, result.worker, None, result.tries
                row.started_ms, row.finished_ms = result.started_ms, result.finished_ms
                await self._refresh_job(session, row.job_id)
        return max(0, inserted.rowcount or 0)  # type: ignore[attr-defined]

    async def _set_status(self, task_id: str, status: TaskStatus, error: str | None = None) -> None:
        async with self.store.sessions.begin() as session:
            row = await session.get(TaskRow, task_id)
            if row is None or not row.status.pending:
                return
            row.status = status
            if error is not None:
                row.error, row.finished_ms = error, now_ms()
            await self._refresh_job(session, row.job_id)

    @staticmethod
    async def _refresh_job(session: AsyncSession, job_id: str) -> None:
        job = await session.get(JobRow, job_id, options=[selectinload(JobRow.tasks)])
        if job is not None:
            job.status, job.updated_ms = JobStatus.of(t.status for t in job.tasks), now_ms()

    # --- putting back what the queue lost -----------------------------------------------------------------

    async def _recover(self, job_id: str, lost: list[TaskRow], report: SyncReport) -> None:
        """Pending tasks of one job that the queue no longer has: queue them again under their own ids, or fail
        those that cannot be rebuilt. The job's record in Redis is rebuilt from the store with *all* its tasks, so
        cancelling the job afterwards still reaches every one of them."""
        async with self.store.sessions() as session:
            job = await self.store.load_job(session, job_id)
        specs = []
        for task in lost:
            try:
                specs.append(self._rebuilt(job, task))
            except _Unrecoverable as exc:
                await self._set_status(task.id, TaskStatus.FAILED, error=str(exc))
                report.lost_tasks += 1
        if not specs:
            return
        record = JobRecord(job_id=job.id, owner=job.owner, origin=Origin.model_validate_json(job.origin),
                           task_ids=[t.id for t in job.tasks], labels=[t.label for t in job.tasks],
                           submitted_ms=job.created_ms)
        await self.client.requeue(record, specs)
        for spec in specs:
            await self._set_status(spec.task_id, TaskStatus.QUEUED)
        report.requeued_tasks += len(specs)

    def _rebuilt(self, job: JobRow, task: TaskRow) -> TaskSpec:
        if (now_ms() - task.submitted_ms) / 1000 > self.settings.result_ttl_s:
            raise _Unrecoverable("its result expired before it could be stored")
        try:
            request = self.loaded_request(task.request)
        except (OSError, ValueError) as exc:
            raise _Unrecoverable(f"lost from the queue and cannot be rebuilt ({exc})") from exc
        return TaskSpec(task_id=task.id, job_id=job.id, index=task.index, owner=job.owner, label=task.label,
                        request=request, submitted_ms=task.submitted_ms)


class _Unrecoverable(Exception):
    """A lost task that cannot be queued again; the message is the reason its row records."""
