"""Prometheus metrics of the pool: one definition of each series, shared by the gateway, the bot and workers.

Each process exports what it sees: workers their own duty cycle, run times and failures; the gateway the same for
its nodes, plus connected nodes and refused requests; the bot Discord's 429s. The queue depth is read from Redis
by whoever scrapes it (:func:`update_queue_depth`). ``EASEL_METRICS_PORT`` starts a plain exporter in a worker or
the bot; the gateway serves ``/metrics`` on its own port.
"""

from __future__ import annotations

import json
import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest, start_http_server
from redis.asyncio import Redis

from common.queue.keys import Keys
from common.tasks import TaskResult

_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

QUEUE_DEPTH = Gauge("easel_queue_depth", "Tasks waiting or running, by priority class.", ["priority", "state"])
TASK_WAIT = Histogram("easel_task_wait_seconds", "Time from submit to a worker's start, by checkpoint.",
                      ["checkpoint"], buckets=_BUCKETS)
TASK_RUN = Histogram("easel_task_run_seconds", "Time a worker spent on a task, by checkpoint.", ["checkpoint"],
                     buckets=_BUCKETS)
WORKER_BUSY = Counter("easel_worker_busy_seconds_total", "Seconds a worker spent running tasks (duty cycle: "
                      "rate of this over rate of easel_worker_up_seconds_total).", ["worker"])
WORKER_UP = Counter("easel_worker_up_seconds_total", "Seconds a worker was up and taking tasks.", ["worker"])
TASKS_FINISHED = Counter("easel_tasks_finished_total", "Tasks that ended with images.", ["worker"])
TASK_FAILURES = Counter("easel_task_failures_total", "Tasks that ended failed or cancelled, by failure code.",
                        ["code"])
DISCORD_RATE_LIMITED = Counter("easel_discord_rate_limited_total", "Discord HTTP 429 answers the bot got.",
                               ["scope"])
NODES_CONNECTED = Gauge("easel_gateway_nodes_connected", "Volunteer nodes connected to this gateway.")
GATEWAY_REFUSED = Counter("easel_gateway_refused_total", "Node requests and connections the gateway refused.",
                          ["node"])


def observe_result(result: TaskResult) -> None:
    """Wait and run time of a finished task, and the busy time of its worker."""
    checkpoint = (result.checkpoint or "none").split(" [")[0]
    if result.submitted_ms:
        TASK_WAIT.labels(checkpoint).observe(max(0.0, (result.started_ms - result.submitted_ms) / 1000))
    TASK_RUN.labels(checkpoint).observe(max(0.0, (result.finished_ms - result.started_ms) / 1000))
    TASKS_FINISHED.labels(result.worker).inc()


def observe_failure(code: str) -> None:
    TASK_FAILURES.labels(code).inc()


class DutyClock:
    """Counts a worker's up and busy seconds (for the duty-cycle series)."""

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self._busy_since: float | None = None
        self._last = time.monotonic()

    def tick(self) -> None:
        now = time.monotonic()
        WORKER_UP.labels(self.worker).inc(now - self._last)
        if self._busy_since is not None:
            WORKER_BUSY.labels(self.worker).inc(now - max(self._busy_since, self._last))
        self._last = now

    def busy(self) -> None:
        self.tick()
        self._busy_since = time.monotonic()

    def idle(self) -> None:
        self.tick()
        self._busy_since = None


async def update_queue_depth(redis: Redis, keys: Keys, *, limit: int = 50_000) -> None:
    """Set the queue depth gauges from the task metadata in Redis (waiting and running tasks)."""
    counts: dict[tuple[str, str], int] = {}
    seen = 0
    async for _, raw in redis.hscan_iter(keys.meta, count=1000):
        seen += 1
        if seen > limit:
            break
        try:
            meta = json.loads(raw)
        except ValueError:
            continue
        key = (str(meta.get("priority", "default")), "running" if meta.get("worker") else "waiting")
        counts[key] = counts.get(key, 0) + 1
    QUEUE_DEPTH.clear()
    for (priority, state), n in counts.items():
        QUEUE_DEPTH.labels(priority, state).set(n)


async def aiohttp_handler(_: web.Request) -> web.Response:
    body = generate_latest()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def start_exporter(port: int | None, host: str = "0.0.0.0") -> None:
    """``EASEL_METRICS_PORT``: serve /metrics on that port (a daemon thread); None: no exporter."""
    if port:
        start_http_server(port, addr=host)
