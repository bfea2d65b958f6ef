"""``python -m bench --gateway [--json]``: volunteer nodes through the gateway, next to direct workers, one run.

- pickup latency (queued -> started, idle worker, arrivals at random gaps) and duty cycle (0.5 s tasks back to
  back), once with a direct worker on Redis and once with the same worker code as a node through the gateway;
- what one gateway process costs per connected node, idle and busy, with 1, 10 and 100 simulated nodes (each a
  WebSocket client speaking the protocol: idle ones heartbeat and poll like a worker, busy ones run 0.5 s tasks
  with progress events and a real PNG result): CPU (percent of one core) and resident memory per node.
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from PIL import Image
from redis.asyncio import Redis

from bench import scenarios
from bench.scenarios import ORIGIN, percentile, request, stub_stats, wait_result
from common import gateway_protocol as proto
from common.nodes import NodeStore
from common.queue import EaselClient
from common.queue.keys import Keys
from common.registry import WorkerInfo, WorkerState
from common.settings import Settings
from easel.stack import LocalStack, _wait, free_port

TARGETS = {"gateway_pickup_p50_ms": ("<=", 20), "gateway_duty_cycle": (">=", 0.97)}
NODE_COUNTS = (1, 10, 100)
WINDOW_S = 10.0


def _start_gateway(stack: LocalStack) -> tuple[subprocess.Popen[bytes], str]:
    """A gateway process over the stack's Redis, once it answers: (process, its base URL)."""
    port = free_port()
    env = {"REDIS_URL": stack.redis_url or "", "EASEL_REDIS_PREFIX": stack.prefix, "EASEL_LOG_LEVEL": "WARNING",
           "EASEL_GATEWAY_SECRET": "bench"}
    process, log = stack.spawn("gateway", ["gateway", "--listen", f"127.0.0.1:{port}"], env)
    url = f"http://127.0.0.1:{port}"
    _wait(lambda: _answers(f"{url}/healthz"), "gateway", process, log, 20)
    return process, url


@asynccontextmanager
async def gateway_stack(nodes: int, step_ms: float) -> AsyncIterator[tuple[LocalStack, EaselClient, str]]:
    """A stack with no direct worker: a gateway process and ``nodes`` node processes, each before a stub."""
    with LocalStack(embedded=True, workers=0, step_ms=step_ms) as stack:
        _, url = _start_gateway(stack)
        settings = Settings(redis_url=stack.redis_url, redis_prefix=stack.prefix, **scenarios.BENCH_LIMITS)
        async with EaselClient.connect(settings) as client:
            store = NodeStore(client.redis, Keys(stack.prefix))
            for i in range(nodes):
                webui = stack.start_stub(f"stub{i}")
                token = await store.invite(f"node{i}")
                node_env = {"EASEL_GATEWAY_URL": url, "EASEL_NODE_TOKEN": token, "EASEL_WEBUI_URL": webui,
                            "EASEL_LOG_LEVEL": "WARNING", "REDIS_URL": ""}
                node, node_log = stack.spawn(f"node{i}", ["worker"], node_env)
                name = f"node{i}"
                _wait(lambda n=name: _registered(stack, n), f"node {name}", node, node_log, 30)  # type: ignore[misc]
            yield stack, client, url


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=1).is_success
    except httpx.HTTPError:
        return False


def _registered(stack: LocalStack, name: str) -> bool:
    import redis

    client = redis.Redis.from_url(stack.redis_url or "")
    try:
        return bool(client.exists(Keys(stack.prefix).worker(name)))
    finally:
        client.close()


async def pickup_through_gateway(samples: int) -> list[float]:
    async with gateway_stack(1, step_ms=1) as (_, client, _url):
        latencies = []
        for i, gap in enumerate(scenarios.arrival_gaps(samples)):
            await asyncio.sleep(gap)
            record = await client.submit("bench:a", ORIGIN, [request(steps=2, seed=i)])
            result = await wait_result(client, record.task_ids[0])
            latencies.append(float(result.started_ms - result.submitted_ms))
        return latencies


