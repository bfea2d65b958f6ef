"""The benchmark's scenarios. Each builds its own stack (embedded Valkey, stub WebUIs and workers as processes),
so one scenario's state never skews another's. Times are wall-clock epoch ms taken on this one machine.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
from arq.connections import ArqRedis, RedisSettings, create_pool

from bench.arq_baseline import STARTED_PREFIX
from common import serialization
from common.errors import TaskFailed
from common.events import EventType
from common.models import Txt2ImgRequest
from common.queue import EaselClient
from common.settings import Settings
from common.tasks import Origin, TaskResult
from easel.stack import LocalStack
from webui_stub.catalog import CHECKPOINTS

ORIGIN = Origin(source="cli")
BENCH_LIMITS: dict[str, Any] = {"max_sweep_tasks": 200, "max_queued_per_user": 500}


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@asynccontextmanager
async def easel_stack(**stack: Any) -> AsyncIterator[tuple[LocalStack, EaselClient]]:
    with LocalStack(embedded=True, **stack) as running:
        settings = Settings(redis_url=running.redis_url, redis_prefix=running.prefix, **BENCH_LIMITS)
        async with EaselClient.connect(settings) as client:
            yield running, client


async def wait_result(client: EaselClient, task_id: str, limit_s: float = 120, poll_s: float = 0.005) -> TaskResult:
    """The task's result; ``poll_s``: how often to ask (fine-grained where the moment it lands is measured)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            result = await client.result(task_id)
        except TaskFailed:
            raise
        if result is not None:
            return result
        await asyncio.sleep(poll_s)
    raise TimeoutError(task_id)


