"""The ComfyUI backend against a real ComfyUI: only when ``EASEL_COMFYUI_URL`` is set (CI never has one).

Made for the rig in ../shared/tools/comfyui-rig (CPU, a random-weight ``rand_sd15`` checkpoint, 3-9 s a step at
64x64); it also uses a LoRA ``tiny_detail`` and an upscale model ``tiny_x2`` if the rig has them. Run with ``-s`` to
see what each check observed::

    EASEL_COMFYUI_URL=http://127.0.0.1:8188 .venv/bin/pytest -s -p no:cacheprovider \\
        tests/workers/backends/test_comfyui_real.py
"""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from PIL import Image

from common.models import Img2ImgRequest, Txt2ImgRequest, UpscaleRequest
from tests.conftest import png_bytes, until
from tests.workers.backends.conftest import Recorder
from workers.backends.comfyui.backend import ComfyUIBackend
from workers.backends.errors import BackendRejected, Interrupted
from workers.backends.http import Connection

URL = os.environ.get("EASEL_COMFYUI_URL", "")
pytestmark = [pytest.mark.skipif(not URL, reason="EASEL_COMFYUI_URL is not set (no real ComfyUI)"),
              pytest.mark.timeout(900)]


@pytest.fixture
async def backend() -> AsyncIterator[ComfyUIBackend]:
    b = ComfyUIBackend(URL, connection=Connection(read_timeout=600), check_interval_s=5)
    caps = await b.discover()
    print(f"\n  discovered: ComfyUI {caps.version}; checkpoints {[c.title for c in caps.checkpoints]}; "
          f"loras {caps.loras}; upscale models {caps.models.get('upscale_models', [])}; "
          f"{len(caps.node_classes)} node classes")
    yield b
    await b.aclose()


def request(**overrides: Any) -> Txt2ImgRequest:
    values: dict[str, Any] = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 2, "seed": 42,
                              "checkpoint": "rand_sd15", "sampler": "Euler"}
    return Txt2ImgRequest(**{**values, **overrides})


def describe(png: bytes) -> str:
    with Image.open(io.BytesIO(png)) as img:
        return f"{img.format} {img.size[0]}x{img.size[1]} {img.mode}, text chunks {list(img.text)}"  # type: ignore[attr-defined]


async def test_txt2img_gives_a_png_with_infotext_and_live_progress(backend: ComfyUIBackend) -> None:
    progress = Recorder()
    result = await backend.generate(request(), task_id="real.txt2img", on_progress=progress)
    image = result.images[0]
    print(f"  image: {describe(image.png)}; seed {image.seed}\n  infotext: {image.infotext!r}")
    print(f"  progress callbacks: {len(progress.seen)} ({[(p.step, p.steps, p.fraction) for p in progress.seen]}); "
          f"with a preview: {progress.previews} ({[len(p.preview or b'') for p in progress.seen]} bytes)")
    with Image.open(io.BytesIO(image.png)) as img:
        assert img.size == (64, 64) and img.text["parameters"] == image.infotext  # type: ignore[attr-defined]
        assert json.loads(img.text["prompt"])  # type: ignore[attr-defined]
    assert "Steps: 2, Sampler: Euler" in image.infotext and "Model: rand_sd15" in image.infotext
    assert [p.step for p in progress.seen] == [1, 2]


async def test_interrupt_mid_run_stops_exactly_that_prompt(backend: ComfyUIBackend) -> None:
    progress = Recorder()
    run = asyncio.create_task(backend.generate(request(steps=6, seed=7), task_id="real.stop", on_progress=progress))
    await until(lambda: len(progress.seen) > 0, within=300)
    await backend.interrupt("real.other")  # not ours: nothing is sent
    await backend.interrupt("real.stop")
    with pytest.raises(Interrupted) as info:
        await run
    print(f"  interrupted after step {progress.seen[-1].step} of 6: {info.value}")
    after = await backend.generate(request(seed=8), task_id="real.after", on_progress=Recorder())
    print(f"  the next prompt ran normally: {describe(after.images[0].png)}")


