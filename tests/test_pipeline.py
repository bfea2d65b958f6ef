"""The whole path through a real Redis-protocol server: EaselClient -> arq -> worker -> stub WebUI -> results."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from common.errors import FailureCode, InvalidRequest, NotAvailable, TaskFailed
from common.events import EventType
from common.infotext import parse_infotext
from common.models import Img2ImgRequest, Txt2ImgRequest, UpscaleRequest
from common.outage import Outage
from common.queue import EaselClient
from common.queue.keys import Keys
from common.sweep import expand, parse_axes
from common.tasks import JobRecord, Origin
from jobs.models import LiveJob, TaskStatus
from jobs.tracker import JobTracker
from tests.conftest import StubServer

CLI = Origin(source="cli")


def tracker(client: EaselClient, record: JobRecord) -> JobTracker:
    """The job tracker of the front ends, fetching results (these tests have no job store)."""
    return JobTracker(client, record.job_id, record.task_ids, record.labels, results=True,
                      outage=Outage("test", limit_s=30))


async def run_job(
    client: EaselClient, requests: list[Any], labels: list[str] | None = None
) -> tuple[JobRecord, LiveJob, list[TaskStatus]]:
    """Submit ``requests`` as one job and follow it to the end; also return the task states seen in order."""
    after = await client.events.last_id()
    record = await client.submit("cli:test", CLI, requests, labels)
    following = tracker(client, record)
    seen: list[TaskStatus] = []

    async def watch() -> None:
        async for view in following.follow(after, refresh_s=0.2):
            for task in view.tasks.values():
                if not seen or seen[-1] != task.status:
                    seen.append(task.status)

    await asyncio.wait_for(watch(), 20)
    return record, following.view, seen


def handed_back(seen: list[TaskStatus]) -> bool:
    """The task ran, then waited again (a retry)."""
    return TaskStatus.RUNNING in seen and TaskStatus.QUEUED in seen[seen.index(TaskStatus.RUNNING):]


async def test_txt2img_end_to_end(client: EaselClient, stub: StubServer, start_worker) -> None:  # type: ignore[no-untyped-def]
    await start_worker(stub.url)
    request = Txt2ImgRequest(prompt="a lighthouse", steps=6, width=128, height=128, seed=77, batch_size=2)
    record, view, seen = await run_job(client, [request])
    result = view.tasks[record.task_ids[0]].result
    assert result is not None and result.worker == "test-gpu"
    assert result.seeds == [77, 78]
    for image, seed in zip(result.images, [77, 78], strict=True):
        parsed = parse_infotext(image.infotext)
        assert (parsed.prompt, parsed.steps, parsed.seed) == ("a lighthouse", 6, seed)
        assert (image.width, image.height) == (128, 128)
    assert result.parameters["sd_model_name"] == "v1-5-pruned-emaonly"
    assert seen[-1] == TaskStatus.DONE and set(seen) <= {TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.DONE}


async def test_random_seed_is_resolved_at_submit_so_results_are_reproducible(
    client: EaselClient, stub: StubServer, start_worker  # type: ignore[no-untyped-def]
) -> None:
    await start_worker(stub.url)
    record, view, _ = await run_job(client, [Txt2ImgRequest(prompt="x", steps=2, width=64, height=64)])
    result = view.tasks[record.task_ids[0]].result
    assert result is not None and result.seeds[0] >= 0
    again = Txt2ImgRequest(prompt="x", steps=2, width=64, height=64, seed=result.seeds[0])
    record2, view2, _ = await run_job(client, [again])
    result2 = view2.tasks[record2.task_ids[0]].result
    assert result2 is not None and result2.images[0].png == result.images[0].png


async def test_sweep_then_upscale_and_img2img(client: EaselClient, stub: StubServer, start_worker) -> None:  # type: ignore[no-untyped-def]
    await start_worker(stub.url)
    base = {"kind": "txt2img", "prompt": "p", "steps": 3, "width": 64, "height": 64, "seed": 5}
    tasks = expand(base, ["a cat", "a dog"], parse_axes("cfg=5,7"), limits=client.limits)
    record, view, _ = await run_job(client, [r for _, r in tasks], [label for label, _ in tasks])
    results = [view.tasks[t].result for t in record.task_ids]
    assert all(r is not None for r in results)
    assert [parse_infotext(r.images[0].infotext).params["CFG scale"] for r in results] == ["5.0", "7.0"] * 2  # type: ignore[union-attr]
    source = results[0].images[0]  # type: ignore[union-attr]

    up = UpscaleRequest(image=source.png, upscaler="Lanczos", scale=2)
    i2i = Img2ImgRequest(prompt="a cat, watercolor", init_image=source.png, denoising_strength=0.3, steps=3)
    record, view, _ = await run_job(client, [up, i2i])
    upscaled, varied = (view.tasks[t].result for t in record.task_ids)
    assert upscaled is not None and (upscaled.images[0].width, upscaled.images[0].height) == (128, 128)
    assert upscaled.images[0].seed == 5  # carried from the source's infotext
    assert upscaled.images[0].infotext.endswith("Postprocess upscale by: 2.0, Postprocess upscaler: Lanczos")
    assert varied is not None and (varied.images[0].width, varied.images[0].height) == (64, 64)


async def test_checkpoint_switch_on_request(client: EaselClient, stub: StubServer, start_worker) -> None:  # type: ignore[no-untyped-def]
    await start_worker(stub.url)
    record, view, _ = await run_job(
        client, [Txt2ImgRequest(prompt="x", steps=2, width=64, height=64, checkpoint="dreamshaper_8")]
    )
    result = view.tasks[record.task_ids[0]].result
    assert result is not None and result.checkpoint == "dreamshaper_8.safetensors [879db523c3]"
    assert result.parameters["sd_model_name"] == "dreamshaper_8"
    assert stub.engine.loaded == "dreamshaper_8.safetensors [879db523c3]"


async def test_unknown_names_are_refused_before_the_queue(
    client: EaselClient, stub: StubServer, start_worker  # type: ignore[no-untyped-def]
) -> None:
    await start_worker(stub.url)
    cases = [
        (Txt2ImgRequest(prompt="x", checkpoint="nope"), "checkpoint: no worker has 'nope'; available: "),
        (Txt2ImgRequest(prompt="x", sampler="Eulr"), "sampler: 'Eulr' is unknown; choose one of "),
        (Txt2ImgRequest(prompt="x <lora:missing:1>"), "prompt: LoRA 'missing' is not installed"),
    ]
    for request, message in cases:
        with pytest.raises(NotAvailable, match=message.replace("+", r"\+")):
            await client.submit("cli:test", CLI, [request])
    assert await client.queue() == []
    # aliases A1111 accepts are fine
    for name in ("dreamshaper_8", "879db523c3", "dreamshaper_8.safetensors [879db523c3]"):
        await client.submit("cli:test", CLI, [Txt2ImgRequest(prompt="x", checkpoint=name, steps=1)])


async def test_job_over_the_task_cap_is_refused(client: EaselClient) -> None:
    requests = [Txt2ImgRequest(prompt="x")] * (client.limits.max_sweep_tasks + 1)
    with pytest.raises(InvalidRequest, match="the limit is 64"):
        await client.submit("cli:test", CLI, requests)
    assert await client.queue() == []


async def test_queue_positions_follow_the_fair_order(client: EaselClient) -> None:
    record = await client.submit("cli:test", CLI, [Txt2ImgRequest(prompt=f"p{i}") for i in range(3)])
    other = await client.submit("cli:other", CLI, [Txt2ImgRequest(prompt="q")])
    positions = await client.positions([*record.task_ids, *other.task_ids])
    assert list(positions.values()) == [1, 3, 4, 2]  # the second user's only task goes after the first one's first
    events = await client.events.read("0-0", block_ms=10)
    assert [e.position for _, e in events if e.type == EventType.QUEUED] == [1, 2, 3, 2]
    assert await client.job(record.job_id) == record


async def fault(stub: StubServer, mode: str, count: int = 1) -> None:
    async with httpx.AsyncClient() as http:
        (await http.post(f"{stub.url}/stub/faults", json={"mode": mode, "count": count})).raise_for_status()


async def _failure(client: EaselClient, task_id: str) -> TaskFailed:
    with pytest.raises(TaskFailed) as info:
        await client.result(task_id)
    return info.value


async def test_out_of_memory_fails_with_the_backend_message(
    client: EaselClient, stub: StubServer, start_worker  # type: ignore[no-untyped-def]
) -> None:
    await start_worker(stub.url)
    await fault(stub, "oom")
    record, view, _ = await run_job(client, [Txt2ImgRequest(prompt="x", steps=2, width=64, height=64)])
    task = view.tasks[record.task_ids[0]]
    assert task.status == TaskStatus.FAILED and "CUDA out of memory" in (task.message or "")
    error = await _failure(client, record.task_ids[0])
    assert error.code == FailureCode.OUT_OF_MEMORY and "try a smaller size" in str(error)


async def test_transient_errors_are_retried(client: EaselClient, stub: StubServer, start_worker) -> None:  # type: ignore[no-untyped-def]
    await start_worker(stub.url)
    await fault(stub, "drop", count=2)
    record, view, seen = await run_job(client, [Txt2ImgRequest(prompt="x", steps=2, width=64, height=64)])
    assert view.tasks[record.task_ids[0]].result is not None
    assert handed_back(seen)


async def test_webui_down_gives_a_clear_error_after_the_tries(
    client: EaselClient, stub: StubServer, start_worker  # type: ignore[no-untyped-def]
) -> None:
    await start_worker(stub.url)
    await fault(stub, "error", count=-1)
    record, view, _ = await run_job(client, [Txt2ImgRequest(prompt="x", steps=2, width=64, height=64)])
    error = await _failure(client, record.task_ids[0])
    assert error.code == FailureCode.WEBUI_ERROR
    assert "stub: injected failure (gave up after 3 tries)" in str(error)
    assert view.tasks[record.task_ids[0]].message == str(error)


async def test_malformed_answer_fails_at_once(client: EaselClient, stub: StubServer, start_worker) -> None:  # type: ignore[no-untyped-def]
    await start_worker(stub.url)
    await fault(stub, "malformed")
    record, _, seen = await run_job(client, [Txt2ImgRequest(prompt="x", steps=2, width=64, height=64)])
    assert not handed_back(seen)
    assert (await _failure(client, record.task_ids[0])).code == FailureCode.MALFORMED_RESPONSE


async def test_a_webui_that_goes_away_fails_nothing(client: EaselClient, start_stub, start_worker) -> None:  # type: ignore[no-untyped-def]
    stub = await start_stub()
    port = int(stub.url.rsplit(":", 1)[1])
    await start_worker(stub.url)
    await stub.stop()
    after = await client.events.last_id()
    record = await client.submit("cli:test", CLI, [Txt2ImgRequest(prompt="x", steps=2, width=64, height=64)])
    for _ in range(100):  # the worker notices and stops taking tasks
        [worker] = await client.registry.live()
        if worker.state == "unhealthy":
            break
        await asyncio.sleep(0.05)
    assert worker.state == "unhealthy"
    await asyncio.sleep(0.5)
    assert await client.result(record.task_ids[0]) is None  # still waiting, not failed
    await start_stub(port=port)  # the WebUI is back: the task runs
    following = tracker(client, record)
    await asyncio.wait_for(_drain(following, after), 20)
    assert following.view.tasks[record.task_ids[0]].result is not None


async def _drain(following: JobTracker, after: str) -> None:
    async for _ in following.follow(after, refresh_s=0.2):
        pass


async def test_progress_events_reach_the_watcher(client: EaselClient, start_stub, start_worker) -> None:  # type: ignore[no-untyped-def]
    stub = await start_stub(step_ms=20, preview_every=2)
    await start_worker(stub.url)
    after = await client.events.last_id()
    record = await client.submit("cli:test", CLI, [Txt2ImgRequest(prompt="x", steps=20, width=64, height=64)])
    steps: list[int] = []
    previews = 0
    async for view in tracker(client, record).follow(after):
        task = view.tasks[record.task_ids[0]]
        if task.status == TaskStatus.RUNNING and task.steps:
            steps.append(task.step)
            previews += task.preview is not None
    assert len(set(steps)) >= 3 and steps == sorted(steps)
    assert previews > 0


async def test_keys_live_under_the_prefix(client: EaselClient, prefix: str) -> None:
    await client.submit("cli:test", CLI, [Txt2ImgRequest(prompt="x")])
    keys = Keys(prefix)
    assert await client.redis.exists(keys.waiting, keys.lane("any"), keys.meta, keys.events) == 4
