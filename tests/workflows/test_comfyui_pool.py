"""Workers on ComfyUI in the pool: detection, the registry, cancel, custom workflows and a mixed pool (real Redis,
real HTTP and WebSockets to the ComfyUI stub and the A1111 stub)."""

from __future__ import annotations

from collections import Counter

import pytest

from common.errors import FailureCode, NotAvailable
from common.events import EventType
from common.images import read_infotext
from common.infotext import parse_infotext
from common.models import Txt2ImgRequest, WorkflowRequest
from common.queue import CancelOutcome, EaselClient, messages
from common.workflow_models import WorkflowDef
from common.workflows import WorkflowStore, request_for
from tests.conftest import ComfyStub, StubServer
from tests.test_pool import CLI, events, eventually, failure_of, result_of, started_order


def small(seed: int, steps: int = 4) -> Txt2ImgRequest:
    return Txt2ImgRequest(prompt="x", steps=steps, width=64, height=64, seed=seed)


async def test_a_worker_detects_comfyui_and_advertises_it(
    client: EaselClient, start_comfy, start_worker  # type: ignore[no-untyped-def]
) -> None:
    comfy = await start_comfy(step_ms=50)  # 10 steps: half a second of progress to report
    await start_worker(comfy.url, worker_name="gpu-c")
    [info] = await client.live_workers()
    assert (info.backend, info.flavour, info.backend_version) == ("comfyui", "comfyui", "0.3.64")
    assert "KSampler" in info.node_classes and "add_detail.safetensors" in info.models["loras"]
    record = await client.submit("u:a", CLI, [small(7, steps=10)])
    result = await result_of(client, record.task_ids[0])
    assert result.worker == "gpu-c" and result.seeds == [7]
    text = parse_infotext(read_infotext(result.images[0].png) or "")
    assert text.seed == 7 and text.params["Size"] == "64x64" and text.params["Version"] == "ComfyUI 0.3.64"
    progress = await events(client, EventType.PROGRESS)
    assert progress and {e.steps for e in progress} == {10}  # the WebSocket's steps reached Easel's events
    assert any(e.has_preview for e in progress)


async def test_cancel_interrupts_the_running_comfyui_prompt(
    client: EaselClient, start_comfy, start_worker  # type: ignore[no-untyped-def]
) -> None:
    comfy = await start_comfy(step_ms=50)
    await start_worker(comfy.url)
    record = await client.submit("u:a", CLI, [small(1, steps=100)])  # 5 s of sampling
    task_id = record.task_ids[0]
    await eventually(lambda: started_order(client))
    await eventually(lambda: events(client, EventType.PROGRESS))
    assert await client.cancel(task_id) == CancelOutcome.INTERRUPTING
    error = await failure_of(client, task_id)
    assert error.code == FailureCode.CANCELLED
    assert comfy.engine.running is None and not comfy.engine.pending
    [entry] = comfy.engine.history.values()
    assert entry["status"]["status_str"] == "error"  # ComfyUI recorded the interrupted prompt
    assert any(m[0] == "execution_interrupted" for m in entry["status"]["messages"])
    follow = await client.submit("u:a", CLI, [small(2)])  # the next task runs normally
    await result_of(client, follow.task_ids[0])


async def test_a_mixed_pool_routes_workflows_to_comfyui_only(
    client: EaselClient, start_stub, start_comfy, start_worker, sd15: WorkflowDef  # type: ignore[no-untyped-def]
) -> None:
    a1111: StubServer = await start_stub(step_ms=20)
    comfy: ComfyStub = await start_comfy(step_ms=20)
    await start_worker(a1111.url, worker_name="gpu-a")
    await start_worker(comfy.url, worker_name="gpu-c")
    store = WorkflowStore(client.redis, client.keys)
    await store.put(sd15)
    flows = [await request_for(store, "sd15", {"steps": "3", "width": "64", "height": "64", "prompt": f"cat {i}"})
             for i in range(3)]
    plain = [small(100 + i, steps=10) for i in range(8)]
    record = await client.submit("u:a", CLI, [*flows, *plain])
    results = [await result_of(client, task_id) for task_id in record.task_ids]
    assert {r.worker for r in results[:3]} == {"gpu-c"}  # workflows only where ComfyUI runs
    assert set(Counter(r.worker for r in results[3:])) == {"gpu-a", "gpu-c"}  # ordinary tasks on both
    for result in results[:3]:
        text = read_infotext(result.images[0].png) or ""
        assert "Workflow: sd15" in text and "Steps: 3" in text and "Size: 64x64" in text
        assert result.parameters["workflow"] == "sd15"
        assert result.images[0].width == 64
    assert len(comfy.engine.history) == 3 + sum(r.worker == "gpu-c" for r in results[3:])


