"""Operators see the pool: /metrics of the gateway (nodes, queue depth, wait and run times, refusals), a worker's
exporter (duty cycle), and the bot's count of Discord 429s."""

from __future__ import annotations

import logging

import httpx
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import RateLimitCounter
from common import metrics
from common.nodes import NodeStore
from common.queue import EaselClient
from easel.stack import free_port
from tests.conftest import StubServer
from tests.gateway.conftest import RunningGateway
from tests.test_pool import CLI, eventually, result_of, small


def series(text: str) -> dict[str, float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}"] = sample.value
    return found


async def test_the_gateway_serves_metrics_of_the_pool(  # type: ignore[no-untyped-def]
    client: EaselClient, stub: StubServer, gateway: RunningGateway, nodes: NodeStore, start_node
) -> None:
    await start_node(gateway.url, await nodes.invite("metered"), stub.url)
    record = await client.submit("u:a", CLI, [small()])
    await result_of(client, record.task_ids[0])

    async def scraped() -> dict[str, float] | None:
        async with httpx.AsyncClient() as http:
            found = series((await http.get(f"{gateway.url}/metrics")).text)
        return found if found.get("easel_gateway_nodes_connected{}") == 1 else None

    found = await eventually(scraped, limit_s=10)
    assert found["easel_tasks_finished_total{worker=metered}"] >= 1
    assert any(k.startswith("easel_task_run_seconds_count{checkpoint=") for k in found)
    assert any(k.startswith("easel_task_wait_seconds_count{checkpoint=") for k in found)
    assert "easel_worker_busy_seconds_total{worker=metered}" in found  # the node's loop runs in this process


async def test_queue_depth_by_priority_class(client: EaselClient) -> None:
    await client.submit("u:a", CLI, [small(seed=i) for i in range(3)])  # no worker: they wait
    await metrics.update_queue_depth(client.redis, client.keys)
    assert metrics.QUEUE_DEPTH.labels("default", "waiting")._value.get() == 3


def test_a_worker_exporter_and_the_bots_429_counter() -> None:
    port = free_port()
    metrics.start_exporter(port, host="127.0.0.1")
    logging.getLogger("discord.http").addHandler(handler := RateLimitCounter(level=logging.WARNING))
    try:
        logging.getLogger("discord.http").warning(
            "We are being rate limited. %s %s responded with 429. Retrying in %.2f seconds.", "PATCH", "/x", 0.5)
    finally:
        logging.getLogger("discord.http").removeHandler(handler)
    found = series(httpx.get(f"http://127.0.0.1:{port}/metrics").text)
    assert found["easel_discord_rate_limited_total{scope=retried}"] >= 1


def test_the_grafana_dashboard_uses_only_exported_series() -> None:
    import json
    import re
    from pathlib import Path

    dashboard = json.loads((Path(__file__).parents[2] / "docs/grafana/easel.json").read_text())
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"easel_[a-z_]+", target["expr"])}
    metrics.QUEUE_DEPTH.labels("default", "waiting").set(0)  # labelled series appear once used
    for family in (metrics.TASK_WAIT, metrics.TASK_RUN):
        family.labels("x").observe(1)
    for counter in (metrics.WORKER_BUSY, metrics.WORKER_UP, metrics.TASKS_FINISHED, metrics.TASK_FAILURES,
                    metrics.DISCORD_RATE_LIMITED, metrics.GATEWAY_REFUSED):
        counter.labels("x").inc(0)
    exported = {s.name for family in REGISTRY.collect() for s in family.samples}
    assert used and used <= exported, used - exported
