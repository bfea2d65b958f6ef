"""Browsing the store: one page of a member's jobs (filtered by status, text and kept images) for thousands of jobs,
and a job's lineage (its parent and the jobs derived from it). Counting happens in SQL, so a page costs the same
however many jobs and images there are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ScalarSelect, Select, and_, func, or_, select

from jobs.models import JobStatus, JobSummary
from jobs.store.job_store import JobStore
from jobs.store.tables import ImageRow, JobRow, TaskRow

T = TypeVar("T", bound=tuple[Any, ...] | Any)


@dataclass(frozen=True)
class JobFilter:
    """What a listing shows: ``owner`` None means everyone's (moderators)."""

    owner: str | None = None
    status: JobStatus | None = None
    text: str = ""
    kept_only: bool = False


@dataclass(frozen=True)
class JobPage:
    jobs: list[JobSummary]
    total: int
    offset: int
    limit: int

    @property
    def has_next(self) -> bool:
        return self.offset + len(self.jobs) < self.total


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class Browse:
    def __init__(self, store: JobStore) -> None:
        self.store = store

    async def page(self, where: JobFilter, *, offset: int = 0, limit: int = 50) -> JobPage:
        """The newest jobs matching ``where``, ``limit`` from ``offset``, and how many match in all."""
        query, kept = _summary_query()
        total_query = _filtered(select(func.count()).select_from(JobRow), where, kept)
        query = _filtered(query, where, kept).order_by(JobRow.created_ms.desc(), JobRow.id)
        async with self.store.sessions() as session:
            total = int(await session.scalar(total_query) or 0)
            rows = (await session.execute(query.offset(offset).limit(limit))).all()
        return JobPage(jobs=[_summary(*row) for row in rows], total=total, offset=offset, limit=limit)

    async def derived(self, job_id: str) -> list[JobSummary]:
        """Jobs made from this one (upscale kept, img2img kept, rerun, retry...), oldest first."""
        query, _ = _summary_query()
        async with self.store.sessions() as session:
            rows = (await session.execute(
                query.where(JobRow.parent_job_id == job_id).order_by(JobRow.created_ms, JobRow.id)
            )).all()
        return [_summary(*row) for row in rows]


def _summary_query() -> tuple[Select[Any], ScalarSelect[int]]:
    """Jobs with their task, image and kept-image counts (correlated subqueries: no rows are loaded to count)."""
    live = and_(ImageRow.job_id == JobRow.id, ImageRow.deleted.is_(False))
    images = select(func.count()).where(live).correlate(JobRow).scalar_subquery()
    kept = select(func.count()).where(live, ImageRow.kept.is_(True)).correlate(JobRow).scalar_subquery()
    tasks = select(func.count()).where(TaskRow.job_id == JobRow.id).correlate(JobRow).scalar_subquery()
    return select(JobRow, tasks, images, kept), kept


def _filtered(query: Select[T], where: JobFilter, kept: ScalarSelect[int]) -> Select[T]:
    if where.owner is not None:
        query = query.where(JobRow.owner == where.owner)
    if where.status is not None:
        query = query.where(JobRow.status == where.status)
    if where.text.strip():
        pattern = f"%{_escaped(where.text.strip())}%"
        query = query.where(or_(JobRow.spec.ilike(pattern, escape="\\"), JobRow.id.ilike(pattern, escape="\\")))
    if where.kept_only:
        query = query.where(kept > 0)
    return query


def _summary(job: JobRow, tasks: int, images: int, kept: int) -> JobSummary:
    return JobSummary(id=job.id, owner=job.owner, action=job.action, status=job.status, created_ms=job.created_ms,
                      tasks=tasks, images=images, kept=kept)