async def test_workflow_tasks_wait_for_a_worker_with_every_node_class(
    client: EaselClient, stub: StubServer, comfy: ComfyStub, start_worker, make_settings,  # type: ignore[no-untyped-def]
    sd15: WorkflowDef,
) -> None:
    await start_worker(stub.url, worker_name="gpu-a")
    data = sd15.model_dump()
    data["graph"]["10"] = {"class_type": "FancyCustomNode", "inputs": {"images": ["8", 0]}}
    fancy = WorkflowDef.model_validate(data)
    store = WorkflowStore(client.redis, client.keys)
    await store.put(fancy)
    request = await request_for(store, "sd15", {"width": "64", "height": "64", "steps": "2"})
    with pytest.raises(NotAvailable, match="workflow: 'sd15' cannot run now: no live ComfyUI worker"):
        await client.submit("u:a", CLI, [request])
    await start_worker(comfy.url, worker_name="gpu-c")
    fresh = EaselClient(client.redis, make_settings())  # its registry snapshot has the ComfyUI worker
    with pytest.raises(NotAvailable, match="no live worker has node class 'fancycustomnode'"):
        await fresh.submit("u:a", CLI, [request])


async def test_submitted_values_are_checked_against_the_declared_inputs(
    client: EaselClient, sd15: WorkflowDef
) -> None:
    store = WorkflowStore(client.redis, client.keys)
    await store.put(sd15)
    with pytest.raises(ValueError, match=r"^steps: must be in 1\.\.50, got 500$"):
        await request_for(store, "sd15", {"steps": "500"})
    with pytest.raises(NotAvailable, match="there is no workflow 'nope'; registered: sd15"):
        await request_for(store, "nope", {})
    made = await request_for(store, "sd15", {"seed": "5"})
    assert isinstance(made, WorkflowRequest) and made.seed == 5


async def test_a_forced_backend_is_not_detected_and_a_wrong_one_keeps_the_worker_out(
    client: EaselClient, stub: StubServer, comfy: ComfyStub, start_worker  # type: ignore[no-untyped-def]
) -> None:
    forced = await start_worker(comfy.url, worker_name="gpu-c", backend="comfyui")
    assert forced.wctx.backend.kind == "comfyui" and forced.wctx.info.backend == "comfyui"
    wrong = await start_worker(stub.url, worker_name="gpu-w", backend="comfyui")  # an A1111 server, forced ComfyUI
    assert wrong.wctx.info.state == "unhealthy" and wrong.wctx.info.backend is None
    record = await client.submit("u:a", CLI, [small(i) for i in range(3)])
    results = [await result_of(client, task_id) for task_id in record.task_ids]
    assert {r.worker for r in results} == {"gpu-c"}  # the misconfigured worker took nothing


async def test_etas_count_only_workers_that_can_run_the_task(
    client: EaselClient, stub: StubServer, comfy: ComfyStub, start_worker, sd15: WorkflowDef  # type: ignore[no-untyped-def]
) -> None:
    await start_worker(stub.url, worker_name="gpu-a")
    await start_worker(comfy.url, worker_name="gpu-c")
    store = WorkflowStore(client.redis, client.keys)
    await store.put(sd15)
    # the only worker that can run a workflow takes no tasks for now (once it listens to its inbox)
    await eventually(lambda: client.tell("gpu-c", messages.Pause()))
    await eventually(lambda: _states(client, {"gpu-a": "idle", "gpu-c": "paused"}))
    flow = await request_for(store, "sd15", {"width": "64", "height": "64", "steps": "2"})
    record = await client.submit("u:a", CLI, [flow, small(1, steps=2)])
    estimates = await client.estimates(record.task_ids)
    assert estimates[record.task_ids[0]].start_ms is None
    assert estimates[record.task_ids[0]].reason == "no live worker can run it"
    assert (await result_of(client, record.task_ids[1])).worker == "gpu-a"  # the ordinary task ran meanwhile
    await client.tell("gpu-c", messages.Resume())
    assert (await result_of(client, record.task_ids[0])).worker == "gpu-c"


async def _states(client: EaselClient, wanted: dict[str, str]) -> bool:
    return {w.name: w.state.value for w in await client.registry.live()} == wanted
