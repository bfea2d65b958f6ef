"""The core of the job service: submit jobs, store their results exactly once, reconcile after a crash, read.

Every job a front end submits is recorded (jobs, tasks, request) *before* it is queued, and its images are stored
(PNG in the image store, one row each) when its results are read back from Redis — by :meth:`JobService.sync`,
which any front end may run at any time, as often as it likes: files are written atomically under deterministic
names and rows are inserted once (unique ids), so several front ends sharing a store never duplicate an image.
:meth:`JobService.reconcile` also puts back tasks the queue lost (e.g. Redis was reset) or fails them with a reason.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Self

from pydantic import TypeAdapter
from sqlalchemy import select
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from common.errors import EaselError, FailureCode, NotFound, NotPermitted, TaskFailed
from common.models import GenerationRequest
from common.queue import EaselClient, TaskState, resolve_seed
from common.settings import Settings
from common.sweep import expand, parse_spec
from common.tasks import JobRecord, Origin, TaskResult, TaskSpec, new_job_id, now_ms
from jobs.models import ImageDetail, JobDetail, JobSummary, SyncReport, TaskDetail
from jobs.store.db import migrate, open_engine, sqlite_urls
from jobs.store.files import ImageFiles
from jobs.store.tables import ImageRow, JobRow, TaskRow

_REQUEST = TypeAdapter(GenerationRequest)
_IMAGE_FIELDS = ("init_image", "image")  # request fields holding image bytes, stored as input references
PENDING = ("queued", "running")


def _prepare_root(data_dir: str) -> Path:
    root = Path(data_dir).absolute()
    root.mkdir(parents=True, exist_ok=True)
    return root


class JobServiceCore:
    """Recording, queueing, storing and reading jobs; :class:`jobs.curation.JobService` adds curation."""

    def __init__(self, client: EaselClient, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession],
                 files: ImageFiles, settings: Settings) -> None:
        self.client = client
        self.engine = engine
        self.sessions = sessions
        self.files = files
        self.settings = settings

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: Settings, client: EaselClient | None = None) -> AsyncIterator[Self]:
        root = await asyncio.to_thread(_prepare_root, settings.data_dir)
        async_url, sync_url = sqlite_urls(root / "easel.db")
        if settings.database_url:
            async_url = settings.database_url
            sync_url = async_url.replace("+aiosqlite", "").replace("+asyncpg", "+psycopg")
        await asyncio.to_thread(migrate, sync_url)
        engine, sessions = open_engine(async_url)
        try:
            if client is not None:
                yield cls(client, engine, sessions, ImageFiles(root), settings)
            else:
                async with EaselClient.connect(settings) as own:
                    yield cls(own, engine, sessions, ImageFiles(root), settings)
        finally:
            await engine.dispose()

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
        job_id, now = new_job_id(), now_ms()
        tasks = [(label, resolve_seed(request)) for label, request in tasks]  # the record holds the real seeds
        parents = list(parents) if parents is not None else [None] * len(tasks)
        async with self.sessions.begin() as session:
            session.add(JobRow(id=job_id, owner=actor, origin=origin.model_dump_json(), action=action, spec=spec,
                               parent_job_id=parent_job_id, status="queued", created_ms=now, updated_ms=now))
            for index, ((label, request), parent) in enumerate(zip(tasks, parents, strict=True)):
                session.add(TaskRow(id=f"{job_id}.{index}", job_id=job_id, index=index, kind=request.kind,
                                    label=label, request=await self._stored_request(request),
                                    parent_image_id=parent, status="queued", submitted_ms=now))
        try:
            record = await self.client.submit(actor, origin, [r for _, r in tasks], [label for label, _ in tasks],
                                              priority=priority, job_id=job_id)
        except BaseException:
            async with self.sessions.begin() as session:
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
                data[field] = await asyncio.to_thread(self.files.put_input, data[field])
        return json.dumps(data)

    def _loaded_request(self, stored: str) -> GenerationRequest:
        data = json.loads(stored)
        for field in _IMAGE_FIELDS:
            if isinstance(data.get(field), str) and data[field].startswith("sha256:"):
                data[field] = self.files.get_input(data[field])
        return _REQUEST.validate_python(data, context={"limits": None})

    # --- storing results ----------------------------------------------------------------------------------

    async def sync(self, job_id: str | None = None) -> SyncReport:
        """Store the results of every pending task (or those of one job) that have arrived in Redis."""
        report = SyncReport()
        for task in await self._pending(job_id):
            state, outcome = await self.client.lookup(task.id)
            await self._settle(task, state, outcome, report)
        return report

    async def reconcile(self) -> SyncReport:
        """At start-up: store what arrived while we were down; put back (or fail) what the queue lost."""
        report = await self.sync()
        for task in await self._pending(None):
            state, _ = await self.client.lookup(task.id)
            if state == TaskState.MISSING:
                await self._recover(task, report)
        return report

    async def _pending(self, job_id: str | None) -> list[TaskRow]:
        async with self.sessions() as session:
            query = select(TaskRow).where(TaskRow.status.in_(PENDING)).order_by(TaskRow.submitted_ms, TaskRow.id)
            if job_id is not None:
                query = query.where(TaskRow.job_id == job_id)
            return list((await session.scalars(query)).all())

    async def _settle(self, task: TaskRow, state: TaskState, outcome: TaskResult | TaskFailed | None,
                      report: SyncReport) -> None:
        if isinstance(outcome, TaskResult):
            report.stored_images += await self._store(task, outcome)
            report.finished_tasks += 1
        elif isinstance(outcome, TaskFailed):
            status = "cancelled" if outcome.code == FailureCode.CANCELLED else "failed"
            await self._set_status(task.id, status, error=str(outcome))
            report.failed_tasks += 1
        elif state == TaskState.RUNNING and task.status != "running":
            await self._set_status(task.id, "running")

    async def _store(self, task: TaskRow, result: TaskResult) -> int:
        """Files first (atomic, deterministic names), then one row per image — inserted once, ever."""
        paths = [self.files.image_path(task.id, n, image.seed) for n, image in enumerate(result.images)]
        try:
            for path, image in zip(paths, result.images, strict=True):
                await asyncio.to_thread(self.files.write, path, image.png)
        except OSError as exc:  # e.g. a full disk: no rows are written; the results wait in Redis for the next sync
            raise EaselError(
                f"could not store the images of task {task.id} in {self.files.root}: {exc.strerror or exc}; "
                "they stay in Redis and are stored by the next sync"
            ) from exc
        now = now_ms()
        async with self.sessions.begin() as session:
            rows = [
                {"id": f"{task.id}.{n}", "task_id": task.id, "job_id": task.job_id, "index": n, "path": path,
                 "seed": image.seed, "infotext": image.infotext, "width": image.width, "height": image.height,
                 "parent_image_id": task.parent_image_id, "kept": False, "deleted": False, "created_ms": now}
                for n, (path, image) in enumerate(zip(paths, result.images, strict=True))
            ]
            inserted = await session.execute(insert(ImageRow).on_conflict_do_nothing().values(rows))
            row = await session.get(TaskRow, task.id)
            if row is not None:
                row.status, row.worker, row.error, row.tries = "done", result.worker, None, result.tries
                row.started_ms, row.finished_ms = result.started_ms, result.finished_ms
                await self._refresh_job(session, row.job_id)
        return max(0, inserted.rowcount or 0)  # type: ignore[attr-defined]

    async def _set_status(self, task_id: str, status: str, error: str | None = None) -> None:
        async with self.sessions.begin() as session:
            row = await session.get(TaskRow, task_id)
            if row is None or row.status not in PENDING:
                return
            row.status = status
            if error is not None:
                row.error, row.finished_ms = error, now_ms()
            await self._refresh_job(session, row.job_id)

    async def _refresh_job(self, session: AsyncSession, job_id: str) -> None:
        job = await session.get(JobRow, job_id, options=[selectinload(JobRow.tasks)])
        if job is None:
            return
        statuses = {t.status for t in job.tasks}
        if statuses & {"queued", "running"}:
            job.status = "running" if "running" in statuses or "done" in statuses else "queued"
        elif statuses == {"done"}:
            job.status = "done"
        elif statuses <= {"cancelled"}:
            job.status = "cancelled"
        else:
            job.status = "partial" if "done" in statuses else "failed"
        job.updated_ms = now_ms()

    async def _recover(self, task: TaskRow, report: SyncReport) -> None:
        """A pending task the queue no longer has: queue it again under its own id, or fail it with a reason."""
        age_s = (now_ms() - task.submitted_ms) / 1000
        if age_s > self.settings.result_ttl_s:
            await self._set_status(task.id, "failed", error="its result expired before it could be stored")
            report.lost_tasks += 1
            return
        try:
            request = self._loaded_request(task.request)
        except (OSError, ValueError) as exc:
            await self._set_status(task.id, "failed", error=f"lost from the queue and cannot be rebuilt ({exc})")
            report.lost_tasks += 1
            return
        async with self.sessions() as session:
            job = await session.get(JobRow, task.job_id)
        assert job is not None
        record = JobRecord(job_id=job.id, owner=job.owner, origin=Origin.model_validate_json(job.origin),
                           task_ids=[task.id], labels=[task.label])
        spec = TaskSpec(task_id=task.id, job_id=job.id, index=task.index, owner=job.owner, label=task.label,
                        request=request, submitted_ms=task.submitted_ms)
        await self.client.requeue(record, [spec])
        await self._set_status(task.id, "queued")
        report.requeued_tasks += 1

    # --- reading -------------------------------------------------------------------------------------------

    async def jobs(self, owner: str | None = None, limit: int = 20) -> list[JobSummary]:
        async with self.sessions() as session:
            query = select(JobRow).options(selectinload(JobRow.tasks).selectinload(TaskRow.images))
            if owner is not None:
                query = query.where(JobRow.owner == owner)
            rows = (await session.scalars(query.order_by(JobRow.created_ms.desc()).limit(limit))).all()
        return [
            JobSummary(id=j.id, owner=j.owner, action=j.action, status=j.status, created_ms=j.created_ms,
                       tasks=len(j.tasks), images=sum(1 for t in j.tasks for i in t.images if not i.deleted),
                       kept=sum(1 for t in j.tasks for i in t.images if i.kept and not i.deleted))
            for j in rows
        ]

    async def job(self, job_id: str) -> JobDetail:
        async with self.sessions() as session:
            job = await self._load_job(session, job_id)
            return JobDetail(
                id=job.id, owner=job.owner, action=job.action, spec=job.spec, parent_job_id=job.parent_job_id,
                status=job.status, created_ms=job.created_ms,
                tasks=[
                    TaskDetail(id=t.id, index=t.index, kind=t.kind, label=t.label, status=t.status, worker=t.worker,
                               tries=t.tries, error=t.error, parent_image_id=t.parent_image_id,
                               submitted_ms=t.submitted_ms, started_ms=t.started_ms, finished_ms=t.finished_ms,
                               images=[self._image_detail(i) for i in t.images])
                    for t in job.tasks
                ],
            )

    def _image_detail(self, row: ImageRow) -> ImageDetail:
        return ImageDetail(id=row.id, job_id=row.job_id, task_id=row.task_id, file=str(self.files.root / row.path),
                           seed=row.seed, width=row.width, height=row.height, kept=row.kept, deleted=row.deleted,
                           parent_image_id=row.parent_image_id, infotext=row.infotext)

    async def _load_job(self, session: AsyncSession, job_id: str) -> JobRow:
        job = await session.get(JobRow, job_id, options=[selectinload(JobRow.tasks).selectinload(TaskRow.images)])
        if job is None:
            raise NotFound(f"there is no job {job_id!r}; `easel jobs ls` lists yours")
        return job

    async def origin(self, job_id: str) -> Origin:
        async with self.sessions() as session:
            job = await session.get(JobRow, job_id)
        if job is None:
            raise NotFound(f"there is no job {job_id!r}")
        return Origin.model_validate_json(job.origin)

    async def set_origin(self, job_id: str, origin: Origin) -> None:
        """Where the job is shown (e.g. the Discord message to keep in step with it)."""
        async with self.sessions.begin() as session:
            job = await session.get(JobRow, job_id)
            if job is None:
                raise NotFound(f"there is no job {job_id!r}")
            job.origin = origin.model_dump_json()

    async def image_bytes(self, image_id: str) -> bytes:
        async with self.sessions() as session:
            image = await session.get(ImageRow, image_id)
        if image is None:
            raise NotFound(f"there is no image {image_id!r}")
        return await asyncio.to_thread(self.files.read, image.path)

    @staticmethod
    def check_owner(job: JobRow | JobDetail, actor: str, moderator: bool = False) -> None:
        if job.owner != actor and not moderator:
            raise NotPermitted(f"job {job.id} belongs to {job.owner}; only its owner can change it")

