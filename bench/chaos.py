"""Chaos scenarios: real worker processes (and a real submitter) while Redis restarts, links are cut, WebUIs die or
misbehave. ``python -m bench.chaos [--json]`` runs them all and prints what an operator would ask: did every task
end exactly once, did any process exit, how soon after the fault did the pool resume. ``tests/chaos`` runs the same
scenarios and asserts on their reports.

Each scenario has its own Redis-protocol server (an embedded Valkey with an append-only file). A fault lasts
``OUTAGE_S`` on purpose (longer than a lease); everything else waits on conditions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from bench.faults import RestartableRedis, TcpProxy
from common.errors import TaskFailed
from common.events import TERMINAL, EventType, TaskEvent
from common.models import Txt2ImgRequest
from common.queue import EaselClient
from common.tasks import Origin, TaskResult
from easel.stack import LocalStack

CLI = Origin(source="cli")
FAST = {"EASEL_LEASE_S": "2", "EASEL_HEARTBEAT_S": "0.5", "EASEL_WORKER_TTL_S": "3", "EASEL_WORKER_POLL_S": "0.2",
        "EASEL_MAX_TRIES": "3", "EASEL_RETRY_BACKOFF_S": "0.1", "EASEL_REDIS_OUTAGE_S": "60", "EASEL_STALL_S": "2"}
OUTAGE_S = 4.0  # longer than a lease: leases lapse while Redis is away
PREFIX = "chaos:"


@dataclass
class Report:
    """What happened to the tasks of one scenario."""

    fault: str
    tasks: int
    finished: int = 0
    failed: dict[str, int] = field(default_factory=dict)  # failure code -> tasks
    lost: int = 0  # tasks with no outcome at the end
    duplicated: int = 0  # tasks that ended more than once
    starts: int = 0  # starts over all tasks (a bounded number)
    exits: list[str] = field(default_factory=list)  # processes that exited (worker:code, submitter:code)
    resumed_s: float | None = None  # from the end of the fault to the pool's next task start or end
    messages: list[str] = field(default_factory=list)  # failure and retry messages, as users see them
    images: int | None = None  # images the submitter wrote (Redis restart scenario)


def task(seed: int, steps: int = 10) -> Txt2ImgRequest:
    return Txt2ImgRequest(prompt="chaos", steps=steps, width=64, height=64, seed=seed)


async def events(client: EaselClient) -> list[TaskEvent]:
    return [event for _, event in await client.events.read("0-0", block_ms=10, count=100_000)]


async def until(check: Callable[[], Awaitable[bool]], limit_s: float = 60) -> None:
    async with asyncio.timeout(limit_s):
        while not await check():
            await asyncio.sleep(0.05)


async def settle(client: EaselClient, task_ids: list[str], limit_s: float = 150) -> dict[str, TaskResult | TaskFailed]:
    """Wait until every task has ended (or ``limit_s``); the outcomes found."""
    outcomes: dict[str, TaskResult | TaskFailed] = {}
    deadline = time.monotonic() + limit_s
    while len(outcomes) < len(task_ids) and time.monotonic() < deadline:
        for task_id in task_ids:
            if task_id not in outcomes:
                try:
                    if (result := await client.result(task_id)) is not None:
                        outcomes[task_id] = result
                except TaskFailed as exc:
                    if "unknown or its result has expired" not in str(exc):
                        outcomes[task_id] = exc
        await asyncio.sleep(0.1)
    return outcomes


async def report(fault: str, client: EaselClient, task_ids: list[str], stack: LocalStack,
                 fault_ended_ms: int | None, outcomes: dict[str, TaskResult | TaskFailed]) -> Report:
    seen = await events(client)
    ends = Counter(e.task_id for e in seen if e.type in TERMINAL and e.task_id in task_ids)
    after = [e.at_ms for e in seen if fault_ended_ms is not None and e.at_ms >= fault_ended_ms
             and e.type in (EventType.STARTED, EventType.FINISHED, EventType.FAILED)]
    failures = [o for o in outcomes.values() if isinstance(o, TaskFailed)]
    return Report(
        fault=fault, tasks=len(task_ids), finished=sum(isinstance(o, TaskResult) for o in outcomes.values()),
        failed=dict(Counter(f.code.value for f in failures)), lost=len(task_ids) - len(outcomes),
        duplicated=sum(n - 1 for n in ends.values() if n > 1),
        starts=sum(e.type == EventType.STARTED and e.task_id in task_ids for e in seen),
        exits=[f"{name}:{p.returncode}" for name, p in stack.workers.items() if p.poll() is not None],
        resumed_s=round((min(after) - fault_ended_ms) / 1000, 2) if after and fault_ended_ms else None,
        messages=sorted({str(f) for f in failures} | {str(e.message) for e in seen if e.type == EventType.RETRYING}),
    )


@asynccontextmanager
async def redis_server() -> AsyncIterator[RestartableRedis]:
    server = RestartableRedis(Path(tempfile.mkdtemp(prefix="easel-chaos-")))
    server.start()
    try:
        yield server
    finally:
        server.close()


def now_ms() -> int:
    return int(time.time() * 1000)


# --- the scenarios -------------------------------------------------------------------------------------------


async def redis_restart(folder: Path) -> Report:
    """Redis stops (SIGTERM) mid-run and comes back after OUTAGE_S with its append-only file; two workers and a
    real ``easel submit`` follow through."""
    async with redis_server() as redis:
        with LocalStack(redis_url=redis.url, prefix=PREFIX, workers=2, step_ms=30, worker_env=FAST) as stack:
            env = {**os.environ, "REDIS_URL": redis.url, "EASEL_REDIS_PREFIX": PREFIX, **FAST,
                   "EASEL_DATA_DIR": str(folder / "data")}
            out = folder / "out"
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
                back = now_ms()
                stdout, _ = await asyncio.to_thread(submitter.communicate, timeout=150)
                task_ids = sorted({e.task_id for e in await events(client)})
                result = await report("Redis restart (SIGTERM, AOF)", client, task_ids, stack, back,
                                      await settle(client, task_ids))
        if submitter.returncode != 0 or "Traceback" in stdout:
            result.exits.append(f"submitter:{submitter.returncode}")
        result.images = len(list(out.rglob("*.png")))
        return result


async def cut_link(mode: str) -> Report:
    """The workers' link to Redis (through a loopback proxy) is refused or blackholed for OUTAGE_S."""
    async with redis_server() as redis:
        proxy = TcpProxy(redis.port)
        await proxy.start()
        try:
            with LocalStack(redis_url=redis.url, prefix=PREFIX, workers=0, step_ms=30,
                            worker_env={**FAST, "REDIS_URL": proxy.url}) as stack:
                for n in range(2):  # in a thread: the proxy runs in this event loop
                    await asyncio.to_thread(stack.start_worker, f"gpu{n}", stack.start_stub(f"stub{n}"))
                async with EaselClient.connect(stack.settings) as client:
                    record = await client.submit("u:a", CLI, [task(i, steps=20) for i in range(8)])

                    async def started() -> bool:
                        return any(e.type == EventType.STARTED for e in await events(client))

                    await until(started)
                    await (proxy.refuse() if mode == "refuse" else asyncio.to_thread(proxy.blackhole))
                    await asyncio.sleep(OUTAGE_S)
                    await proxy.restore()
                    back = now_ms()
                    outcomes = await settle(client, record.task_ids)
                    return await report(f"worker-Redis link {mode}d", client, record.task_ids, stack, back, outcomes)
        finally:
            await proxy.close()


