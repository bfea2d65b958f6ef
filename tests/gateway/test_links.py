"""The link itself: real TLS with a throwaway CA, and a node behind a TCP proxy that cuts and restores it."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import trustme

from bench.faults import TcpProxy
from common.events import EventType
from common.nodes import NodeStore
from common.queue import EaselClient
from tests.gateway.conftest import RunningGateway
from tests.test_pool import CLI, events, eventually, result_of, small
from workers.gateway_source import NodeRefused


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


async def test_a_node_trusts_the_gateway_through_the_ca_file(  # type: ignore[no-untyped-def]
    client: EaselClient, stub, start_gateway, nodes: NodeStore, start_node, ca: trustme.CA, tmp_path: Path
) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    gateway: RunningGateway = await start_gateway(ssl_context=server_context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    token = await nodes.invite("tls-node")
    with pytest.raises(NodeRefused, match="certificate"):  # without the CA, the certificate is not trusted
        await start_node(gateway.url, token, stub.url)
    await start_node(gateway.url, token, stub.url, gateway_ca_file=str(ca_file))
    record = await client.submit("u:a", CLI, [small()])
    assert (await result_of(client, record.task_ids[0])).worker == "tls-node"


async def test_a_cut_link_resumes_without_duplicate_results(  # type: ignore[no-untyped-def]
    client: EaselClient, start_stub, gateway: RunningGateway, nodes: NodeStore, start_node
) -> None:
    stub = await start_stub(step_ms=20)
    proxy = TcpProxy(gateway.port)
    await proxy.start()
    try:
        node = await start_node(f"http://127.0.0.1:{proxy.port}", await nodes.invite("cut-node"), stub.url)
        record = await client.submit("u:a", CLI, [small(steps=100)])  # 2 s
        task_id = record.task_ids[0]
        await eventually(lambda: _has(client, task_id, EventType.PROGRESS))
        await proxy.refuse()  # the link drops mid-task; the node keeps generating
        await asyncio.sleep(0.5)
        await proxy.restore()
        result = await result_of(client, task_id)
        assert result.worker == "cut-node" and result.tries == 1
        assert node._gateway is not None and node._gateway.connections >= 2
        await eventually(lambda: _has(client, task_id, EventType.FINISHED))  # it goes out after the result
        finished = [e for e in await events(client, EventType.FINISHED) if e.task_id == task_id]
        assert len(finished) == 1
        follow = await client.submit("u:a", CLI, [small()])  # the node goes on taking tasks
        assert (await result_of(client, follow.task_ids[0])).worker == "cut-node"
        await node.close()  # while its link is up: it leaves the pool at once
    finally:
        await proxy.close()


async def test_a_node_gone_past_its_lease_loses_the_task_and_its_late_result(  # type: ignore[no-untyped-def]
    client: EaselClient, start_stub, start_gateway, nodes: NodeStore, start_node
) -> None:
    gateway: RunningGateway = await start_gateway(lease_s=1)
    slow = await start_stub(step_ms=30)
    proxy = TcpProxy(gateway.port)
    await proxy.start()
    try:
        gone = await start_node(f"http://127.0.0.1:{proxy.port}", await nodes.invite("gone-node"), slow.url,
                                lease_s=1)
        record = await client.submit("u:a", CLI, [small(steps=100)])  # 3 s
        task_id = record.task_ids[0]
        await eventually(lambda: _has(client, task_id, EventType.PROGRESS))
        await proxy.refuse()
        spare = await start_stub(step_ms=1)
        await start_node(gateway.url, await nodes.invite("spare"), spare.url, lease_s=1)
        result = await result_of(client, task_id)
        assert result.worker == "spare"
        await proxy.restore()  # the first node comes back with its stale result: discarded
        await asyncio.sleep(0)
        await eventually(lambda: _idle(client, "gone-node"), limit_s=15)
        assert (await client.result(task_id)).worker == "spare"  # type: ignore[union-attr]
        await eventually(lambda: _has(client, task_id, EventType.FINISHED))
        finished = [e for e in await events(client, EventType.FINISHED) if e.task_id == task_id]
        assert [e.worker for e in finished] == ["spare"]
        await gone.close()
    finally:
        await proxy.close()


async def _has(client: EaselClient, task_id: str, kind: EventType) -> bool:
    return any(e.task_id == task_id and e.type == kind for e in await events(client))


async def _idle(client: EaselClient, name: str) -> bool:
    return any(w.name == name and w.state == "idle" for w in await client.registry.live())
