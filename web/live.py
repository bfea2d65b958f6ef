"""The web server's one view of the live queue, shared by every open page.

One reader follows the event stream (progress, endings) and one ticker re-reads the queue's order, places and ETAs
and the worker registry about once a second — only while someone watches — so 50 open pages cost the same Redis
traffic as one. Pages subscribe to topics (``queue``, ``workers``, ``job:<id>``) and are told when theirs changed;
what changed is rendered for each page by its SSE handler. Tasks that end are stored in the job store here too
(:meth:`jobs.recording.Recording.sync`), so a job page fills in as its images arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

from common.events import TERMINAL, EventType, TaskEvent
from common.queue.models import QueuedTask
from common.registry import WorkerInfo
from jobs.service import JobService

log = logging.getLogger(__name__)

TICK_S = 1.0
QUEUE_ROWS = 200  # tasks a queue page shows; the rest is counted
SYNC_EVERY_S = 5.0  # a store sync of everything pending, for endings whose event was missed


@dataclass
class QueueRow:
    place: int
    task_id: str
    job_id: str
    owner: str
    kind: str
    checkpoint: str | None
    worker: str | None
    eta_ms: int | None
    step: int = 0
    steps: int = 0

    @property
    def percent(self) -> int:
        return int(100 * self.step / self.steps) if self.steps else 0


@dataclass
class Snapshot:
    """What the Queue and Workers pages show; ``version`` grows whenever it changes."""

    version: int = 0
    rows: list[QueueRow] = field(default_factory=list)
    depth: int = 0
    workers: list[WorkerInfo] = field(default_factory=list)


class LiveHub:
    def __init__(self, jobs: JobService) -> None:
        self.jobs = jobs
        self.snapshot = Snapshot()
        self.progress: dict[str, tuple[int, int]] = {}  # task id -> (step, steps) while it runs
        self._subscribers: dict[asyncio.Queue[str], frozenset[str]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.outage = jobs.outage("the web's live view")
        self.enabled = jobs.recording.has_queue  # without Redis the web shows the store alone

    # --- subscribing ------------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def subscribe(self, *topics: str) -> AsyncIterator[asyncio.Queue[str]]:
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=16)
        self._subscribers[queue] = frozenset(topics)
        try:
            yield queue
        finally:
            del self._subscribers[queue]

    @property
    def watchers(self) -> int:
        return len(self._subscribers)

    def _wants(self, prefix: str) -> bool:
        return any(t.startswith(prefix) for topics in self._subscribers.values() for t in topics)

    def notify(self, topic: str) -> None:
        for queue, topics in self._subscribers.items():
            if topic in topics:
                with contextlib.suppress(asyncio.QueueFull):  # it is behind; it will render the newest state anyway
                    queue.put_nowait(topic)

    # --- running ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        if not self.enabled:
            return
        self._tasks = [asyncio.create_task(self._guarded(self._read_events), name="web-events"),
                       asyncio.create_task(self._guarded(self._tick), name="web-tick")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _guarded(self, loop: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await loop()
            except asyncio.CancelledError:
                raise
            except Exception:  # a Redis or store hiccup must not stop the live view
                log.exception("the web's live view failed a step; it carries on")
                await asyncio.sleep(1)

    async def _read_events(self) -> None:
        client = self.jobs.client
        after = await self.outage.call(client.events.last_id)
        while True:
            batch = await self.outage.call(partial(client.events.read, after, block_ms=1000))
            ended: set[str] = set()
            for entry_id, event in batch:
                after = entry_id
                self._apply(event)
                if event.type in TERMINAL:
                    ended.add(event.job_id)
            for job_id in ended:
                await self.jobs.recording.sync(job_id)
                self.notify(f"job:{job_id}")

    def _apply(self, event: TaskEvent) -> None:
        if event.type == EventType.PROGRESS:
            self.progress[event.task_id] = (event.step or 0, event.steps or 0)
            self.notify(f"job:{event.job_id}")
        elif event.type in TERMINAL:
            self.progress.pop(event.task_id, None)
        elif event.type == EventType.STARTED:
            self.notify(f"job:{event.job_id}")

    async def _tick(self) -> None:
        last_sync = 0.0
        loop = asyncio.get_running_loop()
        while True:
            if self._wants("queue") or self._wants("workers"):
                await self.refresh()
            if loop.time() - last_sync >= SYNC_EVERY_S:
                last_sync = loop.time()
                report = await self.jobs.recording.sync()
                if report.finished_tasks or report.failed_tasks:
                    for topics in list(self._subscribers.values()):
                        for topic in topics:
                            if topic.startswith("job:"):
                                self.notify(topic)
            await asyncio.sleep(TICK_S)

    async def refresh(self) -> Snapshot:
        """Re-read the queue and the workers; subscribers are told if anything they show changed."""
        if not self.enabled:
            return self.snapshot
        client = self.jobs.client
        queued: list[QueuedTask] = await self.outage.call(partial(client.queue, limit=QUEUE_ROWS))
        estimates = await self.outage.call(partial(client.estimates, [t.meta.task_id for t in queued]))
        depth = await self.outage.call(client.queue_depth)
        workers = await self.outage.call(client.registry.live)
        rows = []
        for task in queued:
            meta, estimate = task.meta, estimates.get(task.meta.task_id)
            step, steps = self.progress.get(meta.task_id, (0, 0))
            rows.append(QueueRow(place=task.place, task_id=meta.task_id, job_id=meta.job_id, owner=meta.owner,
                                 kind=meta.kind, checkpoint=meta.checkpoint, worker=meta.worker,
                                 eta_ms=None if task.running or estimate is None else estimate.start_ms,
                                 step=step if task.running else 0, steps=steps if task.running else 0))
        old = self.snapshot
        queue_changed = (rows, depth) != (old.rows, old.depth)
        workers_changed = [_worker_key(w) for w in workers] != [_worker_key(w) for w in old.workers]
        if queue_changed or workers_changed:
            self.snapshot = Snapshot(version=old.version + 1, rows=rows, depth=depth, workers=workers)
            if queue_changed:
                self.notify("queue")
            if workers_changed:
                self.notify("workers")
        return self.snapshot


def _worker_key(worker: WorkerInfo) -> tuple[object, ...]:
    """What the Workers page shows of a worker (its heartbeat time alone is no change)."""
    return (worker.name, worker.state, worker.loaded_checkpoint, worker.current_task, worker.tasks_done,
            worker.seconds_per_work)
