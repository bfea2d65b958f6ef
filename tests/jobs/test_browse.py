"""Pages of jobs for thousands of jobs (filters by status, text and kept, counted in SQL), lineage of jobs, and
WebP thumbnails with a stable ETag."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from common.settings import Settings
from jobs.browse import JobFilter
from jobs.models import JobStatus
from jobs.service import JobService
from jobs.store.tables import ImageRow, JobRow, TaskRow
from jobs.thumbnails import etag_of
from tests.conftest import png_bytes


async def _fill(jobs: JobService, count: int) -> None:
    """``count`` jobs of one task and one image each, written straight into the store (no queue needed)."""
    async with jobs.store.sessions.begin() as session:
        for n in range(count):
            job_id = f"{n:016x}"
            owner = "cli:me" if n % 2 == 0 else "cli:other"
            status = JobStatus.DONE if n % 3 else JobStatus.FAILED
            session.add(JobRow(id=job_id, owner=owner, origin='{"source":"cli"}', action="generate",
                               spec=f"a {'fox' if n % 5 == 0 else 'cat'} number {n}", status=status,
                               created_ms=1000 + n, updated_ms=1000 + n,
                               parent_job_id=f"{0:016x}" if n in (10, 20) else None))
            session.add(TaskRow(id=f"{job_id}.0", job_id=job_id, index=0, kind="txt2img", label="", request="{}",
                                status=status, submitted_ms=1000 + n))
            path = f"images/{job_id}/0-0-1.png"
            jobs.store.files.write(path, png_bytes(96, 64))
            session.add(ImageRow(id=f"{job_id}.0.0", task_id=f"{job_id}.0", job_id=job_id, index=0, path=path,
                                 seed=1, infotext="a fox", width=96, height=64, kept=n % 7 == 0, deleted=False,
                                 created_ms=1000 + n))


async def test_pages_filters_and_counts(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    async with JobService.open(make_settings(data_dir=str(tmp_path)), queue=False) as jobs:
        await _fill(jobs, 300)
        mine = await jobs.browse.page(JobFilter(owner="cli:me"), offset=0, limit=50)
        assert mine.total == 150 and len(mine.jobs) == 50 and mine.has_next
        assert mine.jobs[0].id == f"{298:016x}" and all(j.owner == "cli:me" for j in mine.jobs)
        last = await jobs.browse.page(JobFilter(owner="cli:me"), offset=100, limit=50)
        assert len(last.jobs) == 50 and not last.has_next
        failed = await jobs.browse.page(JobFilter(status=JobStatus.FAILED))
        assert failed.total == 100 and all(j.status == JobStatus.FAILED for j in failed.jobs)
        foxes = await jobs.browse.page(JobFilter(text="FOX"))
        assert foxes.total == 60
        assert (await jobs.browse.page(JobFilter(text="100%"))).total == 0  # LIKE wildcards are literal
        kept = await jobs.browse.page(JobFilter(owner="cli:me", kept_only=True), limit=500)
        assert kept.total == len([n for n in range(0, 300, 2) if n % 7 == 0])
        assert all(j.kept == 1 and j.images == 1 and j.tasks == 1 for j in kept.jobs)
        assert [j.id for j in await jobs.browse.derived(f"{0:016x}")] == [f"{10:016x}", f"{20:016x}"]

        async with jobs.store.sessions() as session:
            image = await session.get(ImageRow, f"{0:016x}.0.0")
        assert image is not None
        thumb = await jobs.thumbnails.get(image, 256)
        assert thumb.data[8:12] == b"WEBP" and thumb.etag == etag_of(image.id, 256)
        again = await jobs.thumbnails.get(image, 256)  # from the cache
        assert again == thumb
        assert jobs.store.files.exists(f"thumbs/{image.job_id}/{image.id}-256.webp")
        jobs.store.files.remove_job(image.job_id)
        assert not jobs.store.files.exists(f"thumbs/{image.job_id}/{image.id}-256.webp")
