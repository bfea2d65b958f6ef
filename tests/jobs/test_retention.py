"""Retention: deleted and old not-kept images are purged; kept images never."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import update

from common.settings import Settings
from jobs.service import JobService
from jobs.store.tables import ImageRow
from tests.conftest import StubServer
from tests.jobs.conftest import BASE, CLI, ME, settled


async def test_retention_purges_only_what_it_should(
    make_settings: Callable[..., Settings], tmp_path: Path, stub: StubServer, start_worker  # type: ignore[no-untyped-def]
) -> None:
    settings = make_settings(data_dir=str(tmp_path / "data"), retention_unkept_days=30, retention_deleted_days=1)
    async with JobService.open(settings) as jobs:
        await start_worker(stub.url)
        job = await settled(jobs, (await jobs.recording.submit_sweep(ME, CLI, "a | b | c | d", BASE)).job_id)
        old_kept, old_unkept, fresh_deleted, old_deleted = job.images
        await jobs.curation.set_kept(ME, [old_kept.id], True)
        await jobs.curation.delete_image(ME, fresh_deleted.id)
        await jobs.curation.delete_image(ME, old_deleted.id)
        day = 24 * 3600 * 1000
        async with jobs.store.sessions.begin() as session:
            await session.execute(update(ImageRow).where(ImageRow.id.in_([old_kept.id, old_unkept.id]))
                                  .values(created_ms=ImageRow.created_ms - 31 * day))
            await session.execute(update(ImageRow).where(ImageRow.id == old_deleted.id)
                                  .values(deleted_ms=ImageRow.deleted_ms - 2 * day))
        preview = await jobs.retention.purge(dry_run=True)
        assert sorted(preview.images) == sorted([old_unkept.id, old_deleted.id]) and preview.bytes > 0
        assert Path(old_unkept.file).exists()
        report = await jobs.retention.purge()
        assert sorted(report.images) == sorted(preview.images)
        remaining = {i.id for i in (await jobs.store.job(job.id)).images}
        assert remaining == {old_kept.id, fresh_deleted.id}
        assert not Path(old_unkept.file).exists() and not Path(old_deleted.file).exists()
        assert Path(old_kept.file).exists()
