"""A node can do its job and nothing else: every attempt at more is refused and logged, nothing of anyone else's
changes; revoked and replaced tokens are refused; a revoked node's task goes back in line within 5 s."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from typing import Any

import aiohttp
import pytest

from common import gateway_protocol as proto
from common.events import EventType
from common.models import Txt2ImgRequest
from common.nodes import NodeStore, token_hash
from common.queue import EaselClient, messages
from common.registry import WorkerInfo
from tests.conftest import png_bytes
from tests.gateway.conftest import RunningGateway
from tests.test_pool import CLI, events, eventually, result_of, small


class RawNode:
    """A hand-driven node: speaks the protocol itself, so it can say what the worker code never would."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, http: aiohttp.ClientSession) -> None:
        self.ws, self.http = ws, http
        self.ids = itertools.count(1)

    @classmethod
    async def connect(cls, gateway: RunningGateway, token: str) -> RawNode:
        http = aiohttp.ClientSession()
        ws = await http.ws_connect(gateway.url + proto.PATH, headers={"Authorization": f"Bearer {token}"})
        welcome = json.loads((await ws.receive()).data)
        assert welcome["type"] == "welcome"
        return cls(ws, http)

    async def call(self, **request: Any) -> dict[str, Any]:
        request.setdefault("id", next(self.ids))
        await self.ws.send_str(json.dumps(request))
        while True:
            message = json.loads((await self.ws.receive(timeout=10)).data)
            if message["type"] == "reply" and message["id"] == request["id"]:
                return message

    async def close(self) -> None:
        await self.ws.close()
        await self.http.close()


INFO = WorkerInfo(name="anything", node="evil", webui_url="http://127.0.0.1:1", state="idle").model_dump(mode="json")


def png_of(width: int, height: int) -> str:
    import base64

    return base64.b64encode(png_bytes(width, height)).decode()


def result(task: dict[str, Any], images: list[str], width: int = 64, height: int = 64) -> dict[str, Any]:
    return {"task_id": task["task_id"], "job_id": task["meta"]["job_id"], "worker": "victim",
            "images": [{"png": png, "seed": 1, "infotext": "", "width": width, "height": height} for png in images],
            "seeds": [1] * len(images), "started_ms": 1, "finished_ms": 2}


