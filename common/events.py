"""Task events on one Redis Stream per deployment.

Workers publish ``started``, ``progress``, ``finished`` and ``failed``; the submitting front end publishes ``queued``.
Consumers read the stream with a blocking XREAD from the id they last saw, so nothing is polled per task and a
consumer that remembers its last id loses nothing across a restart.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field
from redis.asyncio import Redis

from common.keys import Keys
from common.models import ImageBytes
from common.tasks import now_ms

_FIELD = b"e"


class EventType(StrEnum):
    QUEUED = "queued"
    STARTED = "started"
    SWITCHING = "switching"  # the worker is loading the task's checkpoint
    PROGRESS = "progress"
    RETRYING = "retrying"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = {EventType.FINISHED, EventType.FAILED, EventType.CANCELLED}


class TaskEvent(BaseModel):
    """Something that happened to a task."""

    type: EventType
    task_id: str
    job_id: str
    at_ms: int = Field(default_factory=now_ms, description="When it happened, epoch milliseconds.")
    worker: str | None = Field(default=None, description="Worker concerned (started and after).")
    position: int | None = Field(default=None, description="Place in line: 0 running, 1 next, ...")
    step: int | None = Field(default=None, description="Sampling steps done (progress).")
    steps: int | None = Field(default=None, description="Sampling steps in all (progress).")
    progress: float | None = Field(default=None, description="Fraction done, 0-1 (progress).")
    eta_s: float | None = Field(default=None, description="The WebUI's estimate of time left (progress).")
    preview: ImageBytes | None = Field(default=None, description="Small JPEG of the image so far (progress).")
    message: str | None = Field(default=None, description="Failure reason or note, in words for the user.")
    code: str | None = Field(default=None, description="FailureCode of a failure.")


class EventStream:
    """Publish to and read from the deployment's event stream."""

    def __init__(self, redis: Redis, keys: Keys, *, maxlen: int = 100_000) -> None:
        self._redis = redis
        self._key = keys.events
        self._maxlen = maxlen

    async def publish(self, event: TaskEvent) -> str:
        entry_id = await self._redis.xadd(
            self._key, {_FIELD: event.model_dump_json(exclude_none=True)}, maxlen=self._maxlen, approximate=True
        )
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    async def last_id(self) -> str:
        """The id of the newest entry ("0-0" when empty): read after it to see only what comes next."""
        entries = await self._redis.xrevrange(self._key, count=1)
        if not entries:
            return "0-0"
        entry_id = entries[0][0]
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    async def read(self, after: str, *, block_ms: int = 1000, count: int = 100) -> list[tuple[str, TaskEvent]]:
        """Events after ``after``, waiting up to ``block_ms`` for the first one."""
        reply = await self._redis.xread({self._key: after}, block=block_ms, count=count)
        events = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                key = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                events.append((key, TaskEvent.model_validate_json(fields[_FIELD])))
        return events
