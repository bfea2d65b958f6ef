"""What the job layer returns: plain models, the same for the CLI (``--json``), the bot and the web.

:class:`JobStatus` and :class:`TaskStatus` are the states the store records and every front end shows; the live view of
a running job (:class:`LiveJob`, kept by :mod:`jobs.tracker`) uses the same :class:`TaskStatus`.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, Field

from common.models import ImageBytes
from common.tasks import TaskResult


class TaskStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def pending(self) -> bool:
        """Still queued or running: its outcome is not known yet."""
        return self in (TaskStatus.QUEUED, TaskStatus.RUNNING)


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    PARTIAL = "partial"  # ended with some tasks done and some failed or cancelled
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def pending(self) -> bool:
        return self in (JobStatus.QUEUED, JobStatus.RUNNING)

    @classmethod
    def of(cls, tasks: Iterable[TaskStatus]) -> JobStatus:
        """A job's status from its tasks' statuses."""
        statuses = set(tasks)
        if any(status.pending for status in statuses):
            started = statuses & {TaskStatus.RUNNING, TaskStatus.DONE}
            return cls.RUNNING if started else cls.QUEUED
        if statuses == {TaskStatus.DONE}:
            return cls.DONE
        if statuses <= {TaskStatus.CANCELLED}:
            return cls.CANCELLED
        return cls.PARTIAL if TaskStatus.DONE in statuses else cls.FAILED


class ImageDetail(BaseModel):
    id: str = Field(description="`<task id>.<n>`")
    job_id: str
    task_id: str
    file: str = Field(description="Absolute path of the PNG (infotext in its `parameters` chunk).")
    seed: int
    width: int
    height: int
    kept: bool
    deleted: bool
    parent_image_id: str | None = Field(default=None, description="The image this one was derived from.")
    infotext: str


class TaskDetail(BaseModel):
    id: str
    index: int
    kind: str
    label: str
    status: TaskStatus
    worker: str | None = None
    tries: int = 0
    error: str | None = None
    parent_image_id: str | None = None
    submitted_ms: int
    started_ms: int | None = None
    finished_ms: int | None = None
    images: list[ImageDetail] = Field(default_factory=list)


class JobDetail(BaseModel):
    id: str
    owner: str
    action: str = Field(description="generate, upscale-kept, img2img-kept, rerun, retry, upscale or variation.")
    spec: str
    parent_job_id: str | None = None
    status: JobStatus
    created_ms: int
    tasks: list[TaskDetail] = Field(default_factory=list)

    @property
    def images(self) -> list[ImageDetail]:
        return [image for task in self.tasks for image in task.images]


class JobSummary(BaseModel):
    id: str
    owner: str
    action: str
    status: JobStatus
    created_ms: int
    tasks: int
    images: int
    kept: int


class SyncReport(BaseModel):
    stored_images: int = 0
    finished_tasks: int = 0
    failed_tasks: int = 0
    requeued_tasks: int = 0
    lost_tasks: int = 0


class PurgeReport(BaseModel):
    dry_run: bool
    images: list[str] = Field(default_factory=list, description="Ids of the purged (or purgeable) images.")
    bytes: int = 0


class ChannelSettings(BaseModel):
    """Defaults and limits of one channel (set by its admins)."""

    channel_id: int
    guild_id: int | None = None
    spoilers: bool = Field(default=False, description="Send images as spoilers (outside age-restricted channels).")
    default_steps: int | None = None
    default_size: str | None = None
    max_count: int | None = Field(default=None, description="Most images per request in this channel.")


# --- the live view of a running job (jobs.tracker) ---------------------------------------------------------------


class LiveTask(BaseModel):
    """What a front end shows about one task while its job runs."""

    task_id: str
    label: str = ""
    status: TaskStatus = TaskStatus.QUEUED
    position: int | None = Field(default=None, description="Place in line: 0 running, 1 next, ...")
    eta_ms: int | None = Field(default=None, description="Expected start (epoch ms) while it waits.")
    step: int = Field(default=0, description="Sampling steps done.")
    steps: int = Field(default=0, description="Sampling steps in all (0 until the first progress).")
    worker: str | None = None
    preview: ImageBytes | None = Field(default=None, description="The latest preview of the image (small JPEG).")
    message: str | None = Field(default=None, description="A note (loading a checkpoint, retrying) or the failure.")
    result: TaskResult | None = Field(default=None, description="The result, once done (if the tracker fetches it).")

    @property
    def done(self) -> bool:
        return not self.status.pending


class LiveJob(BaseModel):
    """The live view of one job: its tasks in order."""

    job_id: str
    tasks: dict[str, LiveTask] = Field(default_factory=dict)
    preview: ImageBytes | None = Field(default=None, description="The newest preview of any of its tasks.")

    @property
    def done(self) -> bool:
        return all(task.done for task in self.tasks.values())

    @property
    def eta_ms(self) -> int | None:
        """When the first waiting task is expected to start."""
        starts = [t.eta_ms for t in self.tasks.values() if t.status == TaskStatus.QUEUED and t.eta_ms is not None]
        return min(starts) if starts else None
