"""The WebUI client over real HTTP against the stub, and against odd answers (MockTransport)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import socket

import httpx
import pytest
from PIL import Image

from common.images import read_infotext
from common.infotext import parse_infotext
from tests.conftest import StubServer, png_bytes
from workers.backends.a1111.client import WebUIClient
from workers.backends.a1111.models import ExtrasPayload, Img2ImgPayload, Txt2ImgPayload, encode_image
from workers.backends.errors import (
    BackendRejected,
    BackendServerError,
    BackendTimeout,
    BackendUnreachable,
    MalformedResponse,
    OutOfMemory,
)


def payload(**overrides: object) -> Txt2ImgPayload:
    values: dict = {"prompt": "a red fox", "sampler_name": "Euler a", "steps": 8, "cfg_scale": 7.0,
                    "width": 128, "height": 128, "seed": 1000}
    return Txt2ImgPayload(**{**values, **overrides})


async def test_txt2img_decodes_images_info_and_seeds(stub: StubServer) -> None:
    async with WebUIClient(stub.url) as webui:
        response = await webui.txt2img(payload(batch_size=3))
    assert len(response.generated) == 3
    assert response.info.all_seeds == [1000, 1001, 1002]  # seed + i
    assert response.info.sd_model_name == "v1-5-pruned-emaonly"
    for image, seed in zip(response.generated, response.info.all_seeds, strict=True):
        text = read_infotext(image)
        assert text is not None
        parsed = parse_infotext(text)
        assert (parsed.prompt, parsed.seed, parsed.steps) == ("a red fox", seed, 8)
        assert parsed.params["Sampler"] == "Euler a" and parsed.params["Size"] == "128x128"


async def test_same_request_same_pixels(stub: StubServer) -> None:
    async with WebUIClient(stub.url) as webui:
        first = await webui.txt2img(payload())
        second = await webui.txt2img(payload())
        other = await webui.txt2img(payload(seed=1001))
    assert first.generated[0] == second.generated[0]
    assert first.generated[0] != other.generated[0]


async def test_img2img_and_upscale(stub: StubServer) -> None:
    async with WebUIClient(stub.url) as webui:
        response = await webui.img2img(
            Img2ImgPayload(prompt="x", sampler_name="Euler", steps=4, cfg_scale=7, width=64, height=64, seed=5,
                           init_images=[encode_image(png_bytes())], denoising_strength=0.4)
        )
        assert parse_infotext(read_infotext(response.generated[0]) or "").params["Denoising strength"] == "0.4"
        extras = await webui.extra_single_image(
            ExtrasPayload(image=encode_image(png_bytes(64, 48)), upscaling_resize=2, upscaler_1="R-ESRGAN 4x+")
        )
    assert Image.open(io.BytesIO(extras.image)).size == (128, 96)


async def test_lists(stub: StubServer) -> None:
    async with WebUIClient(stub.url) as webui:
        models = await webui.sd_models()
        samplers = await webui.samplers()
        schedulers = await webui.schedulers()
        upscalers = await webui.upscalers()
        loras = await webui.loras()
        latent = await webui.latent_upscale_modes()
    assert models[0].title == "v1-5-pruned-emaonly.safetensors [6ce0161689]" and models[0].hash == "6ce0161689"
    assert "k_dpmpp_2m" in next(s for s in samplers if s.name == "DPM++ 2M").aliases
    assert {"karras", "automatic"} <= {s.name for s in schedulers}
    assert "R-ESRGAN 4x+" in {u.name for u in upscalers}
    assert "add_detail" in {lora.name for lora in loras}
    assert "Latent" in {m.name for m in latent}


async def test_checkpoint_switch_waits_for_the_load(start_stub) -> None:  # type: ignore[no-untyped-def]
    stub = await start_stub(load_ms=300)
    async with WebUIClient(stub.url) as webui:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await webui.set_checkpoint("dreamshaper_8")
        assert loop.time() - started >= 0.3
        assert await webui.current_checkpoint() == "dreamshaper_8.safetensors [879db523c3]"
        with pytest.raises(BackendServerError, match="model 'nope' not found"):
            await webui.set_checkpoint("nope")


async def test_progress_while_generating_then_interrupt(start_stub) -> None:  # type: ignore[no-untyped-def]
    stub = await start_stub(step_ms=20, preview_every=2)
    async with WebUIClient(stub.url) as webui:
        idle = await webui.progress()
        assert not idle.active and idle.progress == 0
        running = asyncio.create_task(webui.txt2img(payload(steps=100, batch_size=2)))
        for _ in range(100):
            progress = await webui.progress()
            if progress.state.sampling_step >= 4:
                break
            await asyncio.sleep(0.02)
        assert progress.active and progress.state.sampling_steps == 100
        assert 0 < progress.progress < 1 and progress.eta_relative > 0
        assert progress.current_image is not None
        Image.open(io.BytesIO(progress.current_image)).verify()
        await webui.interrupt()
        response = await asyncio.wait_for(running, 2)
    assert len(response.generated) == 2  # interrupt returns the (partial) batch, HTTP 200


async def test_one_generation_at_a_time_in_arrival_order(stub: StubServer) -> None:
    async with WebUIClient(stub.url) as webui:
        finished: list[int] = []

        async def run(seed: int) -> None:
            await webui.txt2img(payload(seed=seed, steps=10))
            finished.append(seed)

        tasks = []
        for seed in (1, 2, 3):
            tasks.append(asyncio.create_task(run(seed)))
            await asyncio.sleep(0.01)
        await asyncio.gather(*tasks)
    assert finished == [1, 2, 3]
    assert stub.engine.stats.generations == 3


# --- failures over real HTTP (stub fault switches) -------------------------------------------------------


async def fault(stub: StubServer, mode: str, count: int = 1) -> None:
    async with httpx.AsyncClient() as http:
        (await http.post(f"{stub.url}/stub/faults", json={"mode": mode, "count": count})).raise_for_status()


async def test_oom_is_out_of_memory_with_backend_message(stub: StubServer) -> None:
    await fault(stub, "oom")
    async with WebUIClient(stub.url) as webui:
        with pytest.raises(OutOfMemory, match="CUDA out of memory"):
            await webui.txt2img(payload())
        assert (await webui.txt2img(payload())).generated  # the fault was for one request only


async def test_dropped_connection_is_unreachable(stub: StubServer) -> None:
    await fault(stub, "drop")
    async with WebUIClient(stub.url) as webui:
        with pytest.raises(BackendUnreachable, match="dropped the connection"):
            await webui.txt2img(payload())


async def test_hang_is_a_timeout(stub: StubServer) -> None:
    await fault(stub, "hang")
    async with WebUIClient(stub.url, read_timeout=0.3) as webui:
        with pytest.raises(BackendTimeout):
            await webui.txt2img(payload())


async def test_malformed_body_over_http(stub: StubServer) -> None:
    await fault(stub, "malformed")
    async with WebUIClient(stub.url) as webui:
        with pytest.raises(MalformedResponse, match="txt2img"):
            await webui.txt2img(payload())


async def test_real_422_from_the_stub_names_the_field(stub: StubServer) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{stub.url}/sdapi/v1/txt2img", json={"steps": "many"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "steps"]


async def test_nothing_listening_is_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with WebUIClient(f"http://127.0.0.1:{port}", connect_timeout=1) as webui:
        with pytest.raises(BackendUnreachable, match="unreachable"):
            await webui.sd_models()


# --- odd answers (MockTransport) -------------------------------------------------------------------------


def mock(status: int, body: object | str) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    return httpx.MockTransport(handler)


async def test_422_carries_the_backends_message() -> None:
    body = {"detail": [{"loc": ["body", "steps"], "msg": "value is not a valid integer", "type": "type_error"}]}
    async with WebUIClient("http://webui", transport=mock(422, body)) as webui:
        with pytest.raises(BackendRejected) as info:
            await webui.txt2img(payload())
    assert str(info.value) == "the WebUI refused the request: steps: value is not a valid integer"
    assert info.value.status == 422


async def test_forge_oom_body_uses_message() -> None:
    body = {"error": "OutOfMemoryError", "detail": "", "body": "", "message": "CUDA out of memory. Tried 2 GiB"}
    async with WebUIClient("http://webui", transport=mock(500, body)) as webui:
        with pytest.raises(OutOfMemory, match="Tried 2 GiB"):
            await webui.txt2img(payload())


async def test_other_500_is_server_error() -> None:
    body = {"error": "RuntimeError", "detail": "", "body": "", "errors": "could not find upscaler named X"}
    async with WebUIClient("http://webui", transport=mock(500, body)) as webui:
        with pytest.raises(BackendServerError, match="could not find upscaler named X"):
            await webui.txt2img(payload())


@pytest.mark.parametrize(
    "body",
    [
        "not json at all",
        {"images": ["!!!not base64"], "info": "{}"},
        {"images": [], "info": "{not json"},
        {"images": [], "parameters": {}},
    ],
)
async def test_malformed_answers(body: object) -> None:
    async with WebUIClient("http://webui", transport=mock(200, body)) as webui:
        with pytest.raises(MalformedResponse):
            await webui.txt2img(payload())


async def test_info_is_decoded_from_its_json_string() -> None:
    info = {"seed": 7, "all_seeds": [7, 8], "width": 64, "height": 64, "infotexts": ["a", "b"]}
    png = base64.b64encode(png_bytes()).decode()
    body = {"images": [png, png], "parameters": {}, "info": json.dumps(info)}
    async with WebUIClient("http://webui", transport=mock(200, body)) as webui:
        response = await webui.txt2img(payload())
    assert response.info.all_seeds == [7, 8] and response.info.infotexts == ["a", "b"]


async def test_connection_drop_in_transport_is_unreachable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)

    async with WebUIClient("http://webui", transport=httpx.MockTransport(handler)) as webui:
        with pytest.raises(BackendUnreachable):
            await webui.txt2img(payload())
