"""Typed shapes of the queue protocol: task metadata, states, claims, listings and estimates."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class TaskState(StrEnum):
    """Where a task is, as the queue sees it."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # includes cancelled (the failure's code says which)
    MISSING = "missing"  # neither waiting, running nor finished: the queue lost it, or its result expired


class CancelOutcome(StrEnum):
    REMOVED = "removed"  # was waiting; will never run
    INTERRUPTING = "running"  # its worker was told to interrupt it
    GONE = "gone"  # already finished (or unknown)


class TaskMeta(BaseModel):
    """What pickers, estimators and listings need to know about a waiting or running task (the ``meta`` hash).

    The Lua scripts read and update it too (``lane``, ``key``, ``tries``, ``handbacks``, ``worker``).
    """

    task_id: str
    job_id: str
    owner: str
    kind: str
    checkpoint: str | None = Field(default=None, description="The checkpoint as the user asked for it.")
    lane: str = Field(default="any", description="Lane of tasks with the same requirements (common.queue.lanes).")
    enqueue_ms: int
    work: float = Field(description="Steps x megapixels x images (txt2img/img2img) or output megapixels.")
    priority: str = "default"
    vstart: float = Field(default=0.0, description="Virtual start time (start-time fair queueing).")
    key: float = Field(default=0.0, description="Fair key: place in line (lower runs first).")
    tries: int = Field(default=0, description="Starts so far (a start handed back uncounted is given back).")
    handbacks: int = Field(default=0, description="Times a worker's generation server failed it (unreachable, hung).")
    worker: str | None = Field(default=None, description="Worker running it now.")
    started_ms: int | None = Field(default=None, description="When that worker started it.")


@dataclass
class QueuedTask:
    """A task in the queue listing: running ones first, then waiting ones in fair order."""

    meta: TaskMeta
    running: bool
    place: int  # 0 running, 1 next, ...


@dataclass
class Claimed:
    """A task a worker has just claimed: its metadata and arq's payload (the TaskSpec JSON, inputs by reference)."""

    task_id: str
    meta: TaskMeta
    payload: dict[str, Any] | None  # None: the payload expired or was removed (the task cannot run)
    cancel_requested: bool


@dataclass
class Estimate:
    position: int  # 0 running, 1 next, ...
    start_ms: int | None  # None: no live worker can run it
    reason: str | None = None