async def test_a_malicious_node_is_refused_everything_but_its_own_work(  # type: ignore[no-untyped-def]
    client: EaselClient, start_stub, gateway: RunningGateway, nodes: NodeStore, start_node,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    stub = await start_stub(step_ms=20)
    victim_token = await nodes.invite("victim")
    mallory_token = await nodes.invite("mallory")
    await start_node(gateway.url, victim_token, stub.url)
    theirs = await client.submit("discord:42", CLI, [small(steps=100)])  # 2 s on the victim
    task_id = theirs.task_ids[0]
    await eventually(lambda: _running_on(client, task_id, "victim"))

    evil = await RawNode.connect(gateway, mallory_token)
    fake = result({"task_id": task_id, "meta": {"job_id": theirs.job_id}}, [png_of(64, 64)])
    attempts: list[dict[str, Any]] = [
        {"type": "finish", "task_id": task_id, "result": fake},  # finish another node's task with a fake image
        {"type": "renew", "task_ids": [task_id], "info": INFO},  # keep another node's lease
        {"type": "hand_back", "task_id": task_id, "counted": True},  # take another node's work away
        {"type": "cancel_requested", "task_id": task_id},
        {"type": "publish", "event": {"type": "finished", "task_id": task_id, "job_id": theirs.job_id}},
        {"type": "preview", "task_id": task_id, "jpeg": png_of(8, 8)},
        {"type": "enqueue", "owner": "discord:42", "request": {"prompt": "x"}},  # fill someone's quota
        {"type": "cancel", "task_id": task_id},
        {"type": "result", "task_id": task_id},  # read someone's result
        {"type": "control", "worker": "victim", "message": {"type": "pause"}},  # pause another node
    ]
    refused_before = gateway.gateway.refused
    for attempt in attempts:
        reply = await evil.call(**attempt)
        assert reply["ok"] is False, attempt
    assert gateway.gateway.refused - refused_before == len(attempts)
    assert (await evil.call(type="claim", info=INFO))["claimed"] is None  # nothing else is waiting

    own = await client.submit("discord:43", CLI, [small(steps=2)])  # the victim is busy: mallory gets this one
    claimed = (await evil.call(type="claim", info=INFO))["claimed"]
    assert claimed["task_id"] == own.task_ids[0]
    assert "discord" not in json.dumps(claimed)  # owners are pseudonymous
    for bad in ([png_of(32, 32)], [png_of(64, 64)] * 2, ["bm90IGFuIGltYWdl"]):  # wrong size, wrong count, not a PNG
        reply = await evil.call(type="finish", task_id=claimed["task_id"], result=result(claimed, bad))
        assert reply["ok"] is False
    await evil.close()

    assert (await result_of(client, task_id)).worker == "victim"  # their task, their result, untouched
    redone = await result_of(client, own.task_ids[0])  # mallory vanished: back in line within the lease
    assert redone.worker == "victim"
    refusals = [r for r in caplog.records if "mallory: refused" in r.getMessage()]
    assert len(refusals) >= len(attempts) + 3
    assert mallory_token not in caplog.text and token_hash(mallory_token) not in caplog.text
    assert victim_token not in caplog.text


async def test_revoked_and_replaced_tokens_are_refused(  # type: ignore[no-untyped-def]
    gateway: RunningGateway, nodes: NodeStore, caplog: pytest.LogCaptureFixture
) -> None:
    old = await nodes.invite("eve")
    new = await nodes.invite("eve")  # a new invite replaces the token: the old one is a replay now
    for token in (old, "easel-node-guessed", ""):
        await _refused(gateway, token)
    current = await RawNode.connect(gateway, new)  # the current token works
    await nodes.revoke("eve")
    try:
        async with asyncio.timeout(5):  # and the gateway closes the link once it is revoked
            while (await current.ws.receive()).type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                pass
        assert current.ws.close_code == proto.CLOSE_REVOKED
    finally:
        await current.close()
    await _refused(gateway, new)
    assert old not in caplog.text and new not in caplog.text
    assert len([r for r in caplog.records if "refused a node connection" in r.getMessage()]) == 4


async def _refused(gateway: RunningGateway, token: str) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await http.ws_connect(gateway.url + proto.PATH, headers={"Authorization": f"Bearer {token}"})
        assert caught.value.status == 401


async def test_revoke_disconnects_within_5s_and_puts_the_task_back(  # type: ignore[no-untyped-def]
    client: EaselClient, start_stub, gateway: RunningGateway, nodes: NodeStore, start_node
) -> None:
    stub = await start_stub(step_ms=50)
    node = await start_node(gateway.url, await nodes.invite("frank"), stub.url)
    record = await client.submit("u:a", CLI, [small(steps=100)])  # 5 s
    task_id = record.task_ids[0]
    await eventually(lambda: _running_on(client, task_id, "frank"))
    loop = asyncio.get_running_loop()
    asked = loop.time()
    await nodes.revoke("frank")
    await eventually(lambda: _not_running(client, task_id), limit_s=5)
    assert loop.time() - asked < 5
    assert node._gateway is not None and node._gateway._fatal is not None  # the link was closed as revoked
    assert "frank" not in [w.name for w in await client.registry.live()]
    spare = await start_stub(step_ms=1)
    await start_node(gateway.url, await nodes.invite("grace"), spare.url)
    assert (await result_of(client, task_id)).worker == "grace"


async def _running_on(client: EaselClient, task_id: str, worker: str) -> bool:
    raw = await client.redis.hget(client.keys.meta, task_id)  # type: ignore[misc]
    return raw is not None and json.loads(raw).get("worker") == worker


async def _not_running(client: EaselClient, task_id: str) -> bool:
    return await client.redis.zscore(client.keys.running, task_id) is None



async def test_a_limited_token_is_never_given_bigger_tasks_or_other_checkpoints(  # type: ignore[no-untyped-def]
    client: EaselClient, stub, gateway: RunningGateway, nodes: NodeStore, start_node, start_stub
) -> None:
    spare = await start_stub()
    await start_node(gateway.url, await nodes.invite("big-gpu"), spare.url)
    await client.redis.publish(client.keys.inbox("big-gpu"), messages.encode(messages.Pause()))
    await eventually(lambda: _state(client, "big-gpu", "paused"))
    await start_node(gateway.url, await nodes.invite("small-gpu", max_pixels=64 * 64,
                                                     checkpoints=["v1-5-pruned-emaonly"]), stub.url)
    small_info = next(w for w in await client.registry.live() if w.name == "small-gpu")
    assert [c.model_name for c in small_info.checkpoints] == ["v1-5-pruned-emaonly"]  # all the pool sees of it
    big = await client.submit("u:a", CLI, [Txt2ImgRequest(prompt="x", steps=2, width=128, height=128, seed=1)])
    other = await client.submit("u:a", CLI, [small(checkpoint="dreamshaper_8")])
    fits = await client.submit("u:a", CLI, [small(checkpoint="v1-5-pruned-emaonly")])
    assert (await result_of(client, fits.task_ids[0])).worker == "small-gpu"
    for task_id in (big.task_ids[0], other.task_ids[0]):
        assert await client.result(task_id) is None
        assert not await _running_on(client, task_id, "small-gpu")
    await client.redis.publish(client.keys.inbox("big-gpu"), messages.encode(messages.Resume()))
    for task_id in (big.task_ids[0], other.task_ids[0]):
        assert (await result_of(client, task_id)).worker == "big-gpu"
    started = {e.task_id: e.worker for e in await events(client, EventType.STARTED)}
    assert started[big.task_ids[0]] == started[other.task_ids[0]] == "big-gpu"


async def _state(client: EaselClient, name: str, state: str) -> bool:
    return any(w.name == name and w.state == state for w in await client.registry.live())
