"""Fixtures of the job layer's tests: a job service on a real Redis and a SQLite store in the test's folder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from common.settings import Settings
from common.tasks import Origin
from jobs.models import JobDetail
from jobs.service import JobService
from jobs.store.tables import ImageRow

CLI = Origin(source="cli")
BASE: dict[str, Any] = {"kind": "txt2img", "prompt": "-", "steps": 3, "width": 64, "height": 64}
ME, OTHER = "cli:me", "cli:other"


@pytest.fixture
async def jobs(make_settings: Callable[..., Settings], tmp_path: Path) -> AsyncIterator[JobService]:
    async with JobService.open(make_settings(data_dir=str(tmp_path / "data"))) as service:
        yield service


async def settled(jobs: JobService, job_id: str, limit_s: float = 20) -> JobDetail:
    """The job once it has ended, syncing its results from Redis meanwhile."""
    async with asyncio.timeout(limit_s):
        while True:
            await jobs.recording.sync(job_id)
            detail = await jobs.store.job(job_id)
            if not detail.status.pending:
                return detail
            await asyncio.sleep(0.05)


async def image_rows(jobs: JobService) -> int:
    async with jobs.store.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(ImageRow)) or 0)
