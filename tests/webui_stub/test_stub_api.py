"""The stub behaves like A1111 where Easel depends on it (../shared/reference/webui-api.md)."""

from __future__ import annotations

import asyncio
import base64
import io
import json

import httpx
import pytest
from PIL import Image

from common.images import read_infotext
from common.infotext import parse_infotext
from tests.conftest import StubServer, png_bytes


async def post(stub: StubServer, path: str, body: object) -> httpx.Response:
    async with httpx.AsyncClient(base_url=stub.url, timeout=20) as http:
        return await http.post(path, json=body)


async def get(stub: StubServer, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=stub.url, timeout=20) as http:
        return await http.get(path)


async def test_request_defaults_and_echoed_parameters(start_stub) -> None:  # type: ignore[no-untyped-def]
    stub = await start_stub(step_ms=0)
    response = await post(stub, "/sdapi/v1/txt2img", {"prompt": "a cat"})
    body = response.json()
    assert isinstance(body["info"], str)  # a JSON string inside the JSON body
    info = json.loads(body["info"])
    assert (info["steps"], info["sampler_name"], info["cfg_scale"], info["width"]) == (50, "Euler", 7.0, 512)
    assert body["parameters"]["seed"] == -1 and body["parameters"]["sampler_index"] == "Euler"  # not resolved
    assert 0 <= info["seed"] < 4294967294 and info["all_seeds"] == [info["seed"]]
    assert response.headers["X-Process-Time"]


async def test_infotext_layout_matches_a1111(stub: StubServer) -> None:
    body = (await post(stub, "/sdapi/v1/txt2img", {
        "prompt": "a photo of a cat, <lora:add_detail:0.8>", "negative_prompt": "blurry, lowres", "steps": 4,
        "sampler_name": "DPM++ 2M", "seed": 1234567890, "cfg_scale": 7, "enable_hr": True, "hr_scale": 2,
        "denoising_strength": 0.5, "hr_upscaler": "R-ESRGAN 4x+", "width": 64, "height": 64,
    })).json()
    png = base64.b64decode(body["images"][0])
    assert read_infotext(png) == (
        "a photo of a cat, <lora:add_detail:0.8>\n"
        "Negative prompt: blurry, lowres\n"
        "Steps: 4, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.0, Seed: 1234567890, Size: 64x64, "
        "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.5, Hires upscale: 2.0, "
        'Hires upscaler: R-ESRGAN 4x+, Lora hashes: "add_detail: 7c6bad76eb54", Version: v1.10.1'
    )
    assert Image.open(io.BytesIO(png)).size == (128, 128)  # hires: the final size; Size: is the first pass
    assert json.loads(body["info"])["infotexts"][0] == read_infotext(png)


@pytest.mark.parametrize(
    ("sampler", "expected"),
    [("DPM++ 2M Karras", ("DPM++ 2M", "Karras")), ("no such sampler", ("DPM++ 2M", "Karras")),
     ("Euler a", ("Euler a", "Automatic"))],
)
async def test_sampler_resolution_and_silent_fallback(stub: StubServer, sampler: str, expected: tuple) -> None:
    body = (await post(stub, "/sdapi/v1/txt2img", {"prompt": "x", "steps": 2, "sampler_name": sampler,
                                                    "width": 64, "height": 64})).json()
    params = parse_infotext(json.loads(body["info"])["infotexts"][0]).params
    assert (params["Sampler"], params["Schedule type"]) == expected


async def test_batches_and_iterations_use_seed_plus_i(stub: StubServer) -> None:
    body = (await post(stub, "/sdapi/v1/txt2img", {"prompt": "x", "steps": 2, "seed": 10, "batch_size": 2,
                                                    "n_iter": 2, "width": 64, "height": 64})).json()
    assert json.loads(body["info"])["all_seeds"] == [10, 11, 12, 13]
    assert len(body["images"]) == 4


