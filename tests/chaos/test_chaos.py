"""Chaos: real worker processes and a real submitter while Redis restarts, links are cut, WebUIs die or misbehave.

Each test has its own Redis-protocol server (an embedded Valkey with an append-only file) and checks what an
operator would: every task ends exactly once (one result, one terminal event), no process exits on a connection
error, and where failing is right, the failure says why. The faults last a fixed time on purpose: that is the
fault; everything else waits on conditions.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from common.errors import FailureCode, TaskFailed
from common.events import EventType, TaskEvent
from common.models import Txt2ImgRequest
from common.queue import EaselClient
from common.tasks import Origin, TaskResult
from easel.stack import LocalStack
from tests.faults import RestartableRedis, TcpProxy

CLI = Origin(source="cli")
FAST = {"EASEL_LEASE_S": "2", "EASEL_HEARTBEAT_S": "0.5", "EASEL_WORKER_TTL_S": "3", "EASEL_WORKER_POLL_S": "0.2",
        "EASEL_MAX_TRIES": "3", "EASEL_RETRY_BACKOFF_S": "0.1", "EASEL_REDIS_OUTAGE_S": "60", "EASEL_STALL_S": "2"}
OUTAGE_S = 4.0  # longer than a lease: leases lapse while Redis is away

pytestmark = pytest.mark.timeout(180)


def task(seed: int, steps: int = 10) -> Txt2ImgRequest:
    return Txt2ImgRequest(prompt="chaos", steps=steps, width=64, height=64, seed=seed)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RestartableRedis]:
    server = RestartableRedis(tmp_path / "valkey")
    server.start()
    yield server
    server.close()


async def events(client: EaselClient) -> list[TaskEvent]:
    return [event for _, event in await client.events.read("0-0", block_ms=10, count=100_000)]


async def settle(client: EaselClient, task_ids: list[str], limit_s: float = 120) -> dict[str, TaskResult | TaskFailed]:
    """Wait until every task has ended; its outcome."""
    outcomes: dict[str, TaskResult | TaskFailed] = {}
    async with asyncio.timeout(limit_s):
        while len(outcomes) < len(task_ids):
            for task_id in task_ids:
                if task_id in outcomes:
                    continue
                try:
                    if (result := await client.result(task_id)) is not None:
                        outcomes[task_id] = result
                except TaskFailed as exc:
                    if "unknown or its result has expired" not in str(exc):
                        outcomes[task_id] = exc
            await asyncio.sleep(0.1)
    return outcomes


async def assert_each_ended_once(client: EaselClient, task_ids: list[str]) -> None:
    ends = [e.task_id for e in await events(client) if e.type in (EventType.FINISHED, EventType.FAILED)]
    assert sorted(ends) == sorted(task_ids), "every task ends exactly once"


def alive(stack: LocalStack) -> None:
    dead = {name: p.returncode for name, p in stack.workers.items() if p.poll() is not None}
    assert not dead, f"worker processes exited: {dead}"


async def until(check: object, limit_s: float = 60) -> None:
    async with asyncio.timeout(limit_s):
        while not await check():  # type: ignore[operator]
            await asyncio.sleep(0.05)


async def test_a_redis_restart_is_waited_out_by_workers_and_the_submitter(redis: RestartableRedis,
                                                                          tmp_path: Path) -> None:
    with LocalStack(redis_url=redis.url, prefix="chaos:", workers=2, step_ms=30, worker_env=FAST) as stack:
        env = {**os.environ, "REDIS_URL": redis.url, "EASEL_REDIS_PREFIX": "chaos:", **FAST,
               "EASEL_DATA_DIR": str(tmp_path / "data")}
        out = tmp_path / "out"
        submitter = subprocess.Popen(
            [sys.executable, "-m", "easel", "submit", "a lighthouse", "--sweep", "seed=1,2,3,4,5,6,7,8,9,10",
             "--steps", "10", "--width", "64", "--height", "64", "--out", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
        )
        async with EaselClient.connect(stack.settings) as client:
            async def some_finished() -> bool:
                return sum(e.type == EventType.FINISHED for e in await events(client)) >= 2

            await until(some_finished)
            redis.stop()
            await asyncio.sleep(OUTAGE_S)
            redis.start()
            stdout, _ = await asyncio.to_thread(submitter.communicate, timeout=150)
            assert submitter.returncode == 0, stdout
            assert "Traceback" not in stdout
            assert len(list(out.rglob("*.png"))) == 10  # the submitter followed through and got every image
            finished = [e.task_id for e in await events(client) if e.type == EventType.FINISHED]
            assert len(finished) == len(set(finished)) == 10  # ... each exactly once
            alive(stack)


@pytest.mark.parametrize("cut", ["refuse", "blackhole"])
async def test_a_cut_link_between_workers_and_redis_is_waited_out(redis: RestartableRedis, cut: str) -> None:
    proxy = TcpProxy(redis.port)
    await proxy.start()
    try:
        with LocalStack(redis_url=redis.url, prefix="chaos:", workers=0, step_ms=30,
                        worker_env={**FAST, "REDIS_URL": proxy.url}) as stack:
            for n in range(2):  # in a thread: the proxy runs in this event loop
                await asyncio.to_thread(stack.start_worker, f"gpu{n}", stack.start_stub(f"stub{n}"))
            async with EaselClient.connect(stack.settings) as client:
                record = await client.submit("u:a", CLI, [task(i, steps=20) for i in range(8)])

                async def started() -> bool:
                    return any(e.type == EventType.STARTED for e in await events(client))

                await until(started)
                await (proxy.refuse() if cut == "refuse" else asyncio.to_thread(proxy.blackhole))
                await asyncio.sleep(OUTAGE_S)
                await proxy.restore()
                outcomes = await settle(client, record.task_ids)
                assert all(isinstance(o, TaskResult) for o in outcomes.values()), outcomes
                await assert_each_ended_once(client, record.task_ids)
                alive(stack)
    finally:
        await proxy.close()


async def test_a_webui_killed_mid_task_hands_the_task_back(redis: RestartableRedis) -> None:
    with LocalStack(redis_url=redis.url, prefix="chaos:", workers=2, step_ms=40, worker_env=FAST) as stack:
        async with EaselClient.connect(stack.settings) as client:
            record = await client.submit("u:a", CLI, [task(i, steps=30) for i in range(4)])

            async def gpu0_busy() -> bool:
                return any(e.type == EventType.STARTED and e.worker == "gpu0" for e in await events(client))

            await until(gpu0_busy)
            stack.stubs["stub0"].send_signal(signal.SIGKILL)  # the WebUI of gpu0 dies mid-generation
            outcomes = await settle(client, record.task_ids)
            assert all(isinstance(o, TaskResult) for o in outcomes.values()), outcomes
            assert {o.worker for o in outcomes.values() if isinstance(o, TaskResult)} >= {"gpu1"}
            retried = [e for e in await events(client) if e.type == EventType.RETRYING]
            assert retried and all("unreachable" in str(e.message) for e in retried)
            await assert_each_ended_once(client, record.task_ids)
            alive(stack)


async def test_faulty_webuis_end_each_task_once_with_a_reason(redis: RestartableRedis) -> None:
    """Three WebUIs: one drops every generation, one hangs every generation, one fails every generation (5xx)."""
    with LocalStack(redis_url=redis.url, prefix="chaos:", workers=0, step_ms=20, worker_env=FAST) as stack:
        urls = [stack.start_stub(f"stub{n}") for n in range(3)]
        async with httpx.AsyncClient() as http:
            for url, mode in zip(urls, ("drop", "hang", "error"), strict=True):
                (await http.post(f"{url}/stub/faults", json={"mode": mode, "count": -1})).raise_for_status()
        for n, url in enumerate(urls):
            stack.start_worker(f"gpu{n}", url)
        async with EaselClient.connect(stack.settings) as client:
            record = await client.submit("u:a", CLI, [task(i) for i in range(3)])
            outcomes = await settle(client, record.task_ids, limit_s=150)
            for outcome in outcomes.values():
                assert isinstance(outcome, TaskFailed)
                assert outcome.code in (FailureCode.WEBUI_UNREACHABLE, FailureCode.WEBUI_ERROR)
                assert "giving up" in str(outcome) or "gave up" in str(outcome)
            await assert_each_ended_once(client, record.task_ids)
            alive(stack)
            started = [e for e in await events(client) if e.type == EventType.STARTED]
            assert len(started) <= 5 * 3  # bounded: at most 2 hand-backs and 2 retries before the last start

