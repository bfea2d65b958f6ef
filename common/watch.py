"""Follow one job to its end: positions, progress and results, from the event stream.

Events are pushed (blocking XREAD); positions are refreshed once a second, and a task that left the queue without
an event reaching us (e.g. the stream was trimmed) is settled by reading its arq result, so nothing hangs forever.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from common.errors import FailureCode, TaskFailed
from common.events import TERMINAL, EventType, TaskEvent
from common.queue import EaselClient
from common.tasks import JobRecord, TaskResult


@dataclass
class TaskView:
    """What a front end shows about one task."""

    task_id: str
    label: str
    state: EventType = EventType.QUEUED
    position: int | None = None
    worker: str | None = None
    step: int = 0
    steps: int = 0
    message: str | None = None
    result: TaskResult | None = None
    preview: bytes | None = None

    @property
    def done(self) -> bool:
        return self.state in TERMINAL


@dataclass
class JobView:
    record: JobRecord
    tasks: dict[str, TaskView] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return all(t.done for t in self.tasks.values())


class JobWatcher:
    """Iterate over a job's state until every task has finished, failed or been cancelled."""

    def __init__(self, client: EaselClient, record: JobRecord, after: str, *, refresh_s: float = 1.0) -> None:
        self._client = client
        self._after = after
        self._refresh_s = refresh_s
        labels = record.labels or [""] * len(record.task_ids)
        self.view = JobView(record, {t: TaskView(t, label) for t, label in zip(record.task_ids, labels, strict=True)})

    async def __aiter__(self) -> AsyncIterator[JobView]:
        last_refresh = 0.0
        while not self.view.done:
            for entry_id, event in await self._client.events.read(self._after, block_ms=250):
                self._after = entry_id
                await self._apply(event)
            if time.monotonic() - last_refresh >= self._refresh_s:
                last_refresh = time.monotonic()
                await self._refresh()
            yield self.view

    async def _apply(self, event: TaskEvent) -> None:
        task = self.view.tasks.get(event.task_id)
        if task is None or task.done:
            return
        task.worker = event.worker or task.worker
        if event.type in TERMINAL:  # the result (or the failure) is stored before these are published
            await self._settle(task)
            return
        task.state, task.message = event.type, event.message
        if event.position is not None:
            task.position = event.position
        if event.type == EventType.PROGRESS:
            task.step, task.steps = event.step or 0, event.steps or 0
            if event.has_preview:
                task.preview = await self._client.events.preview(event.task_id) or task.preview

    async def _refresh(self) -> None:
        pending = [t for t in self.view.tasks.values() if not t.done]
        positions = await self._client.positions([t.task_id for t in pending])
        for task in pending:
            task.position = positions[task.task_id]
            if task.position is None:  # left the queue: the result says how it ended
                await self._settle(task)

    async def _settle(self, task: TaskView) -> None:
        try:
            result = await self._client.result(task.task_id)
        except TaskFailed as exc:
            cancelled = exc.code == FailureCode.CANCELLED
            task.state, task.message = (EventType.CANCELLED if cancelled else EventType.FAILED), str(exc)
            return
        if result is not None:
            task.state, task.result, task.position = EventType.FINISHED, result, None
