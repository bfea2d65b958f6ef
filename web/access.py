"""Ownership checks for every route that names a job, an image or a task: unknown ids are 404, other members' 403."""

from __future__ import annotations

from common.errors import NotFound, NotPermitted
from jobs.models import JobDetail
from jobs.service import JobService
from jobs.store.tables import ImageRow
from web.auth import Viewer


async def job_for(jobs: JobService, viewer: Viewer, job_id: str) -> JobDetail:
    detail = await jobs.store.job(job_id)
    if not viewer.may_see(detail.owner):
        raise NotPermitted(f"job {job_id} is not yours")
    return detail


async def image_for(jobs: JobService, viewer: Viewer, image_id: str) -> ImageRow:
    async with jobs.store.sessions() as session:
        return await jobs.store.owned_image(session, image_id, viewer.owner, viewer.moderator)


async def task_owner(jobs: JobService, task_id: str) -> str:
    """Whose task this is: from the store, else from the queue's record of its job."""
    job_id = task_id.rpartition(".")[0]
    try:
        return (await jobs.store.job(job_id)).owner
    except NotFound:
        record = await jobs.client.job(job_id)
        if record is None or task_id not in record.task_ids:
            raise NotFound(f"there is no task {task_id!r}") from None
        return record.owner
