"""A volunteer node through the gateway is one worker of the pool: it runs tasks, reports progress, obeys control."""

from __future__ import annotations

from common.events import EventType
from common.nodes import NodeStore
from common.queue import EaselClient, messages
from tests.conftest import StubServer, until
from tests.gateway.conftest import RunningGateway
from tests.test_pool import CLI, events, eventually, result_of, small


async def test_a_node_runs_a_task_through_the_gateway(  # type: ignore[no-untyped-def]
    client: EaselClient, stub: StubServer, gateway: RunningGateway, nodes: NodeStore, start_node
) -> None:
    token = await nodes.invite("alice-gpu")
    worker = await start_node(gateway.url, token, stub.url)
    assert worker.wctx is not None and worker.wctx.info.name == "alice-gpu"
    assert "alice-gpu" in [w.name for w in await eventually(client.registry.live)]
    record = await client.submit("discord:1234", CLI, [small(steps=60)])
    result = await result_of(client, record.task_ids[0])
    assert result.worker == "alice-gpu" and len(result.images) == 1
    wanted = {EventType.STARTED, EventType.PROGRESS, EventType.FINISHED}  # finished goes out after the result

    async def seen() -> bool:
        return wanted <= {e.type for e in await events(client) if e.task_id == record.task_ids[0]}

    await eventually(seen)
    assert all(e.worker == "alice-gpu" for e in await events(client) if e.type != EventType.QUEUED)


async def test_the_node_sees_a_pseudonym_never_the_owner(  # type: ignore[no-untyped-def]
    client: EaselClient, stub: StubServer, gateway: RunningGateway, nodes: NodeStore, start_node
) -> None:
    worker = await start_node(gateway.url, await nodes.invite("bob-gpu"), stub.url)
    seen: list[str] = []
    source = worker.wctx.source  # type: ignore[union-attr]
    original = source.spec

    async def spy(claimed):  # type: ignore[no-untyped-def]
        spec = await original(claimed)
        seen.extend([spec.owner, claimed.meta.owner])
        return spec

    source.spec = spy  # type: ignore[method-assign]
    record = await client.submit("discord:987654321", CLI, [small()])
    await result_of(client, record.task_ids[0])
    assert seen and all(o.startswith("user-") and "987654321" not in o for o in seen)


async def test_cancel_reaches_the_nodes_webui_and_pause_holds_it(  # type: ignore[no-untyped-def]
    client: EaselClient, start_stub, gateway: RunningGateway, nodes: NodeStore, start_node
) -> None:
    stub = await start_stub(step_ms=50)
    await start_node(gateway.url, await nodes.invite("carol-gpu"), stub.url)
    record = await client.submit("u:a", CLI, [small(steps=100)])
    task_id = record.task_ids[0]
    await eventually(lambda: _has(client, task_id, EventType.PROGRESS))
    await client.cancel(task_id)
    await eventually(lambda: _has(client, task_id, EventType.CANCELLED))
    assert stub.engine.stats.busy_s < 2  # the WebUI stopped sampling (100 steps take 5 s)
    await client.redis.publish(client.keys.inbox("carol-gpu"), messages.encode(messages.Pause()))
    await eventually(lambda: _state(client, "carol-gpu", "paused"))
    held = await client.submit("u:a", CLI, [small()])
    await client.redis.publish(client.keys.inbox("carol-gpu"), messages.encode(messages.Resume()))
    await result_of(client, held.task_ids[0])


async def _has(client: EaselClient, task_id: str, kind: EventType) -> bool:
    return any(e.task_id == task_id and e.type == kind for e in await events(client))


async def _state(client: EaselClient, name: str, state: str) -> bool:
    return any(w.name == name and w.state == state for w in await client.registry.live())




async def test_drain_reaches_a_node(  # type: ignore[no-untyped-def]
    client: EaselClient, stub: StubServer, gateway: RunningGateway, nodes: NodeStore, start_node
) -> None:
    worker = await start_node(gateway.url, await nodes.invite("dora-gpu"), stub.url)
    await client.redis.publish(client.keys.inbox("dora-gpu"), messages.encode(messages.Drain()))
    await eventually(lambda: _state(client, "dora-gpu", "draining"))
    await until(lambda: worker._running is not None and worker._running.done())  # its loop stopped
