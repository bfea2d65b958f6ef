"""The worker pool with real worker processes: crashes (SIGKILL), graceful stops (SIGTERM), drain, the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from common.errors import FailureCode, TaskFailed
from common.events import EventType, TaskEvent
from common.models import Txt2ImgRequest
from common.queue import EaselClient
from common.registry import WorkerState
from common.tasks import Origin, TaskResult
from easel.stack import LocalStack

CLI = Origin(source="cli")
FAST = {"EASEL_LEASE_S": "1.5", "EASEL_HEARTBEAT_S": "0.3", "EASEL_WORKER_TTL_S": "1.5",
        "EASEL_WORKER_POLL_S": "0.2", "EASEL_MAX_TRIES": "2", "EASEL_RETRY_BACKOFF_S": "0.1"}


def task(seed: int, steps: int) -> Txt2ImgRequest:
    return Txt2ImgRequest(prompt="x", steps=steps, width=64, height=64, seed=seed)


@pytest.fixture
async def pool(
    request: pytest.FixtureRequest, redis_url: str, prefix: str
) -> AsyncIterator[tuple[LocalStack, EaselClient]]:
    """A LocalStack with short leases and TTLs; ``@pytest.mark.parametrize("pool", [{...}], indirect=True)``."""
    options = getattr(request, "param", {})
    env = {**FAST, **options.get("env", {})}
    with LocalStack(redis_url=redis_url, prefix=prefix, step_ms=options.get("step_ms", 40), load_ms=50,
                    workers=options.get("workers", 1), worker_env=env) as stack:
        async with EaselClient.connect(stack.settings) as client:
            yield stack, client


async def wait_event(client: EaselClient, task_id: str, kind: EventType, seen: int = 0,
                     limit_s: float = 20) -> TaskEvent:
    """The (seen+1)-th event of ``kind`` for the task."""
    async with asyncio.timeout(limit_s):
        while True:
            found = [e for _, e in await client.events.read("0-0", block_ms=10, count=10_000)
                     if e.task_id == task_id and e.type == kind]
            if len(found) > seen:
                return found[seen]
            await asyncio.sleep(0.05)


async def outcome(client: EaselClient, task_id: str, limit_s: float = 30) -> TaskResult | TaskFailed:
    async with asyncio.timeout(limit_s):
        while True:
            try:
                result = await client.result(task_id)
            except TaskFailed as exc:
                return exc
            if result is not None:
                return result
            await asyncio.sleep(0.05)


async def count_events(client: EaselClient, task_id: str, kind: EventType) -> int:
    return sum(1 for _, e in await client.events.read("0-0", block_ms=10, count=10_000)
               if e.task_id == task_id and e.type == kind)


@pytest.mark.parametrize("pool", [{"workers": 2}], indirect=True)
async def test_sigkill_mid_task_runs_it_elsewhere_with_one_result(pool: tuple[LocalStack, EaselClient]) -> None:
    stack, client = pool
    record = await client.submit("u:a", CLI, [task(1, steps=60)])  # ~2.4 s
    task_id = record.task_ids[0]
    first = await wait_event(client, task_id, EventType.STARTED)
    await asyncio.sleep(0.3)
    stack.kill_worker(str(first.worker))
    second = await wait_event(client, task_id, EventType.STARTED, seen=1)
    assert second.worker != first.worker
    result = await outcome(client, task_id)
    assert isinstance(result, TaskResult) and result.worker == second.worker and result.seeds == [1]
    await asyncio.sleep(0.5)
    assert await count_events(client, task_id, EventType.FINISHED) == 1


async def test_a_task_that_keeps_killing_workers_is_failed(pool: tuple[LocalStack, EaselClient]) -> None:
    stack, client = pool
    record = await client.submit("u:a", CLI, [task(1, steps=100)])
    task_id = record.task_ids[0]
    for attempt in range(2):  # EASEL_MAX_TRIES=2: two starts, each ending in a crash
        started = await wait_event(client, task_id, EventType.STARTED, seen=attempt)
        stack.kill_worker(str(started.worker))
        stack.start_worker(f"again{attempt}", stack.webui_urls[0])
    error = await outcome(client, task_id)
    assert isinstance(error, TaskFailed) and error.code == FailureCode.CRASHED
    assert "started 2 times and its worker stopped each time" in str(error)


async def test_sigterm_lets_the_running_task_finish(pool: tuple[LocalStack, EaselClient]) -> None:
    stack, client = pool
    record = await client.submit("u:a", CLI, [task(1, steps=30), task(2, steps=30)])
    first, second = record.task_ids
    await wait_event(client, first, EventType.STARTED)
    process = stack.workers["gpu0"]
    process.send_signal(signal.SIGTERM)
    result = await outcome(client, first)
    assert isinstance(result, TaskResult)
    assert await asyncio.to_thread(process.wait, 10) == 0
    assert (await client.positions([second]))[second] == 1  # stopped workers take no new task
    stack.start_worker("gpu1", stack.webui_urls[0])
    assert isinstance(await outcome(client, second), TaskResult)


@pytest.mark.parametrize("pool", [{"workers": 2, "env": {"EASEL_WORKER_GRACE_S": "0"}}], indirect=True)
async def test_sigterm_past_the_grace_period_requeues_the_task(pool: tuple[LocalStack, EaselClient]) -> None:
    stack, client = pool
    record = await client.submit("u:a", CLI, [task(1, steps=60)])
    task_id = record.task_ids[0]
    first = await wait_event(client, task_id, EventType.STARTED)
    stack.workers[str(first.worker)].send_signal(signal.SIGTERM)
    second = await wait_event(client, task_id, EventType.STARTED, seen=1)
    assert second.worker != first.worker
    result = await outcome(client, task_id)
    assert isinstance(result, TaskResult) and result.worker == second.worker
    await asyncio.sleep(0.3)
    assert await count_events(client, task_id, EventType.FINISHED) == 1


def easel(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "easel", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "200", **env})


async def hold(stack: LocalStack, on: bool) -> None:
    """Pause (or let go on) the generations of the first stub WebUI: a running task stays running while held."""
    async with httpx.AsyncClient() as http:
        (await (http.post if on else http.delete)(f"{stack.webui_urls[0]}/stub/hold")).raise_for_status()


async def until(check: Callable[[], Awaitable[bool]], what: str, limit_s: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + limit_s
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"still waiting for {what} after {limit_s}s"
        await asyncio.sleep(0.05)


async def test_drain_finishes_the_current_task_and_takes_no_more(pool: tuple[LocalStack, EaselClient]) -> None:
    stack, client = pool
    env = {"REDIS_URL": stack.redis_url or "", "EASEL_REDIS_PREFIX": stack.prefix}
    await hold(stack, True)  # the first task runs until the drain has arrived, however long the CLI takes to start
    record = await client.submit("u:a", CLI, [task(1, steps=30), task(2, steps=5)])
    first, second = record.task_ids
    await wait_event(client, first, EventType.STARTED)
    done = await asyncio.to_thread(easel, "worker", "--drain", "--name", "gpu0", env=env)
    assert done.returncode == 0 and "gpu0: draining" in done.stdout

    async def draining() -> bool:
        return any(w.name == "gpu0" and w.state == WorkerState.DRAINING for w in await client.registry.live())

    await until(draining, "gpu0 to say it is draining")
    await hold(stack, False)
    assert isinstance(await outcome(client, first), TaskResult)
    assert await asyncio.to_thread(stack.workers["gpu0"].wait, 10) == 0
    assert (await client.positions([second]))[second] == 1
    missing = await asyncio.to_thread(easel, "worker", "--drain", "--name", "nobody", env=env)
    assert missing.returncode == 1 and "no live worker is named 'nobody'" in missing.stdout


@pytest.mark.parametrize("pool", [{"workers": 2}], indirect=True)
async def test_registry_and_queue_from_the_command_line(pool: tuple[LocalStack, EaselClient]) -> None:
    stack, client = pool
    env = {"REDIS_URL": stack.redis_url or "", "EASEL_REDIS_PREFIX": stack.prefix}
    listing = await asyncio.to_thread(easel, "workers", "--json", env=env)
    workers = {w["name"]: w for w in json.loads(listing.stdout)}
    assert set(workers) == {"gpu0", "gpu1"}
    assert workers["gpu0"]["state"] == "idle" and len(workers["gpu0"]["checkpoints"]) == 3

    stack.kill_worker("gpu1")  # missed heartbeats: gone after the TTL (EASEL_WORKER_TTL_S=1.5)

    async def only_gpu0() -> bool:
        return [w.name for w in await client.registry.live()] == ["gpu0"]

    await until(only_gpu0, "gpu1 to leave the registry")

    await hold(stack, True)  # the first task keeps running while the CLI (1-2 s to start) looks at the queue
    record = await client.submit("u:a", CLI, [task(i, steps=40) for i in range(3)])
    await wait_event(client, record.task_ids[0], EventType.STARTED)
    shown = await asyncio.to_thread(easel, "queue", "--json", env=env)
    rows = json.loads(shown.stdout)
    assert [row["task"] for row in rows] == record.task_ids
    assert [row["position"] for row in rows] == [0, 1, 2]
    assert rows[0]["running"] and rows[2]["eta_s"] >= rows[1]["eta_s"] >= 0
    table = await asyncio.to_thread(easel, "queue", env=env)
    assert "running" in table.stdout and record.task_ids[2] in table.stdout
    cancelled = await asyncio.to_thread(easel, "cancel", record.job_id, env=env)
    assert f"{record.task_ids[0]}: running" in cancelled.stdout  # interrupted on its WebUI, held or not
    assert f"{record.task_ids[2]}: removed" in cancelled.stdout
    await hold(stack, False)
