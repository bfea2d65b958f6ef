"""Every start is bounded: a WebUI that drops every generation or hangs cannot keep a task looping or waiting."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from common.errors import FailureCode, TaskFailed
from common.events import EventType, TaskEvent
from common.models import Txt2ImgRequest
from common.queue import EaselClient
from common.tasks import Origin, TaskResult

CLI = Origin(source="cli")


async def fault(url: str, mode: str, count: int = 1) -> None:
    async with httpx.AsyncClient() as http:
        (await http.post(f"{url}/stub/faults", json={"mode": mode, "count": count})).raise_for_status()


async def outcome(client: EaselClient, task_id: str, limit_s: float = 30) -> TaskResult | TaskFailed:
    async with asyncio.timeout(limit_s):
        while True:
            try:
                if (result := await client.result(task_id)) is not None:
                    return result
            except TaskFailed as exc:
                return exc
            await asyncio.sleep(0.02)


async def events_of(client: EaselClient, task_id: str, kind: EventType) -> list[TaskEvent]:
    return [e for _, e in await client.events.read("0-0", block_ms=10, count=10_000)
            if e.task_id == task_id and e.type == kind]


async def test_a_webui_that_drops_every_generation_fails_the_task_after_max_tries(
    client: EaselClient, stub: Any, start_worker: Any
) -> None:
    await fault(stub.url, "drop", count=-1)  # /progress still answers: the worker looks healthy between tries
    await start_worker(stub.url, max_tries=3, heartbeat_s=0.1)
    record = await client.submit("u:a", CLI, [Txt2ImgRequest(prompt="x", steps=2, width=64, height=64)])
    task_id = record.task_ids[0]
    error = await outcome(client, task_id)
    assert isinstance(error, TaskFailed) and error.code == FailureCode.WEBUI_UNREACHABLE
    assert "dropped the connection" in str(error) and "3 times; giving up" in str(error)
    assert len(await events_of(client, task_id, EventType.STARTED)) == 3  # bounded: not 100 starts
    assert len(await events_of(client, task_id, EventType.RETRYING)) == 2


async def test_a_stalled_generation_is_interrupted_and_runs_elsewhere(
    client: EaselClient, start_stub: Any, start_worker: Any
) -> None:
    hung, healthy = await start_stub(), await start_stub()
    await fault(hung.url, "hang")
    await start_worker(hung.url, worker_name="hung", stall_s=1.0, webui_read_timeout_s=600)
    record = await client.submit("u:a", CLI, [Txt2ImgRequest(prompt="x", steps=2, width=64, height=64)])
    task_id = record.task_ids[0]
    async with asyncio.timeout(10):
        while not await events_of(client, task_id, EventType.STARTED):
            await asyncio.sleep(0.02)
    await start_worker(healthy.url, worker_name="healthy")
    result = await outcome(client, task_id)
    assert isinstance(result, TaskResult)  # long before the 600 s read timeout
    [retry] = await events_of(client, task_id, EventType.RETRYING)
    assert retry.worker == "hung" and "made no progress for 1s (EASEL_STALL_S)" in str(retry.message)
    assert "fault:hang" in hung.engine.stats.requests