async def test_img2img_errors_like_a1111(stub: StubServer) -> None:
    missing = await post(stub, "/sdapi/v1/img2img", {"prompt": "x"})
    assert missing.status_code == 404 and missing.json()["detail"] == "Init image not found"
    garbage = await post(stub, "/sdapi/v1/img2img", {"prompt": "x", "init_images": ["bm90IGFuIGltYWdl"]})
    assert garbage.status_code == 500 and garbage.json()["detail"] == "Invalid encoded image"
    image = base64.b64encode(png_bytes()).decode()
    too_many = await post(stub, "/sdapi/v1/img2img", {"prompt": "x", "init_images": [image, image]})
    assert too_many.status_code == 500


async def test_unknown_upscaler_and_option_are_500(stub: StubServer) -> None:
    image = base64.b64encode(png_bytes()).decode()
    response = await post(stub, "/sdapi/v1/extra-single-image", {"image": image, "upscaler_1": "Magic"})
    assert response.status_code == 500 and response.json()["error"] == "AssertionError"
    response = await post(stub, "/sdapi/v1/options", {"no_such_option": 1})
    assert response.status_code == 500 and response.json()["error"] == "KeyError"


async def test_override_checkpoint_applies_to_one_request(stub: StubServer) -> None:
    body = (await post(stub, "/sdapi/v1/txt2img", {
        "prompt": "x", "steps": 2, "width": 64, "height": 64,
        "override_settings": {"sd_model_checkpoint": "dreamshaper_8"},
    })).json()
    assert json.loads(body["info"])["sd_model_name"] == "dreamshaper_8"
    options = (await get(stub, "/sdapi/v1/options")).json()
    assert options["sd_model_checkpoint"] == "v1-5-pruned-emaonly.safetensors [6ce0161689]"


async def test_idle_progress_keeps_stale_state(stub: StubServer) -> None:
    await post(stub, "/sdapi/v1/txt2img", {"prompt": "x", "steps": 3, "width": 64, "height": 64})
    progress = (await get(stub, "/sdapi/v1/progress")).json()
    assert progress["progress"] == 0 and progress["current_image"] is None
    assert progress["state"]["job_count"] == 0 and progress["state"]["sampling_step"] == 3


async def test_fault_switch_can_stay_on_and_be_cleared(stub: StubServer) -> None:
    await post(stub, "/stub/faults", {"mode": "error", "count": -1})
    for _ in range(2):
        assert (await post(stub, "/sdapi/v1/txt2img", {"prompt": "x"})).status_code == 500
    async with httpx.AsyncClient(base_url=stub.url) as http:
        await http.delete("/stub/faults")
    assert (await post(stub, "/sdapi/v1/txt2img", {"prompt": "x", "steps": 1, "width": 64, "height": 64})).is_success
    assert (await post(stub, "/stub/faults", {"mode": "bogus"})).status_code == 400


async def test_hold_pauses_generations_until_released_or_interrupted(stub: StubServer) -> None:
    async with httpx.AsyncClient(base_url=stub.url, timeout=20) as http:
        (await http.post("/stub/hold")).raise_for_status()
        for ending in ("interrupt", "release"):
            running = asyncio.create_task(http.post("/sdapi/v1/txt2img", json={"prompt": "x", "steps": 4,
                                                                                "width": 64, "height": 64}))
            async with asyncio.timeout(20):  # held after its first step
                while (await http.get("/sdapi/v1/progress")).json()["state"]["sampling_step"] != 1:
                    await asyncio.sleep(0.01)
            assert not running.done() and (await http.get("/stub/stats")).json()["holding"]
            if ending == "interrupt":
                await http.post("/sdapi/v1/interrupt")
                assert json.loads((await running).json()["info"])["infotexts"]  # what was made so far
                continue
            (await http.delete("/stub/hold")).raise_for_status()
            assert len((await running).json()["images"]) == 1
        assert not (await http.get("/stub/stats")).json()["holding"]
