"""The worker pool with in-process workers: pickup, fair order, affinity, cancel, retries, events, registry."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from common.errors import FailureCode, InvalidRequest, TaskFailed
from common.events import EventConsumer, EventType, TaskEvent
from common.models import Txt2ImgRequest
from common.queue import CancelOutcome, EaselClient, messages
from common.registry import WorkerState
from common.settings import Settings
from common.tasks import Origin, TaskResult
from tests.conftest import StubServer

CLI = Origin(source="cli")
V15 = "v1-5-pruned-emaonly"
DREAM = "dreamshaper_8"


def small(seed: int = 1, steps: int = 2, **fields: Any) -> Txt2ImgRequest:
    return Txt2ImgRequest(prompt="x", steps=steps, width=64, height=64, seed=seed, **fields)


async def result_of(client: EaselClient, task_id: str, limit_s: float = 20) -> TaskResult:
    async with asyncio.timeout(limit_s):
        while True:
            result = await client.result(task_id)
            if result is not None:
                return result
            await asyncio.sleep(0.02)


async def failure_of(client: EaselClient, task_id: str, limit_s: float = 20) -> TaskFailed:
    async with asyncio.timeout(limit_s):
        while True:
            try:
                if await client.result(task_id) is not None:
                    pytest.fail(f"{task_id} finished")
            except TaskFailed as exc:
                return exc
            await asyncio.sleep(0.02)


async def eventually(check: Callable[[], Awaitable[Any]], limit_s: float = 5) -> Any:
    """Poll ``check`` until it returns something truthy."""
    async with asyncio.timeout(limit_s):
        while True:
            if value := await check():
                return value
            await asyncio.sleep(0.02)


async def events(client: EaselClient, kind: EventType | None = None) -> list[TaskEvent]:
    found = [event for _, event in await client.events.read("0-0", block_ms=10, count=10_000)]
    return [e for e in found if kind is None or e.type == kind]


async def started_order(client: EaselClient) -> list[str]:
    return [e.task_id for e in await events(client, EventType.STARTED)]


async def fault(stub: StubServer, mode: str, count: int = 1) -> None:
    async with httpx.AsyncClient() as http:
        (await http.post(f"{stub.url}/stub/faults", json={"mode": mode, "count": count})).raise_for_status()


# --- 1. pickup --------------------------------------------------------------------------------------------


async def test_a_new_task_wakes_an_idle_worker(client: EaselClient, stub: StubServer, start_worker) -> None:  # type: ignore[no-untyped-def]
    await start_worker(stub.url, worker_poll_s=5)  # the fallback poll alone would take up to 5 s
    await asyncio.sleep(0.3)  # idle now
    record = await client.submit("u:a", CLI, [small()])
    await result_of(client, record.task_ids[0], limit_s=2)


async def test_the_next_task_starts_when_the_current_one_ends(
    client: EaselClient, stub: StubServer, start_worker  # type: ignore[no-untyped-def]
) -> None:
    await start_worker(stub.url, worker_poll_s=5)
    record = await client.submit("u:a", CLI, [small(1), small(2), small(3)])
    for task_id in record.task_ids:
        await result_of(client, task_id, limit_s=3)


# --- 2. fair order, priority, limits ----------------------------------------------------------------------


async def test_each_user_gets_a_fair_share(client: EaselClient, stub: StubServer, start_worker) -> None:  # type: ignore[no-untyped-def]
    heavy = await client.submit("u:heavy", CLI, [small(i) for i in range(5)])
    light = await client.submit("u:light", CLI, [small(10), small(11)])
    await start_worker(stub.url)
    await result_of(client, heavy.task_ids[-1])
    h, li = heavy.task_ids, light.task_ids
    assert await started_order(client) == [h[0], li[0], h[1], li[1], h[2], h[3], h[4]]


async def test_priority_class_gets_a_head_start(make_settings: Callable[..., Settings], stub: StubServer,
                                                start_worker) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(priority_classes={"default": 0, "patron": 30})
    async with EaselClient.connect(settings) as client:
        normal = await client.submit("u:a", CLI, [small(1), small(2)])
        patron = await client.submit("u:b", CLI, [small(3)], priority="patron")
        assert (await client.positions(patron.task_ids))[patron.task_ids[0]] == 1
        with pytest.raises(InvalidRequest, match="priority: unknown class 'vip'; known: default, patron"):
            await client.submit("u:b", CLI, [small(4)], priority="vip")
        await start_worker(stub.url)
        await result_of(client, normal.task_ids[-1])
        assert (await started_order(client))[0] == patron.task_ids[0]


async def test_aging_bounds_how_long_priority_can_pass_a_task(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(priority_classes={"default": 0, "patron": 1}, aging_rate=1.0)
    async with EaselClient.connect(settings) as client:
        old = await client.submit("u:a", CLI, [small(1)])
        await asyncio.sleep(1.3)  # waited longer than the patron's 1 s head start is worth
        boosted = await client.submit("u:b", CLI, [small(2)], priority="patron")
        positions = await client.positions([old.task_ids[0], boosted.task_ids[0]])
        assert positions == {old.task_ids[0]: 1, boosted.task_ids[0]: 2}


async def test_per_user_limit_on_queued_tasks(make_settings: Callable[..., Settings]) -> None:
    async with EaselClient.connect(make_settings(max_queued_per_user=3)) as client:
        await client.submit("u:a", CLI, [small(1), small(2)])
        with pytest.raises(InvalidRequest, match="you have 2 tasks queued, the limit is 3"):
            await client.submit("u:a", CLI, [small(3), small(4)])
        await client.submit("u:b", CLI, [small(5), small(6)])  # other users are not affected
        assert await client.queue_depth() == 4


# --- 3. model affinity --------------------------------------------------------------------------------------


async def test_a_worker_prefers_its_loaded_checkpoint(client: EaselClient, start_stub, start_worker) -> None:  # type: ignore[no-untyped-def]
    stub = await start_stub(load_ms=200)
    record = await client.submit("u:a", CLI, [small(1, checkpoint=DREAM), small(2, checkpoint=V15),
                                              small(3, checkpoint=V15)])
    await start_worker(stub.url)
    for task_id in record.task_ids:
        await result_of(client, task_id)
    first, second, third = record.task_ids
    assert await started_order(client) == [second, third, first]
    assert stub.engine.stats.loads == 1


async def test_without_affinity_the_fair_order_is_followed(client: EaselClient, start_stub, start_worker) -> None:  # type: ignore[no-untyped-def]
    stub = await start_stub(load_ms=200)
    record = await client.submit("u:a", CLI, [small(1, checkpoint=DREAM), small(2, checkpoint=V15),
                                              small(3, checkpoint=V15)])
    await start_worker(stub.url, affinity=False)
    for task_id in record.task_ids:
        await result_of(client, task_id)
    assert await started_order(client) == record.task_ids
    assert stub.engine.stats.loads == 2


async def test_no_task_is_passed_over_longer_than_the_bound(
    client: EaselClient, start_stub, start_worker  # type: ignore[no-untyped-def]
) -> None:
    stub = await start_stub(load_ms=50, step_ms=20)
    other = await client.submit("u:a", CLI, [small(0, checkpoint=DREAM)])
    mine = await client.submit("u:a", CLI, [small(i, steps=5, checkpoint=V15) for i in range(1, 13)])
    await start_worker(stub.url, max_pass_over_s=0.3)
    for task_id in mine.task_ids:
        await result_of(client, task_id)
    order = await started_order(client)
    assert order[0] != other.task_ids[0]  # passed over at first (affinity) ...
    assert order.index(other.task_ids[0]) < 8  # ... but not for long (each task takes ~0.1 s)


# --- 5. cancel ----------------------------------------------------------------------------------------------


async def test_cancel_a_queued_task_it_never_runs(client: EaselClient, stub: StubServer, start_worker) -> None:  # type: ignore[no-untyped-def]
    record = await client.submit("u:a", CLI, [small(1), small(2)])
    first, second = record.task_ids
    assert await client.cancel(first, by="u:a") == CancelOutcome.REMOVED
    assert (await client.positions([first, second])) == {first: None, second: 1}
    error = await failure_of(client, first)
    assert error.code == FailureCode.CANCELLED and str(error) == "cancelled by u:a"
    await start_worker(stub.url)
    await result_of(client, second)
    assert await started_order(client) == [second]
    assert [e.task_id for e in await events(client, EventType.CANCELLED)] == [first]
    assert await client.cancel(first) == CancelOutcome.GONE  # a stale id does nothing


async def test_cancel_a_running_task_interrupts_the_webui(
    client: EaselClient, start_stub, start_worker  # type: ignore[no-untyped-def]
) -> None:
    stub = await start_stub(step_ms=50)
    await start_worker(stub.url)
    record = await client.submit("u:a", CLI, [small(1, steps=100)])  # 5 s of sampling
    task_id = record.task_ids[0]
    await eventually(lambda: started_order(client))
    await asyncio.sleep(0.2)
    loop = asyncio.get_running_loop()
    asked = loop.time()
    assert await client.cancel(task_id) == CancelOutcome.INTERRUPTING
    error = await failure_of(client, task_id)
    assert loop.time() - asked < 2
    assert error.code == FailureCode.CANCELLED
    assert [e.task_id for e in await events(client, EventType.CANCELLED)] == [task_id]
    assert stub.engine.stats.busy_s < 2  # the WebUI stopped sampling
    follow = await client.submit("u:a", CLI, [small(2)])  # the next task is not affected by the old cancel
    await result_of(client, follow.task_ids[0])


async def test_cancel_a_whole_job(client: EaselClient) -> None:
    record = await client.submit("u:a", CLI, [small(1), small(2)])
    outcomes = await client.cancel_job(record.job_id)
    assert set(outcomes.values()) == {CancelOutcome.REMOVED}
    assert await client.queue_depth() == 0
    with pytest.raises(InvalidRequest, match="unknown"):
        await client.cancel_job("0000000000000000")


# --- 6. positions and ETAs ----------------------------------------------------------------------------------


async def test_estimates_follow_positions_and_measured_speed(
    client: EaselClient, stub: StubServer, start_worker  # type: ignore[no-untyped-def]
) -> None:
    record = await client.submit("u:a", CLI, [small(i) for i in range(3)])
    estimates = await client.estimates()
    assert [estimates[t].reason for t in record.task_ids] == ["no worker is online"] * 3
    await start_worker(stub.url)
    for task_id in record.task_ids:
        await result_of(client, task_id)
    speeds = await client.speeds.snapshot()
    assert "txt2img:w:test-gpu" in speeds.values  # measured, not a constant
    await client.tell("test-gpu", messages.Drain())  # the worker stops taking tasks
    await asyncio.sleep(0.3)
    queued = await client.submit("u:b", CLI, [small(10 + i, steps=10) for i in range(3)])
    positions = await client.positions(queued.task_ids)
    estimates = await client.estimates()
    assert [estimates[t].position for t in queued.task_ids] == [positions[t] for t in queued.task_ids] == [1, 2, 3]


# --- 7. events ----------------------------------------------------------------------------------------------


async def test_a_restarted_consumer_misses_nothing_and_repeats_nothing(client: EaselClient) -> None:
    first = EventConsumer(client.redis, client.keys, group="bot")
    await first.ensure_group()
    record = await client.submit("u:a", CLI, [small(i) for i in range(5)])
    handled: list[str] = []
    batch = await first.read(count=2)
    for entry_id, event in batch:
        handled.append(event.task_id)
        await first.ack(entry_id)
    unhandled = await first.read(count=1)  # read, then the consumer dies before handling it
    assert len(unhandled) == 1

    restarted = EventConsumer(client.redis, client.keys, group="bot")
    await restarted.ensure_group()  # the group exists: nothing is reset
    while len(handled) < 5:
        for entry_id, event in await restarted.read(block_ms=200):
            handled.append(event.task_id)
            await restarted.ack(entry_id)
    assert handled == record.task_ids
    assert await restarted.read(block_ms=50) == []


# --- 8. registry --------------------------------------------------------------------------------------------


async def test_workers_advertise_themselves(client: EaselClient, stub: StubServer, start_worker) -> None:  # type: ignore[no-untyped-def]
    await start_worker(stub.url)
    record = await client.submit("u:a", CLI, [small(1)])
    await result_of(client, record.task_ids[0])

    async def measured() -> Any:  # the speed average is recorded off the critical path, then heartbeated
        workers = await client.registry.live()
        return workers if workers and workers[0].seconds_per_work else None

    [worker] = await eventually(measured)
    assert (worker.name, worker.webui_url, worker.state) == ("test-gpu", stub.url, WorkerState.IDLE)
    assert worker.loaded_checkpoint == "v1-5-pruned-emaonly.safetensors [6ce0161689]"
    assert len(worker.checkpoints) == 3 and worker.tasks_done == 1 and worker.seconds_per_work
    assert worker.heartbeat_ms > 0 and worker.node


# --- 9. retries ---------------------------------------------------------------------------------------------


async def test_out_of_memory_is_retried_as_smaller_batches(
    client: EaselClient, stub: StubServer, start_worker  # type: ignore[no-untyped-def]
) -> None:
    await start_worker(stub.url)
    await fault(stub, "oom")
    record = await client.submit("u:a", CLI, [small(40, batch_size=4)])
    result = await result_of(client, record.task_ids[0])
    assert result.seeds == [40, 41, 42, 43]
    assert stub.engine.stats.generations == 2  # two halves after the failed whole


async def test_a_server_error_is_retried_on_another_worker(
    client: EaselClient, start_stub, start_worker  # type: ignore[no-untyped-def]
) -> None:
    broken, healthy = await start_stub(), await start_stub()
    await fault(broken, "error", count=-1)
    await start_worker(broken.url, worker_name="broken")
    record = await client.submit("u:a", CLI, [small(1)])
    await eventually(lambda: events(client, EventType.RETRYING))
    await start_worker(healthy.url, worker_name="healthy")
    result = await result_of(client, record.task_ids[0])
    assert result.worker == "healthy"


async def test_a_validation_error_fails_at_once(client: EaselClient, stub: StubServer, start_worker) -> None:  # type: ignore[no-untyped-def]
    await start_worker(stub.url)
    await fault(stub, "reject")
    record = await client.submit("u:a", CLI, [small(1)])
    error = await failure_of(client, record.task_ids[0])
    assert error.code == FailureCode.REJECTED
    assert str(error) == "the WebUI refused the request: steps: ensure this value is less than or equal to 150"
    assert not await events(client, EventType.RETRYING)


async def test_closing_a_busy_worker_still_runs_its_shutdown(client: EaselClient, start_stub,  # type: ignore[no-untyped-def]
                                                             start_worker) -> None:
    stub = await start_stub(step_ms=50)
    worker = await start_worker(stub.url)
    record = await client.submit("u:a", CLI, [small(1, steps=60)])
    await eventually(lambda: started_order(client))
    await worker.close()  # its running task is cancelled; close must not re-raise that, and must unregister
    assert await client.registry.live() == []
    assert (await client.positions(record.task_ids))[record.task_ids[0]] == 1  # back in line, not lost