async def webui_killed() -> Report:
    """The WebUI of one of two workers is SIGKILLed mid-generation."""
    async with redis_server() as redis:
        with LocalStack(redis_url=redis.url, prefix=PREFIX, workers=2, step_ms=40, worker_env=FAST) as stack:
            async with EaselClient.connect(stack.settings) as client:
                record = await client.submit("u:a", CLI, [task(i, steps=30) for i in range(4)])

                async def gpu0_busy() -> bool:
                    return any(e.type == EventType.STARTED and e.worker == "gpu0" for e in await events(client))

                await until(gpu0_busy)
                stack.stubs["stub0"].send_signal(signal.SIGKILL)
                killed = now_ms()
                outcomes = await settle(client, record.task_ids)
                return await report("WebUI killed mid-task", client, record.task_ids, stack, killed, outcomes)


async def faulty_webuis() -> Report:
    """Three workers whose WebUIs drop, hang and fail (5xx) every generation."""
    async with redis_server() as redis:
        with LocalStack(redis_url=redis.url, prefix=PREFIX, workers=0, step_ms=20, worker_env=FAST) as stack:
            urls = [stack.start_stub(f"stub{n}") for n in range(3)]
            async with httpx.AsyncClient() as http:
                for url, mode in zip(urls, ("drop", "hang", "error"), strict=True):
                    (await http.post(f"{url}/stub/faults", json={"mode": mode, "count": -1})).raise_for_status()
            for n, url in enumerate(urls):
                stack.start_worker(f"gpu{n}", url)
            async with EaselClient.connect(stack.settings) as client:
                record = await client.submit("u:a", CLI, [task(i) for i in range(3)])
                outcomes = await settle(client, record.task_ids)
                return await report("WebUIs drop / hang / fail every generation", client, record.task_ids, stack,
                                    None, outcomes)


async def run_all() -> list[Report]:
    folder = Path(tempfile.mkdtemp(prefix="easel-chaos-"))
    return [await redis_restart(folder), await cut_link("refuse"), await cut_link("blackhole"), await webui_killed(),
            await faulty_webuis()]


def show(reports: list[Report]) -> None:
    table = Table(title="Easel under faults (python -m bench.chaos)")
    for column in ("fault", "tasks", "finished", "failed", "lost", "duplicated", "starts", "process exits",
                   "resumed after (s)"):
        table.add_column(column)
    for r in reports:
        failed = ", ".join(f"{n} {code}" for code, n in r.failed.items()) or "0"
        table.add_row(r.fault, str(r.tasks), str(r.finished), failed, str(r.lost), str(r.duplicated), str(r.starts),
                      ", ".join(r.exits) or "none", "" if r.resumed_s is None else f"{r.resumed_s:.2f}")
    console = Console()
    console.print(table)
    for r in reports:
        if r.images is not None:
            console.print(f"{r.fault}: the submitter wrote {r.images} images")
        for message in r.messages:
            console.print(f"{r.fault}: {message}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    reports = asyncio.run(run_all())
    if args.json:
        print(json.dumps([asdict(r) for r in reports]))
    else:
        show(reports)


if __name__ == "__main__":
    main()
