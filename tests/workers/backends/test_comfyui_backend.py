"""The ComfyUI backend against the ComfyUI stub, over real HTTP and a real WebSocket."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from PIL import Image

from common.infotext import parse_infotext
from common.models import HiresFix, Img2ImgRequest, Txt2ImgRequest, UpscaleRequest
from tests.conftest import ComfyStub, png_bytes, until
from tests.workers.backends.conftest import Recorder
from workers.backends.comfyui.backend import ComfyUIBackend, _Run
from workers.backends.comfyui.graph import Graph, In
from workers.backends.comfyui.workflows import Plan
from workers.backends.errors import (
    BackendRejected,
    BackendServerError,
    BackendUnreachable,
    Interrupted,
    MalformedResponse,
    OutOfMemory,
)
from workers.backends.http import Connection


@pytest.fixture
async def backend(comfy: ComfyStub) -> AsyncIterator[ComfyUIBackend]:
    b = ComfyUIBackend(comfy.url, connection=Connection(read_timeout=20), check_interval_s=0.5)
    yield b
    await b.aclose()


def txt2img(**overrides: Any) -> Txt2ImgRequest:
    values: dict[str, Any] = {"prompt": "a red fox", "width": 64, "height": 64, "steps": 4, "seed": 1000,
                              "checkpoint": "v1-5-pruned-emaonly"}
    return Txt2ImgRequest(**{**values, **overrides})


def chunks(png: bytes) -> dict[str, str]:
    with Image.open(io.BytesIO(png)) as img:
        return dict(img.text)  # type: ignore[attr-defined]


async def test_discovery_reads_object_info_and_models(backend: ComfyUIBackend) -> None:
    caps = await backend.discover()
    assert (caps.kind.value, caps.flavour.value, caps.version) == ("comfyui", "comfyui", "0.3.64")
    assert {(c.title, c.model_name, c.architecture) for c in caps.checkpoints} == {
        ("v1-5-pruned-emaonly.safetensors", "v1-5-pruned-emaonly", "sd15"),  # from safetensors metadata
        ("sd_xl_base_1.0.safetensors", "sd_xl_base_1.0", "sdxl"),
        ("dreamshaper_8.safetensors", "dreamshaper_8", None),  # neither metadata nor name tells
    }
    assert {"DPM++ 2M", "Euler a", "dpmpp_2m", "ipndm"} <= set(caps.samplers)  # A1111 names and ComfyUI's own
    assert {"Karras", "Automatic", "karras", "linear_quadratic"} <= set(caps.schedulers)
    assert caps.loras == ["add_detail", "film_grain"]
    assert {"Lanczos", "Latent", "4x-UltraSharp", "RealESRGAN_x2plus.pth"} <= set(caps.upscalers)
    assert "KSampler" in caps.node_classes and caps.models["upscale_models"] == ["4x-UltraSharp.pth",
                                                                                 "RealESRGAN_x2plus.pth"]


async def test_txt2img_gives_pngs_with_infotext_prompt_chunk_seeds_and_progress(backend: ComfyUIBackend) -> None:
    progress = Recorder()
    result = await backend.generate(txt2img(batch_size=2, sampler="DPM++ 2M", negative_prompt="blurry, lowres"),
                                    task_id="t.0", on_progress=progress)
    assert [(i.seed, i.width, i.height) for i in result.images] == [(1000, 64, 64), (1001, 64, 64)]
    first = result.images[0]
    assert first.infotext == (
        "a red fox\nNegative prompt: blurry, lowres\nSteps: 4, Sampler: DPM++ 2M, Schedule type: Karras, "
        "CFG scale: 7.0, Seed: 1000, Size: 64x64, Model: v1-5-pruned-emaonly, Version: ComfyUI 0.3.64"
    )
    text = chunks(first.png)
    assert text["parameters"] == first.infotext
    graph = json.loads(text["prompt"])  # ComfyUI's own chunk stays: the graph that made it
    samplers = [n for n in graph.values() if n["class_type"] == "KSampler"]
    assert {(n["inputs"]["seed"], n["inputs"]["sampler_name"], n["inputs"]["scheduler"]) for n in samplers} == {
        (1000, "dpmpp_2m", "karras"), (1001, "dpmpp_2m", "karras")}
    assert [p.step for p in progress.seen] == [1, 2, 3, 4, 1, 2, 3, 4]  # one sampler chain per image
    assert progress.seen[-1].fraction == 1.0 and progress.previews == len(progress.seen)
    assert result.checkpoint == "v1-5-pruned-emaonly.safetensors"


async def test_same_request_same_pixels_and_a_random_seed_is_resolved(backend: ComfyUIBackend) -> None:
    first = await backend.generate(txt2img(), task_id="t.1", on_progress=Recorder())
    again = await backend.generate(txt2img(), task_id="t.2", on_progress=Recorder())
    drawn = await backend.generate(txt2img(seed=-1), task_id="t.3", on_progress=Recorder())
    pixels = [Image.open(io.BytesIO(r.images[0].png)).tobytes() for r in (first, again)]
    assert pixels[0] == pixels[1]
    assert drawn.images[0].seed >= 0 and parse_infotext(drawn.images[0].infotext).seed == drawn.images[0].seed


async def test_sdxl_checkpoint_uses_sdxl_text_encoding(backend: ComfyUIBackend) -> None:
    result = await backend.generate(txt2img(checkpoint="sd_xl_base_1.0"), task_id="t.0", on_progress=Recorder())
    graph = json.loads(chunks(result.images[0].png)["prompt"])
    encoders = [n for n in graph.values() if n["class_type"].startswith("CLIPTextEncode")]
    assert {n["class_type"] for n in encoders} == {"CLIPTextEncodeSDXL"}
    assert {n["inputs"]["width"] for n in encoders} == {64}


async def test_lora_tags_become_a_loraloader_chain_and_leave_the_encoded_text(backend: ComfyUIBackend) -> None:
    prompt = "a red fox, <lora:add_detail:0.6> in snow <lora:film_grain:0.8:0.3>"
    result = await backend.generate(txt2img(prompt=prompt), task_id="t.0", on_progress=Recorder())
    graph = json.loads(chunks(result.images[0].png)["prompt"])
    loras = [n["inputs"] for n in graph.values() if n["class_type"] == "LoraLoader"]
    assert [(i["lora_name"], i["strength_clip"], i["strength_model"]) for i in loras] == [
        ("add_detail.safetensors", 0.6, 0.6), ("film_grain.safetensors", 0.8, 0.3)]
    assert {n["inputs"]["text"] for n in graph.values() if n["class_type"] == "CLIPTextEncode"} == {
        "a red fox, in snow", ""}
    assert parse_infotext(result.images[0].infotext).prompt == prompt  # infotext keeps the tags, as A1111's


async def test_unknown_lora_is_refused_by_comfyui_naming_the_prompt(backend: ComfyUIBackend) -> None:
    with pytest.raises(BackendRejected) as info:
        await backend.generate(txt2img(prompt="a fox <lora:nope:1>"), task_id="t.0", on_progress=Recorder())
    assert info.value.field == "prompt (<lora:nope>)"
    assert "'nope.safetensors' is not one this ComfyUI server has" in str(info.value)


async def test_img2img_uploads_the_init_image_under_a_content_name(backend: ComfyUIBackend, comfy: ComfyStub) -> None:
    init = png_bytes(96, 64, (10, 200, 30))
    request = Img2ImgRequest(prompt="a fox", init_image=init, width=64, height=64, steps=3, seed=5,
                             denoising_strength=0.4, resize_mode=1)
    result = await backend.generate(request, task_id="t.0", on_progress=Recorder())
    again = await backend.generate(request, task_id="t.1", on_progress=Recorder())
    assert (result.images[0].width, result.images[0].height) == (64, 64)
    uploads = [name for (kind, _, name) in comfy.engine.files if kind == "input"]
    assert len(uploads) == 1 and uploads[0].startswith("easel-")  # the same bytes are not uploaded twice
    assert "Denoising strength: 0.4" in result.images[0].infotext and again.images[0].seed == 5


async def test_hires_fix_with_latent_and_model_upscalers(backend: ComfyUIBackend) -> None:
    progress = Recorder()
    latent = await backend.generate(
        txt2img(hires=HiresFix(scale=2, denoising_strength=0.5, second_pass_steps=2)), task_id="t.0",
        on_progress=progress)
    assert (latent.images[0].width, latent.images[0].height) == (128, 128)
    assert [p.steps for p in progress.seen] == [4, 4, 4, 4, 2, 2]
    assert progress.seen[-1].fraction == 1.0
    model = await backend.generate(txt2img(hires=HiresFix(scale=1.5, upscaler="4x-UltraSharp")), task_id="t.1",
                                   on_progress=Recorder())
    assert (model.images[0].width, model.images[0].height) == (96, 96)
    params = parse_infotext(model.images[0].infotext).params
    assert (params["Size"], params["Hires upscale"], params["Hires upscaler"]) == ("64x64", "1.5", "4x-UltraSharp")


@pytest.mark.parametrize(("upscaler", "size"), [("Lanczos", (192, 128)), ("RealESRGAN_x2plus", (192, 128))])
async def test_upscale_keeps_the_source_infotext(backend: ComfyUIBackend, upscaler: str, size: tuple[int, int]) -> None:
    source = (await backend.generate(txt2img(width=96, height=64), task_id="t.0", on_progress=Recorder())).images[0]
    result = await backend.generate(UpscaleRequest(image=source.png, upscaler=upscaler, scale=2), task_id="t.1",
                                    on_progress=Recorder())
    image = result.images[0]
    assert (image.width, image.height) == size and image.seed == 1000
    assert image.infotext == f"{source.infotext}, Postprocess upscale by: 2.0, Postprocess upscaler: {upscaler}"


@pytest.mark.parametrize(("overrides", "field"), [
    ({"sampler": "no such sampler"}, "sampler"),
    ({"scheduler": "Uniform"}, "scheduler"),
    ({"checkpoint": "missing"}, "checkpoint"),
    ({"hires": HiresFix(upscaler="R-ESRGAN 4x+")}, "hires.upscaler"),
])
async def test_names_the_server_lacks_are_refused_before_queueing(backend: ComfyUIBackend, comfy: ComfyStub,
                                                                   overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(BackendRejected) as info:
        await backend.generate(txt2img(**overrides), task_id="t.0", on_progress=Recorder())
    assert info.value.field == field and str(info.value).startswith(f"{field}: ")
    assert comfy.engine.number == 0  # nothing was posted


async def test_node_errors_become_a_refusal_naming_the_field(backend: ComfyUIBackend, comfy: ComfyStub) -> None:
    await comfy.fault("reject")  # the stub refuses the sampler's steps as ComfyUI words it
    with pytest.raises(BackendRejected) as info:
        await backend.generate(txt2img(), task_id="t.0", on_progress=Recorder())
    assert info.value.field == "steps"
    assert str(info.value) == "steps: the value 10001 bigger than max of 10000"


async def test_out_of_memory_and_other_execution_errors(backend: ComfyUIBackend, comfy: ComfyStub) -> None:
    await comfy.fault("oom")
    with pytest.raises(OutOfMemory, match="CUDA out of memory"):
        await backend.generate(txt2img(), task_id="t.0", on_progress=Recorder())
    await comfy.fault("error")
    with pytest.raises(BackendServerError, match=r"sampler 1 \(KSampler\): RuntimeError: stub: injected failure"):
        await backend.generate(txt2img(), task_id="t.1", on_progress=Recorder())
    assert (await backend.generate(txt2img(), task_id="t.2", on_progress=Recorder())).images


async def test_interrupt_stops_exactly_the_running_prompt(backend: ComfyUIBackend, comfy: ComfyStub) -> None:
    await comfy.fault("hang")
    run = asyncio.create_task(backend.generate(txt2img(), task_id="t.0", on_progress=Recorder()))
    await until(lambda: comfy.engine.running is not None)
    await backend.interrupt("t.9")  # another task: nothing happens
    await asyncio.sleep(0.05)
    assert not run.done()
    await backend.interrupt("t.0")
    with pytest.raises(Interrupted):
        await run
    entry = next(iter(comfy.engine.history.values()))
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"


async def test_interrupt_of_a_queued_prompt_deletes_it_from_comfyuis_queue(
    backend: ComfyUIBackend, comfy: ComfyStub
) -> None:
    await comfy.fault("hang")
    other = ComfyUIBackend(comfy.url)  # someone else's prompt keeps ComfyUI busy
    try:
        blocker = asyncio.create_task(other.generate(txt2img(seed=1), task_id="other.0", on_progress=Recorder()))
        await until(lambda: comfy.engine.running is not None)
        queued = asyncio.create_task(backend.generate(txt2img(seed=2), task_id="t.0", on_progress=Recorder()))
        await until(lambda: len(comfy.engine.pending) == 1)
        await backend.interrupt("t.0")
        with pytest.raises(Interrupted, match="removed from ComfyUI's queue"):
            await queued
        assert comfy.engine.pending == [] and comfy.engine.running is not None  # the running one carried on
        await other.interrupt("other.0")
        with pytest.raises(Interrupted):
            await blocker
        assert len(comfy.engine.history) == 1  # the deleted prompt never ran
    finally:
        await other.aclose()


async def test_a_dropped_websocket_is_reconnected_and_the_result_read(
    backend: ComfyUIBackend, comfy: ComfyStub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="workers.backends.comfyui")
    await backend.generate(txt2img(seed=1), task_id="t.0", on_progress=Recorder())  # the socket is open
    await comfy.fault("drop")  # every socket is cut as the next prompt starts; the prompt still runs
    result = await backend.generate(txt2img(seed=2, steps=30), task_id="t.1", on_progress=Recorder())
    assert result.images[0].seed == 2 and result.images[0].infotext.count("Seed: 2,") == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any("dropped" in m for m in messages) and any("reconnected" in m for m in messages)
    assert backend.socket.connected


async def test_a_dead_server_is_unreachable(backend: ComfyUIBackend, comfy: ComfyStub) -> None:
    await backend.discover()
    await comfy.stop()
    with pytest.raises(BackendUnreachable):
        await backend.health()
    with pytest.raises(BackendUnreachable):
        await backend.generate(txt2img(), task_id="t.0", on_progress=Recorder())


async def test_a_server_that_dies_mid_task_is_unreachable(backend: ComfyUIBackend, comfy: ComfyStub) -> None:
    run = asyncio.create_task(backend.generate(txt2img(steps=100), task_id="t.0", on_progress=Recorder()))
    await until(lambda: comfy.engine.running is not None)
    await comfy.stop()
    with pytest.raises(BackendUnreachable):
        await run


async def test_malformed_answer(backend: ComfyUIBackend, comfy: ComfyStub) -> None:
    await comfy.fault("malformed")
    with pytest.raises(MalformedResponse):
        await backend.generate(txt2img(), task_id="t.0", on_progress=Recorder())


async def test_load_checkpoint_is_remembered_for_requests_without_one(backend: ComfyUIBackend) -> None:
    caps = await backend.discover()
    assert caps.loaded_checkpoint is None
    sdxl = next(c for c in caps.checkpoints if c.architecture == "sdxl")
    await backend.load_checkpoint(sdxl)
    result = await backend.generate(txt2img(checkpoint=None), task_id="t.0", on_progress=Recorder())
    assert result.checkpoint == sdxl.title and "Model: sd_xl_base_1.0" in result.images[0].infotext
    assert (await backend.discover()).loaded_checkpoint == sdxl.title


# --- odd answers a stub cannot give --------------------------------------------------------------------------

def mocked(handler: Callable[[httpx.Request], httpx.Response]) -> ComfyUIBackend:
    return ComfyUIBackend("http://comfy", connection=Connection(transport=httpx.MockTransport(handler)))


async def test_partially_valid_prompt_is_refused_and_deleted() -> None:
    deleted: list[Any] = []
    node_errors = {"1": {"errors": [{"type": "value_not_in_list", "message": "Value not in list",
                                     "details": "sampler_name: 'x' not in [...]",
                                     "extra_info": {"input_name": "sampler_name", "received_value": "x"}}],
                         "dependent_outputs": ["9"], "class_type": "KSampler"}}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/prompt":
            body = json.loads(request.content)
            return httpx.Response(200, json={"prompt_id": body["prompt_id"], "number": 3, "node_errors": node_errors})
        if request.url.path == "/queue":
            deleted.append(json.loads(request.content))
        return httpx.Response(200)

    backend = mocked(handler)
    graph = Graph()
    graph.add("KSampler", title="sampler 1", sampler_name=In("x", "sampler"))
    with pytest.raises(BackendRejected) as info:
        await backend._submit(Plan(graph), _Run("t.0", prompt_id="p1"))
    assert info.value.field == "sampler" and deleted == [{"delete": ["p1"]}]
    await backend.aclose()


async def test_refusal_without_node_errors_gives_comfyuis_message() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": {"type": "invalid_prompt", "message": "Cannot execute because node "
                                                   "CLIPTextEncodeSDXL does not exist.", "details": "Node ID '#3'",
                                                   "extra_info": {}}, "node_errors": {}})

    backend = mocked(handler)
    with pytest.raises(BackendRejected, match=r"CLIPTextEncodeSDXL does not exist\. \(Node ID '#3'\)"):
        await backend._submit(Plan(Graph()), _Run("t.0"))
    await backend.aclose()
