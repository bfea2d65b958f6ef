"""Task events on one Redis Stream per deployment.

Workers publish ``started``, ``progress``, ``finished`` and ``failed``; the submitting front end publishes ``queued``.
Consumers read the stream with a blocking XREAD from the id they last saw, so nothing is polled per task and a
consumer that remembers its last id loses nothing across a restart.

Entries stay small: a progress preview (a JPEG) never goes into the stream; the worker keeps the latest one per task
under a short-lived key (:meth:`EventStream.set_preview`) and the event only says that one is there. The stream is
trimmed by length (``EASEL_EVENTS_MAXLEN``) and by age (``EASEL_EVENTS_MAX_AGE_S``).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from common.queue.keys import Keys
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
    has_preview: bool | None = Field(default=None, description="A preview of the image so far is stored (progress).")
    message: str | None = Field(default=None, description="Failure reason or note, in words for the user.")
    code: str | None = Field(default=None, description="FailureCode of a failure.")


PREVIEW_TTL_S = 120  # a preview outlives a stalled generation's last progress by this much
TRIM_EVERY = 64  # publishes between two trims by age


class EventStream:
    """Publish to and read from the deployment's event stream, and keep the latest preview of each task."""

    def __init__(self, redis: Redis, keys: Keys, *, maxlen: int = 100_000, max_age_s: float = 86_400) -> None:
        self._redis = redis
        self._keys = keys
        self._key = keys.events
        self._maxlen = maxlen
        self._max_age_ms = int(max_age_s * 1000)
        self._published = 0

    def add_to(self, pipe: Pipeline, event: TaskEvent) -> None:
        """Queue the XADD of ``event`` on a pipeline (several events in one round trip)."""
        pipe.xadd(self._key, {_FIELD: event.model_dump_json(exclude_none=True)}, maxlen=self._maxlen,
                  approximate=True)
        self._published += 1
        if self._published % TRIM_EVERY == 0:
            pipe.xtrim(self._key, minid=f"{now_ms() - self._max_age_ms}-0", approximate=True)

    async def publish(self, event: TaskEvent) -> str:
        async with self._redis.pipeline(transaction=False) as pipe:
            self.add_to(pipe, event)
            entry_id = (await pipe.execute())[0]
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    async def set_preview(self, task_id: str, jpeg: bytes) -> None:
        await self._redis.set(self._keys.preview(task_id), jpeg, ex=PREVIEW_TTL_S)

    async def preview(self, task_id: str) -> bytes | None:
        """The latest preview of a running task (None once it ended, or if none was made)."""
        data = await self._redis.get(self._keys.preview(task_id))
        return bytes(data) if data is not None else None

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


class EventConsumer:
    """A durable reader of the stream: one Redis consumer group per front end (e.g. ``bot``).

    Events a consumer read but did not :meth:`ack` are handed to it again first after a restart (from its pending
    list), then new ones; acknowledged ones never come back. Ack after handling, and use the entry id as an
    idempotency key where handling has side effects outside Redis.
    """

    def __init__(self, redis: Redis, keys: Keys, *, group: str, consumer: str = "main") -> None:
        self._redis = redis
        self._key = keys.events
        self.group, self.consumer = group, consumer
        self._pending_done = False

    async def ensure_group(self, *, from_start: bool = False) -> None:
        """Create the group if needed: at the stream's end (only new events) or its start (all it holds)."""
        try:
            await self._redis.xgroup_create(self._key, self.group, id="0" if from_start else "$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read(self, *, block_ms: int = 1000, count: int = 100) -> list[tuple[str, TaskEvent]]:
        """Pending (read before, never acknowledged) events first, then new ones, waiting up to ``block_ms``."""
        if not self._pending_done:
            pending = await self._xreadgroup("0", None, count)
            if pending:
                return pending
            self._pending_done = True
        return await self._xreadgroup(">", block_ms, count)

    async def ack(self, *entry_ids: str) -> None:
        if entry_ids:
            await self._redis.xack(self._key, self.group, *entry_ids)

    async def _xreadgroup(self, start: str, block_ms: int | None, count: int) -> list[tuple[str, TaskEvent]]:
        reply = await self._redis.xreadgroup(
            self.group, self.consumer, {self._key: start}, count=count, block=block_ms
        )
        events = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                key = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                if fields:  # a pending entry trimmed from the stream comes back empty: nothing to hand over
                    events.append((key, TaskEvent.model_validate_json(fields[_FIELD])))
                else:
                    await self.ack(key)
        return events
