"""The job store as the rest of the job layer sees it: opened (migrated) once per front end, read, and checked for
ownership. Writing happens in the parts that own each change (:mod:`jobs.recording`, :mod:`jobs.curation`,
:mod:`jobs.retention`), through the same sessions and files. Needs no Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Self

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from common.errors import NotFound, NotPermitted
from common.settings import Settings
from common.tasks import Origin, now_ms
from jobs.models import ChannelSettings, ImageDetail, JobDetail, JobSummary, TaskDetail, TaskStatus
from jobs.store.db import migrate, open_engine, sqlite_urls
from jobs.store.files import ImageFiles
from jobs.store.tables import ChannelSettingsRow, ImageRow, JobRow, TaskRow


def _prepare_root(data_dir: str) -> Path:
    root = Path(data_dir).absolute()
    root.mkdir(parents=True, exist_ok=True)
    return root


class JobStore:
    """The SQLite (or ``EASEL_DATABASE_URL``) record of jobs, tasks and images, and the image files."""

    def __init__(self, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], files: ImageFiles) -> None:
        self.engine = engine
        self.sessions = sessions
        self.files = files

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: Settings) -> AsyncIterator[Self]:
        """Open the store in ``EASEL_DATA_DIR``, bringing its schema to the newest migration first."""
        root = await asyncio.to_thread(_prepare_root, settings.data_dir)
        async_url, sync_url = sqlite_urls(root / "easel.db")
        if settings.database_url:
            async_url = settings.database_url
            sync_url = async_url.replace("+aiosqlite", "").replace("+asyncpg", "+psycopg")
        await asyncio.to_thread(migrate, sync_url)
        engine, sessions = open_engine(async_url)
        try:
            yield cls(engine, sessions, ImageFiles(root))
        finally:
            await engine.dispose()

    # --- jobs and images -----------------------------------------------------------------------------------

    async def jobs(self, owner: str | None = None, limit: int = 20) -> list[JobSummary]:
        """The newest jobs (of ``owner``, or everyone's)."""
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
            job = await self.load_job(session, job_id)
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

    async def load_job(self, session: AsyncSession, job_id: str) -> JobRow:
        """The job's row with its tasks and their images loaded."""
        job = await session.get(JobRow, job_id, options=[selectinload(JobRow.tasks).selectinload(TaskRow.images)])
        if job is None:
            raise NotFound(f"there is no job {job_id!r}; `easel jobs ls` lists yours")
        return job

    async def pending_tasks(self, job_id: str | None = None) -> list[TaskRow]:
        """Tasks still queued or running (of one job, or all), oldest first."""
        async with self.sessions() as session:
            pending = [s for s in TaskStatus if s.pending]
            query = select(TaskRow).where(TaskRow.status.in_(pending)).order_by(TaskRow.submitted_ms, TaskRow.id)
            if job_id is not None:
                query = query.where(TaskRow.job_id == job_id)
            return list((await session.scalars(query)).all())

    async def image_bytes(self, image_id: str) -> bytes:
        async with self.sessions() as session:
            image = await session.get(ImageRow, image_id)
        if image is None:
            raise NotFound(f"there is no image {image_id!r}")
        return await asyncio.to_thread(self.files.read, image.path)

    # --- where a job is shown ------------------------------------------------------------------------------

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

    async def job_for_message(self, message_id: int) -> str | None:
        """The job a front-end message shows (e.g. from a Discord message link), if any."""
        async with self.sessions() as session:
            rows = (await session.scalars(
                select(JobRow.id).where(JobRow.origin.contains(f'"message_id":{message_id}'))
            )).all()
        return rows[0] if rows else None

    # --- channel settings ----------------------------------------------------------------------------------

    async def channel_settings(self, channel_id: int) -> ChannelSettings:
        async with self.sessions() as session:
            row = await session.get(ChannelSettingsRow, channel_id)
        if row is None:
            return ChannelSettings(channel_id=channel_id)
        return ChannelSettings(channel_id=row.channel_id, guild_id=row.guild_id, spoilers=row.spoilers,
                               default_steps=row.default_steps, default_size=row.default_size,
                               max_count=row.max_count)

    async def set_channel_settings(self, settings: ChannelSettings) -> None:
        async with self.sessions.begin() as session:
            row = await session.get(ChannelSettingsRow, settings.channel_id)
            if row is None:
                row = ChannelSettingsRow(channel_id=settings.channel_id)
                session.add(row)
            row.guild_id, row.spoilers = settings.guild_id, settings.spoilers
            row.default_steps, row.default_size = settings.default_steps, settings.default_size
            row.max_count, row.updated_ms = settings.max_count, now_ms()

    # --- ownership -----------------------------------------------------------------------------------------

    async def owned_job(self, session: AsyncSession, job_id: str, actor: str, moderator: bool) -> JobRow:
        job = await self.load_job(session, job_id)
        self.check_owner(job, actor, moderator)
        return job

    async def owned_image(self, session: AsyncSession, image_id: str, actor: str, moderator: bool) -> ImageRow:
        image = await session.get(ImageRow, image_id)
        if image is None:
            raise NotFound(f"there is no image {image_id!r}; `easel jobs show JOB` lists a job's images")
        job = await session.get(JobRow, image.job_id)
        assert job is not None  # images go with their job (cascade)
        self.check_owner(job, actor, moderator)
        return image

    @staticmethod
    def check_owner(job: JobRow | JobDetail, actor: str, moderator: bool = False) -> None:
        if job.owner != actor and not moderator:
            raise NotPermitted(f"job {job.id} belongs to {job.owner}; only its owner can change it")