async def duty_through_gateway(tasks: int, steps: int = 25, step_ms: float = 20) -> float:
    async with gateway_stack(1, step_ms=step_ms) as (stack, client, _url):
        record = await client.submit("bench:a", ORIGIN, [request(steps, seed=i) for i in range(tasks)])
        for task_id in record.task_ids:
            await wait_result(client, task_id)
        stats = await stub_stats(stack.webui_urls[0])
        return float(stats["busy_s"] / stats["window_s"])


# --- simulated nodes -------------------------------------------------------------------------------------


def _png(size: int = 64) -> str:
    out = io.BytesIO()
    Image.new("RGB", (size, size), (10, 120, 200)).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


class SimNode:
    """A node that speaks the protocol itself (no WebUI): idle it heartbeats and polls; busy it runs 0.5 s tasks."""

    def __init__(self, url: str, token: str, name: str) -> None:
        self.url, self.token, self.name = url, token, name
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.info = WorkerInfo(name=name, node="sim", webui_url="http://sim", state=WorkerState.IDLE,
                               samplers=["Euler a", "Euler", "DPM++ 2M"])
        self.done = 0

    async def call(self, ws: aiohttp.ClientWebSocketResponse, **req: Any) -> dict[str, Any]:
        req["id"] = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[req["id"]] = future
        await ws.send_str(json.dumps(req))
        return await future

    async def run(self, http: aiohttp.ClientSession, busy: asyncio.Event, png: str) -> None:
        async with http.ws_connect(self.url + proto.PATH, headers={"Authorization": f"Bearer {self.token}"},
                                   max_msg_size=0) as ws:
            reader = asyncio.create_task(self._read(ws))
            info = self.info.model_dump(mode="json")
            last_beat = 0.0
            try:
                while True:
                    now = time.monotonic()
                    if now - last_beat > 2:
                        await self.call(ws, type="heartbeat", info=info)
                        last_beat = now
                    claimed = (await self.call(ws, type="claim", info=info))["claimed"] if busy.is_set() else None
                    if claimed is None:
                        await asyncio.sleep(0.5)  # a worker's fallback poll
                        continue
                    await self._run_task(ws, claimed, png)
            finally:
                reader.cancel()

    async def _run_task(self, ws: aiohttp.ClientWebSocketResponse, task: dict[str, Any], png: str) -> None:
        meta = task["meta"]
        event = {"task_id": task["task_id"], "job_id": meta["job_id"]}
        await self.call(ws, type="publish", event={**event, "type": "started"})
        for step in range(5):
            await asyncio.sleep(0.1)
            await self.call(ws, type="publish", event={**event, "type": "progress", "step": step, "steps": 5})
        image = {"png": png, "seed": 1, "infotext": "", "width": 64, "height": 64}
        result = {**event, "worker": self.name, "images": [image], "seeds": [1], "started_ms": 1, "finished_ms": 2}
        await self.call(ws, type="finish", task_id=task["task_id"], result=result)
        await self.call(ws, type="publish", event={**event, "type": "finished"})
        self.done += 1

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            data = json.loads(msg.data)
            if data["type"] == "reply" and (future := self.pending.pop(data["id"], None)) is not None:
                future.set_result(data)


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def nodes_held(counts: tuple[int, ...] = NODE_COUNTS) -> list[dict[str, Any]]:
    rows = []
    with LocalStack(embedded=True, workers=0) as stack:
        process, url = _start_gateway(stack)
        base_rss = _rss_mib(process.pid)
        settings = Settings(redis_url=stack.redis_url, redis_prefix=stack.prefix, max_queued_per_user=100_000,
                            max_sweep_tasks=1000)
        png = _png()
        async with EaselClient.connect(settings) as client, aiohttp.ClientSession() as http:
            store = NodeStore(Redis.from_url(stack.redis_url or ""), Keys(stack.prefix))
            for count in counts:
                sims = [SimNode(url, await store.invite(f"sim{count}-{i}"), f"sim{count}-{i}") for i in range(count)]
                busy = asyncio.Event()
                running = [asyncio.create_task(s.run(http, busy, png)) for s in sims]
                await asyncio.sleep(3)  # all connected and settled
                idle = _sample(process.pid)
                await asyncio.sleep(WINDOW_S)
                idle_cpu, idle_rss = _since(process.pid, idle)
                feeder = asyncio.create_task(_feed(client, count))
                busy.set()
                await asyncio.sleep(2)
                start = _sample(process.pid)
                done0 = sum(s.done for s in sims)
                await asyncio.sleep(WINDOW_S)
                busy_cpu, busy_rss = _since(process.pid, start)
                tasks_per_s = (sum(s.done for s in sims) - done0) / WINDOW_S
                feeder.cancel()
                for task in running:
                    task.cancel()
                for failed in await asyncio.gather(feeder, *running, return_exceptions=True):
                    if isinstance(failed, Exception):
                        print("simulated node failed:", repr(failed))
                rows.append({
                    "nodes": count, "idle_cpu_pct": round(idle_cpu, 2),
                    "idle_cpu_pct_per_node": round(idle_cpu / count, 3),
                    "busy_cpu_pct": round(busy_cpu, 2), "busy_cpu_pct_per_node": round(busy_cpu / count, 3),
                    "rss_mib": round(busy_rss, 1),
                    "rss_kib_per_node": round(max(0.0, idle_rss - base_rss) * 1024 / count, 1),
                    "busy_tasks_per_s": round(tasks_per_s, 1),
                })
                for s in sims:
                    await store.revoke(s.name)
                await asyncio.sleep(3)
            await store.redis.aclose()
    return rows


