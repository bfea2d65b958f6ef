"""What the job service returns: plain models, the same for the CLI (``--json``) and the bot."""

from __future__ import annotations

from pydantic import BaseModel, Field


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
    status: str
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
    action: str = Field(description="generate, upscale-kept, img2img-kept or rerun.")
    spec: str
    parent_job_id: str | None = None
    status: str
    created_ms: int
    tasks: list[TaskDetail] = Field(default_factory=list)

    @property
    def images(self) -> list[ImageDetail]:
        return [image for task in self.tasks for image in task.images]


class JobSummary(BaseModel):
    id: str
    owner: str
    action: str
    status: str
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
