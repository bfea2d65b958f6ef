"""Following a live job: one tracker for every front end (the CLI's progress bars, the bot's job messages, the web).

A :class:`JobTracker` turns what Redis says about a job into a typed :class:`~jobs.models.LiveJob`: the events of its
tasks (:meth:`JobTracker.apply`), their places in line and expected starts (:meth:`JobTracker.refresh`), and — when
an event was missed (the stream was trimmed, or the front end was away) — how a task that left the line ended, read
from its stored result. The CLI lets it read the event stream itself (:meth:`JobTracker.follow`); the bot feeds it
the events of its own consumer group.

Every Redis read goes through one :class:`~common.outage.Outage`, so a follower waits out a Redis restart (one log
line when it begins, one when it ends) and carries on where it was.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import partial
from typing import TypeVar

from common.errors import FailureCode, TaskFailed
from common.events import TERMINAL, EventType, TaskEvent
from common.outage import Outage
from common.queue import EaselClient, TaskState
from common.tasks import TaskResult
from jobs.models import LiveJob, LiveTask, TaskStatus

T = TypeVar("T")

_ENDED = {EventType.FINISHED: TaskStatus.DONE, EventType.FAILED: TaskStatus.FAILED,
          EventType.CANCELLED: TaskStatus.CANCELLED}


class JobTracker:
    """The live view of one job, kept up to date from Redis; ``view`` is what front ends render."""

    def __init__(self, client: EaselClient, job_id: str, task_ids: Sequence[str], labels: Sequence[str] = (), *,
                 outage: Outage, results: bool = False) -> None:
        """``results``: also fetch each finished task's result (its images) into the view; front ends that read
        images from the store leave it off, so nothing is downloaded twice."""
        self._client = client
        self._outage = outage
        self._results = results
        names = list(labels) or [""] * len(task_ids)
        self.view = LiveJob(job_id=job_id, tasks={t: LiveTask(task_id=t, label=label)
                                                  for t, label in zip(task_ids, names, strict=True)})

    async def redis(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run one Redis call, waiting out an outage (for front ends that read more around the tracker)."""
        return await self._outage.call(work)

    # --- following --------------------------------------------------------------------------------------------

    async def follow(self, after: str, *, refresh_s: float = 1.0) -> AsyncIterator[LiveJob]:
        """Read the event stream after ``after`` and yield the view after each batch, until every task has ended."""
        last_refresh = float("-inf")
        while not self.view.done:
            batch = await self.redis(partial(self._client.events.read, after, block_ms=250))
            for entry_id, event in batch:
                after = entry_id
                await self.apply(event)
            if time.monotonic() - last_refresh >= refresh_s:
                last_refresh = time.monotonic()
                await self.refresh()
            yield self.view

    async def apply(self, event: TaskEvent) -> bool:
        """Take one event into the view; False when it is not about a task of this job still under way."""
        task = self.view.tasks.get(event.task_id)
        if task is None or task.done:
            return False
        task.worker = event.worker or task.worker
        if event.type in TERMINAL:
            if event.type == EventType.FINISHED and self._results:
                await self._settle(task)  # the result is stored before the event is published
            else:
                self._end(task, _ENDED[event.type], event.message)
            return True
        task.message = event.message
        if event.type == EventType.QUEUED:
            task.position = event.position if event.position is not None else task.position
        elif event.type == EventType.RETRYING:  # handed back: it waits for its next start
            task.status, task.step, task.steps = TaskStatus.QUEUED, 0, 0
        else:  # started, switching checkpoint, progress
            task.status, task.position, task.eta_ms = TaskStatus.RUNNING, 0, None
        if event.type == EventType.PROGRESS:
            task.step, task.steps = event.step or 0, event.steps or 0
            preview = await self._preview(event)
            if preview is not None:
                task.preview = self.view.preview = preview
        return True

    async def _preview(self, event: TaskEvent) -> bytes | None:
        """The newest preview of the event's task: the only place that knows where previews come from (a short-lived
        key beside the stream, which a progress event says is there)."""
        if not event.has_preview:
            return None
        return await self.redis(partial(self._client.events.preview, event.task_id))

    async def refresh(self) -> None:
        """Places in line and expected starts of the tasks still under way; a task that left the line without its
        ending reaching us is settled from its stored result."""
        pending = [t for t in self.view.tasks.values() if not t.done]
        if not pending:
            return
        estimates = await self.redis(self._client.estimates)
        for task in pending:
            estimate = estimates.get(task.task_id)
            if estimate is None:  # neither queued nor running any more: its result says how it ended
                await self._settle(task)
                continue
            task.position = estimate.position
            if task.status == TaskStatus.QUEUED and estimate.position == 0:  # its start did not reach us
                task.status, task.eta_ms = TaskStatus.RUNNING, None
            elif task.status == TaskStatus.QUEUED:
                task.eta_ms = estimate.start_ms
                task.message = estimate.reason or task.message

    async def _settle(self, task: LiveTask) -> None:
        state, outcome = await self.redis(lambda: self._client.lookup(task.task_id))
        if isinstance(outcome, TaskResult):
            self._end(task, TaskStatus.DONE, None)
            task.result = outcome if self._results else None
        elif isinstance(outcome, TaskFailed):
            cancelled = outcome.code == FailureCode.CANCELLED
            self._end(task, TaskStatus.CANCELLED if cancelled else TaskStatus.FAILED, str(outcome))
        elif state == TaskState.MISSING:
            self._end(task, TaskStatus.FAILED, f"task {task.task_id} is unknown or its result has expired")

    @staticmethod
    def _end(task: LiveTask, status: TaskStatus, message: str | None) -> None:
        task.status, task.message, task.position, task.eta_ms = status, message, None, None