async def _feed(client: EaselClient, nodes: int) -> None:
    """Keep about two tasks per node waiting."""
    seed = itertools.count()
    while True:
        depth = await client.redis.hlen(client.keys.meta)  # type: ignore[misc]
        want = 3 * nodes - depth
        if want > 0:
            await client.submit("bench:a", ORIGIN, [request(steps=2, seed=next(seed)) for _ in range(min(want, 200))])
        await asyncio.sleep(0.2)


def _sample(pid: int) -> tuple[float, float]:
    return time.monotonic(), _cpu_s(pid)


def _since(pid: int, start: tuple[float, float]) -> tuple[float, float]:
    wall = time.monotonic() - start[0]
    return 100 * (_cpu_s(pid) - start[1]) / wall, _rss_mib(pid)


async def measure(samples: int = 40, tasks: int = 20) -> dict[str, Any]:
    direct_pickups = await scenarios.pickup(samples)
    gateway_pickups = await pickup_through_gateway(samples)
    direct_duty = await scenarios.duty_cycle(tasks)
    gateway_duty = await duty_through_gateway(tasks)
    return {
        "direct_pickup_p50_ms": round(percentile(direct_pickups, 50), 2),
        "direct_pickup_p99_ms": round(percentile(direct_pickups, 99), 2),
        "gateway_pickup_p50_ms": round(percentile(gateway_pickups, 50), 2),
        "gateway_pickup_p99_ms": round(percentile(gateway_pickups, 99), 2),
        "direct_duty_cycle": round(direct_duty, 4),
        "gateway_duty_cycle": round(gateway_duty, 4),
        "nodes_held": await nodes_held(),
    }


def checks(figures: dict[str, Any]) -> dict[str, bool]:
    return {key: figures[key] <= bound if op == "<=" else figures[key] >= bound
            for key, (op, bound) in TARGETS.items()}


def show(figures: dict[str, Any], seconds: float) -> None:
    from rich.console import Console
    from rich.table import Table

    ok = checks(figures)
    table = Table(title=f"Gateway benchmark ({seconds:.0f} s): direct worker vs node through the gateway")
    for column in ("figure", "value", "target", ""):
        table.add_column(column)
    for key, value in figures.items():
        if key == "nodes_held":
            continue
        target = TARGETS.get(key)
        mark = "" if key not in ok else ("[green]ok[/]" if ok[key] else "[red]MISSED[/]")
        table.add_row(key, str(value), f"{target[0]} {target[1]}" if target else "", mark)
    Console().print(table)
    held = Table(title=f"One gateway process, simulated nodes ({WINDOW_S:g} s windows; CPU in % of one core)")
    for column in figures["nodes_held"][0]:
        held.add_column(column, justify="right")
    for row in figures["nodes_held"]:
        held.add_row(*(str(v) for v in row.values()))
    Console().print(held)

