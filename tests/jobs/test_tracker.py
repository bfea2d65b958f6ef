"""The live-job tracker: events make the live view, and an ending it never heard of is read from the stored result."""

from __future__ import annotations

import asyncio

from common.events import EventType, TaskEvent
from common.models import Txt2ImgRequest
from common.outage import Outage
from common.queue import EaselClient
from common.tasks import JobRecord, Origin
from jobs.models import LiveJob, TaskStatus
from jobs.tracker import JobTracker
from tests.conftest import StubServer

CLI = Origin(source="cli")
NOTHING_AFTER = "9999999999999-0"  # read the stream after this: no event ever reaches the tracker


def tracker(client: EaselClient, record: JobRecord, *, results: bool = False) -> JobTracker:
    return JobTracker(client, record.job_id, record.task_ids, record.labels, results=results,
                      outage=Outage("test", limit_s=30))


async def follow(following: JobTracker, after: str) -> LiveJob:
    async def run() -> None:
        async for _ in following.follow(after, refresh_s=0.1):
            pass

    await asyncio.wait_for(run(), 20)
    return following.view


async def test_events_make_the_live_view(client: EaselClient) -> None:
    record = await client.submit("cli:me", CLI, [Txt2ImgRequest(prompt="a"), Txt2ImgRequest(prompt="b")], ["a", "b"])
    first, second = record.task_ids
    live = tracker(client, record)

    def event(type_: EventType, task_id: str = first, **fields: object) -> TaskEvent:
        return TaskEvent.model_validate({"type": type_, "task_id": task_id, "job_id": record.job_id, **fields})

    await live.apply(event(EventType.QUEUED, second, position=2))
    await live.apply(event(EventType.STARTED, worker="gpu0", position=0))
    await client.events.set_preview(first, b"jpeg")  # previews live beside the stream; the event says one is there
    await live.apply(event(EventType.PROGRESS, worker="gpu0", step=4, steps=20, has_preview=True))
    task = live.view.tasks[first]
    assert (task.status, task.position, task.step, task.steps, task.worker) == (TaskStatus.RUNNING, 0, 4, 20, "gpu0")
    assert task.preview == b"jpeg" and live.view.preview == b"jpeg"
    assert (live.view.tasks[second].status, live.view.tasks[second].position) == (TaskStatus.QUEUED, 2)

    await live.apply(event(EventType.RETRYING, message="WebUI unreachable; retrying in 2s"))
    assert (task.status, task.step, task.message) == (TaskStatus.QUEUED, 0, "WebUI unreachable; retrying in 2s")
    await live.apply(event(EventType.FAILED, message="CUDA out of memory"))
    assert (task.status, task.message, task.done) == (TaskStatus.FAILED, "CUDA out of memory", True)
    assert not await live.apply(event(EventType.FINISHED))  # an ended task stays ended
    assert not await live.apply(event(EventType.STARTED, "other.0"))  # another job's task
    await live.apply(event(EventType.CANCELLED, second, message="cancelled by cli:me"))
    assert live.view.done and live.view.tasks[second].status == TaskStatus.CANCELLED


async def test_an_ending_that_was_missed_is_read_from_the_stored_result(
    client: EaselClient, stub: StubServer, start_worker  # type: ignore[no-untyped-def]
) -> None:
    await start_worker(stub.url)
    request = Txt2ImgRequest(prompt="x", steps=2, width=64, height=64, seed=5)
    record = await client.submit("cli:me", CLI, [request])
    view = await follow(tracker(client, record, results=True), NOTHING_AFTER)
    task = view.tasks[record.task_ids[0]]
    assert task.status == TaskStatus.DONE and task.result is not None and task.result.seeds == [5]

    record = await client.submit("cli:me", CLI, [request])
    view = await follow(tracker(client, record), NOTHING_AFTER)  # front ends that read images from the store
    assert view.tasks[record.task_ids[0]].status == TaskStatus.DONE and view.tasks[record.task_ids[0]].result is None


async def test_a_task_cancelled_unseen_ends_cancelled_with_the_reason(client: EaselClient) -> None:
    record = await client.submit("cli:me", CLI, [Txt2ImgRequest(prompt="x")])  # no worker: it waits
    live = tracker(client, record)
    await live.refresh()
    task = live.view.tasks[record.task_ids[0]]
    assert (task.status, task.position) == (TaskStatus.QUEUED, 1)
    await client.cancel_job(record.job_id, by="an operator")
    view = await follow(live, NOTHING_AFTER)
    assert view.tasks[record.task_ids[0]].status == TaskStatus.CANCELLED
    assert view.tasks[record.task_ids[0]].message == "cancelled by an operator"