async def stub_stats(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        stats: dict[str, Any] = (await http.get(f"{url}/stub/stats")).json()
        return stats


def request(steps: int, size: int = 64, checkpoint: str | None = None, seed: int = 1) -> Txt2ImgRequest:
    return Txt2ImgRequest(prompt="bench", steps=steps, width=size, height=size, seed=seed, checkpoint=checkpoint)


# --- Easel ---------------------------------------------------------------------------------------------------


def arrival_gaps(samples: int, seed: int = 11) -> list[float]:
    """Idle time before each arrival: random, so arrivals fall anywhere in a polling worker's cycle."""
    rng = random.Random(seed)
    return [rng.uniform(0.02, 0.5) for _ in range(samples)]


async def pickup(samples: int = 60) -> list[float]:
    """Idle worker, tasks arriving one at a time: ms from queued to started."""
    async with easel_stack(step_ms=1) as (_, client):
        latencies = []
        for i, gap in enumerate(arrival_gaps(samples)):
            await asyncio.sleep(gap)
            record = await client.submit("bench:a", ORIGIN, [request(steps=2, seed=i)])
            result = await wait_result(client, record.task_ids[0])
            latencies.append(float(result.started_ms - result.submitted_ms))
        return latencies


async def duty_cycle(tasks: int = 30, steps: int = 25, step_ms: float = 20) -> float:
    """One worker, ``tasks`` queued tasks of ~0.5 s: WebUI time inside generations / wall time first start-last end."""
    async with easel_stack(step_ms=step_ms) as (stack, client):
        record = await client.submit("bench:a", ORIGIN, [request(steps, seed=i) for i in range(tasks)])
        for task_id in record.task_ids:  # the figure comes from the stub's clock: asking often would only steal CPU
            await wait_result(client, task_id, poll_s=0.1)
        stats = await stub_stats(stack.webui_urls[0])
        return float(stats["busy_s"] / stats["window_s"])


async def redelivery() -> float:
    """Worker SIGKILLed mid-task: seconds until the task starts on another worker."""
    async with easel_stack(workers=2, step_ms=80) as (stack, client):
        after = await client.events.last_id()
        record = await client.submit("bench:a", ORIGIN, [request(steps=100)])
        task_id = record.task_ids[0]
        started_on, _, after = await _next_start(client, task_id, after)
        await asyncio.sleep(0.5)
        killed = time.time() * 1000
        stack.kill_worker(started_on)
        _, restarted, _ = await _next_start(client, task_id, after)
        await wait_result(client, task_id)
        return (restarted - killed) / 1000


async def _next_start(client: EaselClient, task_id: str, after: str) -> tuple[str, int, str]:
    """Wait for the task's next ``started`` event: (worker, when, stream position after it)."""
    while True:
        for entry_id, event in await client.events.read(after, block_ms=1000):
            after = entry_id
            if event.task_id == task_id and event.type == EventType.STARTED:
                return str(event.worker), event.at_ms, after


async def switches(affinity: bool, tasks: int = 120, seed: int = 7) -> int:
    """4 workers, 3 checkpoints, ``tasks`` mixed tasks: checkpoint loads over the whole run."""
    env = {"EASEL_AFFINITY": "true" if affinity else "false"}
    async with easel_stack(workers=4, step_ms=5, load_ms=300, worker_env=env) as (stack, client):
        rng = random.Random(seed)
        names = [c["model_name"] for c in CHECKPOINTS]
        batch = [request(steps=10, checkpoint=rng.choice(names), seed=i) for i in range(tasks)]
        record = await client.submit("bench:a", ORIGIN, batch)
        for task_id in record.task_ids:
            await wait_result(client, task_id)
        loads = [(await stub_stats(url))["loads"] for url in stack.webui_urls]
        return int(sum(loads))


async def fairness(heavy: int = 100, steps: int = 20, step_ms: float = 10) -> tuple[float, float]:
    """One user queues ``heavy`` tasks, then another queues one: (light user's wait, mean task duration), s."""
    async with easel_stack(step_ms=step_ms) as (_, client):
        flood = await client.submit("bench:heavy", ORIGIN, [request(steps, seed=i) for i in range(heavy)])
        light = await client.submit("bench:light", ORIGIN, [request(steps, seed=999)])
        light_result = await wait_result(client, light.task_ids[0])
        await asyncio.sleep(2)  # let a few more heavy tasks finish for the mean
        await client.cancel_job(flood.job_id, by="the benchmark")
        durations = [(light_result.finished_ms - light_result.started_ms) / 1000]
        for task_id in flood.task_ids:
            try:
                result = await client.result(task_id)
            except TaskFailed:
                continue
            if result is not None:
                durations.append((result.finished_ms - result.started_ms) / 1000)
        wait = (light_result.started_ms - light_result.submitted_ms) / 1000
        return wait, statistics.mean(durations)


async def eta_error(warmup: int = 6, tasks: int = 20, step_ms: float = 10, seed: int = 3) -> float:
    """Mean |predicted - actual| / actual wait before start, over tasks that waited at least 0.2 s."""
    async with easel_stack(step_ms=step_ms) as (_, client):
        for i in range(warmup):  # the estimate comes from measured speeds: let the worker measure some
            record = await client.submit("bench:a", ORIGIN, [request(steps=20, size=256, seed=i)])
            await wait_result(client, record.task_ids[0])
        rng = random.Random(seed)
        batch = [request(steps=rng.randint(10, 40), size=256, seed=100 + i) for i in range(tasks)]
        record = await client.submit("bench:a", ORIGIN, batch)
        predicted = {t: e.start_ms for t, e in (await client.estimates()).items()}
        errors = []
        for task_id in record.task_ids:
            result = await wait_result(client, task_id)
            waited = result.started_ms - result.submitted_ms
            guess = predicted.get(task_id)
            if guess is not None and waited >= 200:
                errors.append(abs(guess - result.started_ms) / waited)
        return statistics.mean(errors)


# --- plain arq -------------------------------------------------------------------------------------------------


@asynccontextmanager
async def arq_stack(workers: int = 1, step_ms: float = 1) -> AsyncIterator[tuple[LocalStack, ArqRedis, str]]:
    with LocalStack(embedded=True, workers=0, step_ms=step_ms) as stack:
        assert stack.redis_url is not None
        queue = f"{stack.prefix}arq"
        for i in range(workers):
            url = stack.start_stub(f"arqstub{i}")
            process, _ = stack.spawn(f"arq{i}", [stack.redis_url, queue, url, f"arq{i}"], module="bench.arq_baseline")
            stack.workers[f"arq{i}"] = process
        pool = await create_pool(RedisSettings.from_dsn(stack.redis_url), job_serializer=serialization.serialize,
                                 job_deserializer=serialization.deserialize, default_queue_name=queue)
        try:
            await asyncio.sleep(1.5)  # arq workers have no registry: give them time to start polling
            yield stack, pool, queue
        finally:
            await pool.aclose()


def _payload(steps: int, seed: int) -> dict[str, Any]:
    return {"prompt": "bench", "steps": steps, "width": 64, "height": 64, "seed": seed, "sampler_name": "Euler a"}


async def _arq_started(pool: ArqRedis, job_id: str, limit_s: float = 400) -> dict[str, Any]:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        raw = await pool.get(STARTED_PREFIX + job_id)
        if raw:
            started: dict[str, Any] = json.loads(raw)
            return started
        await asyncio.sleep(0.005)
    raise TimeoutError(job_id)


async def arq_pickup(samples: int = 20) -> list[float]:
    async with arq_stack() as (_, pool, _queue):
        latencies = []
        for i, gap in enumerate(arrival_gaps(samples)):
            await asyncio.sleep(gap)
            enqueued = time.time() * 1000
            job = await pool.enqueue_job("generate", _payload(2, i))
            assert job is not None
            started = await _arq_started(pool, job.job_id)
            latencies.append(started["ms"] - enqueued)
            await job.result(timeout=30, poll_delay=0.01)
        return latencies


async def arq_duty_cycle(tasks: int = 30, steps: int = 25, step_ms: float = 20) -> float:
    async with arq_stack(step_ms=step_ms) as (stack, pool, _queue):
        jobs = [await pool.enqueue_job("generate", _payload(steps, i)) for i in range(tasks)]
        for job in jobs:
            assert job is not None
            await job.result(timeout=120, poll_delay=0.05)
        stats = await stub_stats(stack.webui_urls[0])
        return float(stats["busy_s"] / stats["window_s"])


async def arq_redelivery() -> float:
    """arq re-runs a crashed worker's job when its in-progress key expires (job_timeout + 10 s = 310 s by default).

    Waiting that out would take over five minutes, so the figure is read off the key: the time from the kill to
    the key's expiry (its remaining TTL, read right after the kill) plus half a poll interval.
    """
    async with arq_stack(workers=2, step_ms=20) as (stack, pool, _queue):
        job = await pool.enqueue_job("generate", _payload(400, 1))
        assert job is not None
        started = await _arq_started(pool, job.job_id)
        await asyncio.sleep(0.5)
        killed = time.monotonic()
        stack.workers[started["worker"]].kill()
        ttl_ms = await pool.pttl(f"arq:in-progress:{job.job_id}")
        return (time.monotonic() - killed) + ttl_ms / 1000 + 0.25


# --- ComfyUI -------------------------------------------------------------------------------------------------


async def comfyui(tasks: int = 30, steps: int = 25, step_ms: float = 20) -> tuple[list[float], float]:
    """One worker on the ComfyUI stub, ``tasks`` queued tasks of ~0.5 s each.

    Returns Easel's overhead per task (ms from the prompt's ``execution_success`` in ComfyUI's history, when the
    server is done, to the ``finished`` event, published once the result is stored) and the duty cycle (time the
    stub spent executing prompts / wall time from its first start to its last end).
    """
    async with easel_stack(step_ms=step_ms, flavor="comfyui") as (stack, client):
        after = await client.events.last_id()
        record = await client.submit("bench:a", ORIGIN, [request(steps, seed=i) for i in range(tasks)])
        results = [await wait_result(client, task_id) for task_id in record.task_ids]
        stats = await stub_stats(stack.webui_urls[0])
        finished = {event.task_id: event.at_ms for _, event in await client.events.read(after, block_ms=10,
                                                                                         count=100_000)
                    if event.type == EventType.FINISHED}
        overheads = []
        async with httpx.AsyncClient(base_url=stack.webui_urls[0]) as http:
            for result in results:
                prompt_id = str(result.parameters["prompt_id"])
                entry = (await http.get(f"/history/{prompt_id}")).json()[prompt_id]
                done_ms = next(data["timestamp"] for name, data in entry["status"]["messages"]
                               if name == "execution_success")
                overheads.append(float(finished[result.task_id] - done_ms))
        return overheads, float(stats["busy_s"] / stats["window_s"])
