"""Jobs, tasks and results: the shapes that cross the queue.

A *job* is what a user asked for in one go; it expands into one or more *tasks*, each one WebUI call on one GPU.
A task travels to a worker as the arq payload :class:`TaskSpec` and comes back as :class:`TaskResult`.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Literal

from pydantic import BaseModel, Field

from common.models import GenerationRequest, ImageBytes, Text


def new_job_id() -> str:
    """A short random id (16 hex digits), never reused, so a stale id can never act on a later job."""
    return secrets.token_hex(8)


def task_id_for(job_id: str, index: int) -> str:
    return f"{job_id}.{index}"


def now_ms() -> int:
    return int(time.time() * 1000)


class Origin(BaseModel):
    """Where a job came from, so its results can be delivered there (a Discord message, or the CLI)."""

    source: Literal["cli", "discord", "demo"] = Field(description="Front end that submitted the job.")
    guild_id: int | None = Field(default=None, description="Discord guild, if any.")
    channel_id: int | None = Field(default=None, description="Discord channel to deliver to.")
    message_id: int | None = Field(default=None, description="Discord message showing the job.")


class TaskSpec(BaseModel):
    """One unit of GPU work: the arq job payload."""

    task_id: str = Field(description="`<job id>.<index>`; also the arq job id.")
    job_id: str = Field(description="The job this task belongs to.")
    index: int = Field(ge=0, description="Position of the task within its job.")
    owner: str = Field(description="Who asked for it (e.g. `discord:<user id>` or `cli:<user>`).")
    label: Text = Field(default="", description="What distinguishes this task within a sweep, e.g. `cfg=5`.")
    request: GenerationRequest = Field(description="What to generate.")
    submitted_ms: int = Field(default_factory=now_ms, description="Submit time, epoch milliseconds.")


class JobRecord(BaseModel):
    """A submitted job as stored in Redis (without the payloads, which live in the arq jobs)."""

    job_id: str
    owner: str
    origin: Origin
    task_ids: list[str]
    labels: list[str] = Field(default_factory=list)
    submitted_ms: int = Field(default_factory=now_ms)


class ImageOut(BaseModel):
    """One generated image."""

    png: ImageBytes = Field(description="PNG bytes with the infotext in the `parameters` chunk.")
    seed: int = Field(description="The seed that reproduces this image.")
    infotext: str = Field(description="A1111 infotext (same text as the PNG chunk).")
    width: int
    height: int


class TaskResult(BaseModel):
    """What a worker returns for a finished task."""

    task_id: str
    job_id: str
    worker: str = Field(description="Name of the worker that ran it.")
    images: list[ImageOut]
    seeds: list[int] = Field(description="Resolved seed of every image (seed + i in a batch).")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="Resolved parameters from the WebUI's `info` (sampler, steps, model...)."
    )
    checkpoint: str | None = Field(default=None, description="Checkpoint title the WebUI used.")
    tries: int = Field(default=1, description="Starts it took (retries and re-deliveries included).")
    submitted_ms: int = Field(default=0, description="When the task was queued (epoch ms).")
    started_ms: int = Field(description="When a worker started it (epoch ms).")
    finished_ms: int
