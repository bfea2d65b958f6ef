"""The A1111-family backend against the A1111 stub's flavours (A1111 1.10, Forge Neo, SD.Next) over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from common.infotext import parse_infotext
from common.models import HiresFix, Txt2ImgRequest, UpscaleRequest
from tests.conftest import StubServer, png_bytes, until
from tests.workers.backends.conftest import Recorder
from webui_stub import flavours
from workers.backends.a1111 import flavours as backend_flavours
from workers.backends.a1111.backend import A1111Backend
from workers.backends.a1111.models import Txt2ImgPayload
from workers.backends.base import Flavour
from workers.backends.errors import BackendRejected, BackendUnreachable, Interrupted, OutOfMemory
from workers.backends.http import Connection

StartStub = Callable[..., Awaitable[StubServer]]
FLAVOURS = [(flavours.A1111, Flavour.A1111), (flavours.FORGE_NEO, Flavour.FORGE_NEO), (flavours.SDNEXT, Flavour.SDNEXT)]


@pytest.fixture
async def open_backend() -> AsyncIterator[Callable[..., Awaitable[A1111Backend]]]:
    opened: list[A1111Backend] = []

    async def open_(stub: StubServer, **kwargs: Any) -> A1111Backend:
        backend = A1111Backend(stub.url, connection=Connection(read_timeout=20), progress_interval_s=0.01, **kwargs)
        await backend.discover()
        opened.append(backend)
        return backend

    yield open_
    for backend in opened:
        await backend.aclose()


def txt2img(**overrides: Any) -> Txt2ImgRequest:
    values: dict[str, Any] = {"prompt": "a red fox", "width": 64, "height": 64, "steps": 8, "seed": 1000,
                              "sampler": "Euler a"}
    return Txt2ImgRequest(**{**values, **overrides})


@pytest.mark.parametrize(("stub_flavour", "expected"), FLAVOURS)
async def test_discovery_detects_the_flavour(start_stub: StartStub, open_backend: Callable[..., Any],
                                             stub_flavour: flavours.Flavour, expected: Flavour) -> None:
    backend = await open_backend(await start_stub(flavour=stub_flavour))
    caps = await backend.discover()
    assert (caps.kind.value, caps.flavour) == ("a1111", expected) and backend.flavour == expected
    assert {c.model_name: c.architecture for c in caps.checkpoints}["sd_xl_base_1.0"] == "sdxl"
    assert caps.loaded_checkpoint == "v1-5-pruned-emaonly.safetensors [6ce0161689]"
    assert "Euler a" in caps.samplers and "add_detail" in caps.loras and "Latent" in caps.upscalers
    if expected == Flavour.SDNEXT:
        assert caps.version == "058a7f0c" and caps.schedulers == []  # its "schedulers" are sampler classes
    else:
        assert "Karras" in caps.schedulers


@pytest.mark.parametrize(("stub_flavour", "expected"), FLAVOURS)
async def test_txt2img_with_progress_and_previews(start_stub: StartStub, open_backend: Callable[..., Any],
                                                  stub_flavour: flavours.Flavour, expected: Flavour) -> None:
    # 40 steps of 10 ms polled every 10 ms: SD.Next's /sdapi/v1/progress would refuse all but 5 polls a minute
    backend = await open_backend(await start_stub(flavour=stub_flavour, step_ms=10, preview_every=1))
    progress = Recorder()
    result = await backend.generate(txt2img(steps=40, batch_size=2), task_id="t.0", on_progress=progress)
    assert [i.seed for i in result.images] == [1000, 1001]
    assert parse_infotext(result.images[0].infotext).seed == 1000
    assert len(progress.seen) >= 10 and progress.previews >= 5
    steps = [p.step for p in progress.seen]
    assert steps == sorted(steps) and {p.steps for p in progress.seen} == {40}
    assert result.checkpoint == "v1-5-pruned-emaonly.safetensors [6ce0161689]"
    assert result.parameters["seed"] == 1000


async def test_interrupt_stops_the_running_task_only(start_stub: StartStub, open_backend: Callable[..., Any]) -> None:
    backend = await open_backend(await start_stub(step_ms=10))
    progress = Recorder()
    run = asyncio.create_task(backend.generate(txt2img(steps=100), task_id="t.0", on_progress=progress))
    await until(lambda: len(progress.seen) > 0)
    await backend.interrupt("t.1")  # not the one running: nothing is sent
    await asyncio.sleep(0.05)
    assert not run.done()
    await backend.interrupt("t.0")
    with pytest.raises(Interrupted):
        await run


@pytest.mark.parametrize(("stub_flavour", "expected"), FLAVOURS)
async def test_out_of_memory_in_each_flavours_words(start_stub: StartStub, open_backend: Callable[..., Any],
                                                    stub_flavour: flavours.Flavour, expected: Flavour) -> None:
    stub = await start_stub(flavour=stub_flavour)
    backend = await open_backend(stub)
    async with httpx.AsyncClient(base_url=stub.url) as http:
        await http.post("/stub/faults", json={"mode": "oom", "count": 1})
    with pytest.raises(OutOfMemory, match="CUDA out of memory"):
        await backend.generate(txt2img(), task_id="t.0", on_progress=Recorder())


async def test_sdnext_refuses_an_unknown_sampler_naming_it(start_stub: StartStub,
                                                           open_backend: Callable[..., Any]) -> None:
    backend = await open_backend(await start_stub(flavour=flavours.SDNEXT))
    with pytest.raises(BackendRejected) as info:
        await backend.generate(txt2img(sampler="no such sampler"), task_id="t.0", on_progress=Recorder())
    assert info.value.field == "sampler" and info.value.status == 404


async def test_sdnext_hires_denoise_goes_under_its_own_name(start_stub: StartStub,
                                                            open_backend: Callable[..., Any]) -> None:
    backend = await open_backend(await start_stub(flavour=flavours.SDNEXT))
    result = await backend.generate(txt2img(hires=HiresFix(scale=2, denoising_strength=0.35)), task_id="t.0",
                                    on_progress=Recorder())
    params = parse_infotext(result.images[0].infotext).params
    assert (params["Denoising strength"], params["App"]) == ("0.35", "SD.Next")
    assert (result.images[0].width, result.images[0].height) == (128, 128)


async def test_forge_neo_selects_a_checkpoint_and_loads_it_with_the_next_generation(
    start_stub: StartStub, open_backend: Callable[..., Any]
) -> None:
    stub = await start_stub(flavour=flavours.FORGE_NEO)
    backend = await open_backend(stub)
    caps = await backend.discover()
    sdxl = next(c for c in caps.checkpoints if c.architecture == "sdxl")
    await backend.load_checkpoint(sdxl)
    assert stub.engine.stats.loads == 0 and backend.loaded == sdxl.title
    result = await backend.generate(txt2img(), task_id="t.0", on_progress=Recorder())
    assert stub.engine.stats.loads == 1 and "Model: sd_xl_base_1.0" in result.images[0].infotext
    assert "Version: neo" in result.images[0].infotext


def test_payloads_fit_each_flavour() -> None:
    def payload() -> Txt2ImgPayload:
        return Txt2ImgPayload(prompt="p", sampler_name="Euler a", scheduler="Karras", steps=4, cfg_scale=7, width=64,
                              height=64, seed=1, enable_hr=True, denoising_strength=0.4, hr_cfg=7.0,
                              override_settings={"forge_inference_memory": 1024, "CLIP_stop_at_last_layers": 2})

    neo, sdnext, a1111 = payload(), payload(), payload()
    backend_flavours.adapt(neo, Flavour.FORGE_NEO)
    backend_flavours.adapt(sdnext, Flavour.SDNEXT)
    backend_flavours.adapt(a1111, Flavour.A1111)
    assert neo.override_settings == {"CLIP_stop_at_last_layers": 2}  # Neo answers 500 to the legacy key
    assert (sdnext.scheduler, sdnext.hr_cfg, sdnext.hr_denoising_strength) == (None, None, 0.4)
    assert a1111 == payload()


async def test_upscale(start_stub: StartStub, open_backend: Callable[..., Any]) -> None:
    backend = await open_backend(await start_stub())
    result = await backend.generate(UpscaleRequest(image=png_bytes(64, 64), upscaler="Lanczos", scale=2),
                                    task_id="t.0", on_progress=Recorder())
    assert (result.images[0].width, result.images[0].height) == (128, 128)
    assert result.images[0].infotext == "Postprocess upscale by: 2.0, Postprocess upscaler: Lanczos"


async def test_a_dead_server_is_unreachable(start_stub: StartStub, open_backend: Callable[..., Any]) -> None:
    stub = await start_stub()
    backend = await open_backend(stub)
    await stub.stop()
    with pytest.raises(BackendUnreachable):
        await backend.health()