async def test_a_queued_prompt_is_deleted_from_comfyuis_queue(backend: ComfyUIBackend) -> None:
    other = ComfyUIBackend(URL, connection=Connection(read_timeout=600))
    try:
        first = Recorder()
        blocker = asyncio.create_task(other.generate(request(seed=11), task_id="real.blocker", on_progress=first))
        await until(lambda: len(first.seen) > 0, within=300)  # ComfyUI is busy with it
        queued = asyncio.create_task(backend.generate(request(seed=12), task_id="real.queued", on_progress=Recorder()))
        await until(lambda: "real.queued" in backend._runs and backend._runs["real.queued"].submitted, within=60)
        pending = await backend.client.queue()
        print(f"  queue while the blocker runs: running {[i[1] for i in pending.queue_running]}, "
              f"pending {[i[1] for i in pending.queue_pending]}")
        await backend.interrupt("real.queued")
        with pytest.raises(Interrupted) as info:
            await queued
        after = await backend.client.queue()
        print(f"  {info.value}; queue now: running {[i[1] for i in after.queue_running]}, pending "
              f"{[i[1] for i in after.queue_pending]}")
        assert after.queue_pending == [] and len(after.queue_running) == 1  # the blocker carried on
        done = await blocker
        print(f"  the blocker finished: {describe(done.images[0].png)}")
    finally:
        await other.aclose()


async def test_a_bad_input_is_refused_naming_the_field(backend: ComfyUIBackend) -> None:
    with pytest.raises(BackendRejected) as info:
        await backend.generate(request(prompt="a lighthouse <lora:no_such_lora:0.7>"), task_id="real.bad",
                               on_progress=Recorder())
    print(f"  refused: field {info.value.field!r}: {info.value}")
    assert info.value.field == "prompt (<lora:no_such_lora>)"
    with pytest.raises(BackendRejected) as info:
        await backend.generate(request(sampler="no such sampler"), task_id="real.bad2", on_progress=Recorder())
    print(f"  refused before queueing: field {info.value.field!r}: {info.value}")


async def test_img2img_with_an_uploaded_image(backend: ComfyUIBackend) -> None:
    init = png_bytes(80, 64, (200, 40, 40))
    result = await backend.generate(
        Img2ImgRequest(prompt="a red barn", init_image=init, width=64, height=64, steps=2, seed=3,
                       denoising_strength=0.5, checkpoint="rand_sd15", sampler="Euler"),
        task_id="real.img2img", on_progress=Recorder())
    print(f"  image: {describe(result.images[0].png)}\n  infotext: {result.images[0].infotext!r}")
    assert (result.images[0].width, result.images[0].height) == (64, 64)


async def test_lora_chain(backend: ComfyUIBackend) -> None:
    caps = await backend.discover()
    if "tiny_detail" not in caps.loras:
        pytest.skip("the rig has no tiny_detail LoRA")
    result = await backend.generate(request(prompt="a lighthouse <lora:tiny_detail:0.8>"), task_id="real.lora",
                                    on_progress=Recorder())
    with Image.open(io.BytesIO(result.images[0].png)) as img:
        graph = json.loads(img.text["prompt"])  # type: ignore[attr-defined]
    loras = [n["inputs"] for n in graph.values() if n["class_type"] == "LoraLoader"]
    print(f"  LoraLoader inputs: {[(i['lora_name'], i['strength_model'], i['strength_clip']) for i in loras]}; "
          f"encoded text {[n['inputs']['text'] for n in graph.values() if n['class_type'] == 'CLIPTextEncode']}")
    assert loras[0]["lora_name"] == "tiny_detail.safetensors"


@pytest.mark.parametrize("upscaler", ["Lanczos", "tiny_x2"])
async def test_upscale(backend: ComfyUIBackend, upscaler: str) -> None:
    caps = await backend.discover()
    if upscaler not in caps.upscalers:
        pytest.skip(f"the rig has no {upscaler}")
    source = png_bytes(64, 48, (30, 90, 200))
    result = await backend.generate(UpscaleRequest(image=source, upscaler=upscaler, scale=2), task_id="real.up",
                                    on_progress=Recorder())
    print(f"  {upscaler}: {describe(result.images[0].png)}; infotext {result.images[0].infotext!r}")
    assert (result.images[0].width, result.images[0].height) == (128, 96)
