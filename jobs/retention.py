"""Retention: deleted images and images never kept go once they are old enough; kept images stay forever."""

from __future__ import annotations

import asyncio

from sqlalchemy import delete, select

from common.settings import Settings
from common.tasks import now_ms
from jobs.models import PurgeReport
from jobs.store.job_store import JobStore
from jobs.store.tables import ImageRow

DAY_MS = 24 * 3600 * 1000


class Retention:
    """The purge of the image store, by the ``EASEL_RETENTION_*`` settings."""

    def __init__(self, store: JobStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    async def purge(self, *, dry_run: bool = False) -> PurgeReport:
        """Remove deleted images and images never kept once they are old enough; kept images stay forever."""
        now, settings, store = now_ms(), self.settings, self.store
        deleted_before = now - settings.retention_deleted_days * DAY_MS
        unkept_before = now - settings.retention_unkept_days * DAY_MS
        async with store.sessions() as session:
            rows = (await session.scalars(select(ImageRow).where(ImageRow.kept.is_(False)))).all()
        due = [r for r in rows if (r.deleted and (r.deleted_ms or 0) <= deleted_before)
               or (not r.deleted and r.created_ms <= unkept_before)]
        size = await asyncio.to_thread(store.files.size, [r.path for r in due])
        report = PurgeReport(dry_run=dry_run, images=[r.id for r in due], bytes=size)
        if dry_run or not due:
            return report
        async with store.sessions.begin() as session:  # rows first: a crash leaves orphan files, never dead rows
            await session.execute(delete(ImageRow).where(ImageRow.id.in_([r.id for r in due])))
        for row in due:
            await asyncio.to_thread(store.files.remove, row.path)
            await asyncio.to_thread(store.files.remove_thumbnails, row.job_id, row.id)
        async with store.engine.connect() as connection:  # VACUUM cannot run inside a transaction
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.exec_driver_sql("VACUUM")
        return report
