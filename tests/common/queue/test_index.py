"""The waiting-task index, through the protocol's two sides (EaselClient, PoolMember) on a real Redis.

No WebUI here: workers are PoolMembers claiming directly, so each test sees exactly what the scripts do.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from common.errors import TaskFailed
from common.models import Img2ImgRequest, Txt2ImgRequest
from common.queue import EaselClient, messages
from common.queue.keys import ARQ_IN_PROGRESS_PREFIX, ARQ_JOB_PREFIX
from common.queue.member import PoolMember
from common.queue.models import CancelOutcome, TaskState
from common.registry import CheckpointInfo, WorkerInfo, WorkerState
from common.settings import Settings
from common.tasks import Origin, TaskResult
from tests.conftest import png_bytes

CLI = Origin(source="cli")
SD15 = CheckpointInfo(title="sd15.safetensors [aaaa]", model_name="sd15")
SDXL = CheckpointInfo(title="sdxl.safetensors [bbbb]", model_name="sdxl")


def request(seed: int = 1, checkpoint: str | None = None) -> Txt2ImgRequest:
    return Txt2ImgRequest(prompt="x", steps=2, width=64, height=64, seed=seed, checkpoint=checkpoint)


def info(name: str, *checkpoints: CheckpointInfo, loaded: CheckpointInfo | None = None) -> WorkerInfo:
    return WorkerInfo(name=name, node="n", webui_url="http://stub", state=WorkerState.IDLE,
                      checkpoints=list(checkpoints), loaded_checkpoint=(loaded or checkpoints[0]).title)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(max_queued_per_user=20_000, max_sweep_tasks=1000, lease_s=1.0)


@asynccontextmanager
async def members(client: EaselClient, settings: Settings, *names: str) -> AsyncIterator[list[PoolMember]]:
    yield [PoolMember(client.redis, settings, name) for name in names]


async def inbox(member: PoolMember, into: list[Any]) -> None:
    async for message in member.messages():
        into.append(message)


async def until(check: Callable[[], Any], limit_s: float = 5) -> Any:
    async with asyncio.timeout(limit_s):
        while not (value := check()):
            await asyncio.sleep(0.01)
        return value


async def test_a_submit_wakes_one_idle_worker_per_task(settings: Settings) -> None:
    async with EaselClient.connect(settings) as client, members(client, settings, "w0", "w1", "w2") as pool:
        seen: dict[str, list[Any]] = {m.name: [] for m in pool}
        listeners = [asyncio.create_task(inbox(m, seen[m.name])) for m in pool]
        await until(lambda: all(seen.values()))  # each subscribed (the first Wake is its own, on subscribing)

        def wakes() -> dict[str, int]:
            return {name: sum(isinstance(m, messages.Wake) for m in found) - 1 for name, found in seen.items()}

        await client.submit("u:a", CLI, [request(0, checkpoint="sd15")])  # creates the lane
        claims = [await m.claim(info(m.name, SD15)) for m in pool]
        assert [c is not None for c in claims] == [True, False, False]  # w0 runs it; w1 and w2 are idle now
        before = sum(wakes().values())
        await client.submit("u:a", CLI, [request(1, checkpoint="sd15")])
        await until(lambda: sum(wakes().values()) == before + 1)
        await client.submit("u:a", CLI, [request(2, checkpoint="sd15")])
        await until(lambda: sum(wakes().values()) == before + 2)
        assert wakes()["w1"] >= 1 and wakes()["w2"] >= 1 and wakes()["w0"] == 0  # each idle one once; never w0
        assert await client.redis.hlen(client.keys.idle_lanes) == 0  # a woken worker left every idle set
        for listener in listeners:
            listener.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)


async def test_a_worker_finds_its_lane_anywhere_in_the_queue(settings: Settings) -> None:
    async with EaselClient.connect(settings) as client, members(client, settings, "xl") as [xl]:
        common = await client.submit("u:a", CLI, [request(i, checkpoint="sd15") for i in range(600)])
        rare = await client.submit("u:a", CLI, [request(i, checkpoint="sdxl") for i in range(5)])
        places = await client.positions(rare.task_ids)
        assert min(p for p in places.values() if p) == 601  # behind 600 tasks no worker here can run ...
        claimed = await xl.claim(info("xl", SDXL))
        assert claimed is not None and claimed.task_id == rare.task_ids[0]  # ... found by the one worker able
        assert (await client.positions([common.task_ids[0]]))[common.task_ids[0]] == 1


async def test_places_are_exact_past_ten_thousand(settings: Settings) -> None:
    async with EaselClient.connect(settings) as client:
        ids: list[str] = []
        for job in range(11):
            record = await client.submit(f"u:{job}", CLI, [request(i) for i in range(1000)])
            ids += record.task_ids
        keys = {key: i for i, key in enumerate(await client.redis.zrange(client.keys.waiting, 0, -1))}
        truth = {task_id: keys[task_id.encode()] + 1 for task_id in ids}
        sample = [ids[0], ids[9_999], ids[10_000], ids[10_500], ids[-1]]
        places = await client.positions(sample)
        assert places == {t: truth[t] for t in sample}
        assert max(truth.values()) == 11_000
        for task_id in sample:
            assert (await client.lookup(task_id))[0] == TaskState.QUEUED
        estimates = await client.estimates([ids[-1]])
        assert estimates[ids[-1]].position == truth[ids[-1]]


async def test_running_tasks_hold_no_place(settings: Settings) -> None:
    async with EaselClient.connect(settings) as client, members(client, settings, "w0", "w1") as pool:
        record = await client.submit("u:a", CLI, [request(i) for i in range(4)])
        for member in pool:
            assert await member.claim(info(member.name, SD15)) is not None
        places = await client.positions(record.task_ids)
        assert sorted(places.values()) == [0, 0, 1, 2]  # type: ignore[type-var]
        listing = await client.queue()
        assert [t.place for t in listing] == [0, 0, 1, 2] and [t.running for t in listing] == [True] * 2 + [False] * 2


async def test_a_lapsed_lease_is_taken_back_unless_another_worker_started_it(settings: Settings) -> None:
    async with EaselClient.connect(settings) as client, members(client, settings, "a", "b") as (a, b):
        record = await client.submit("u:a", CLI, [request(1), request(2)])
        first = await a.claim(info("a", SD15))
        assert first is not None
        await client.redis.delete(ARQ_IN_PROGRESS_PREFIX + first.task_id)  # as if Redis was down past the lease
        assert await a.renew([first.task_id], info("a", SD15)) == []  # nobody took it meanwhile: a keeps it
        assert (await client.positions([first.task_id]))[first.task_id] == 0

        await client.redis.delete(ARQ_IN_PROGRESS_PREFIX + first.task_id)
        await client.redis.zadd(client.keys.running, {first.task_id: 0})  # and its lease lapsed long ago
        taken = await b.claim(info("b", SD15))  # b reaps it back into line first, then claims in fair order
        assert taken is not None and taken.task_id == first.task_id and taken.meta.tries == 2
        assert await a.renew([first.task_id], info("a", SD15)) == [first.task_id]
        assert not await a.finish(first, TaskFailed("too late"))  # fenced: a's outcome is discarded
        assert await b.finish(taken, _result(taken.task_id))
        assert (await client.lookup(record.task_ids[0]))[0] == TaskState.DONE


async def test_inputs_are_stored_once_and_fetched_by_the_worker(settings: Settings) -> None:
    image = png_bytes(256, 256)
    sweep = [Img2ImgRequest(prompt="x", init_image=image, denoising_strength=d / 10, steps=2) for d in range(1, 9)]
    async with EaselClient.connect(settings) as client, members(client, settings, "w") as [worker]:
        record = await client.submit("u:a", CLI, sweep)
        blobs = [k async for k in client.redis.scan_iter(match=f"{client.keys.prefix}blob:*")]
        assert len(blobs) == 1 and await client.redis.strlen(blobs[0]) == len(image)
        payload = await client.redis.get(ARQ_JOB_PREFIX + record.task_ids[3])
        assert len(payload) < 2000 and b'"blob":"sha256:' in payload  # a reference, not a base64 copy
        claimed = await worker.claim(info("w", SD15))
        assert claimed is not None
        spec = await worker.spec(claimed)
        assert isinstance(spec.request, Img2ImgRequest) and spec.request.init_image == image
        await client.redis.delete(*blobs)  # gone (expired): the task fails with a reason, not a crash
        with pytest.raises(TaskFailed, match=r"input image .* no longer stored"):
            await worker.spec(claimed)


async def test_cancel_reaches_only_the_worker_running_it(settings: Settings) -> None:
    async with EaselClient.connect(settings) as client, members(client, settings, "a", "b") as (a, b):
        seen: dict[str, list[Any]] = {"a": [], "b": []}
        listeners = [asyncio.create_task(inbox(m, seen[m.name])) for m in (a, b)]
        await until(lambda: all(seen.values()))
        record = await client.submit("u:a", CLI, [request(1), request(2)])
        claimed = await a.claim(info("a", SD15))
        assert claimed is not None
        assert await client.cancel(claimed.task_id, by="u:a") == CancelOutcome.INTERRUPTING
        await until(lambda: any(isinstance(m, messages.CancelTask) for m in seen["a"]))
        assert not any(isinstance(m, messages.CancelTask) for m in seen["b"])
        assert await a.cancel_requested(claimed.task_id)
        assert await client.cancel(record.task_ids[1]) == CancelOutcome.REMOVED
        assert await client.queue_depth() == 1
        for listener in listeners:
            listener.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)


def _result(task_id: str) -> TaskResult:
    return TaskResult(task_id=task_id, job_id=task_id.rpartition(".")[0], worker="b", images=[], seeds=[],
                      started_ms=1, finished_ms=2)


def test_lane_names_are_readable_and_bounded() -> None:
    from common.queue.lanes import Requirements, requirements_for

    assert Requirements().lane == "any"
    lora = Txt2ImgRequest(prompt="a <lora:Detail:0.5> b", checkpoint="SDXL.safetensors [1234]")
    assert requirements_for(lora, []).lane == "ckpt=sdxl+lora:detail"
    many = Txt2ImgRequest(prompt=" ".join(f"<lora:l{i}:1>" for i in range(40)))
    assert requirements_for(many, []).lane.startswith("h=")
    assert json.loads(requirements_for(lora, []).model_dump_json())["needs"] == ["lora:detail"]
