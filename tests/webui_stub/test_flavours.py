"""The A1111 stub's Forge Neo and SD.Next flavours show what a client can observe of those servers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from tests.conftest import StubServer
from webui_stub import flavours

StartStub = Callable[..., Awaitable[StubServer]]
BODY = {"prompt": "a cat", "steps": 2, "width": 64, "height": 64, "seed": 1, "sampler_name": "Euler a"}


async def test_forge_neo(start_stub: StartStub) -> None:
    stub = await start_stub(flavour=flavours.FORGE_NEO)
    async with httpx.AsyncClient(base_url=stub.url, timeout=20) as http:
        options = (await http.get("/sdapi/v1/options")).json()
        assert options["forge_preset"] == "sd" and "forge_inference_memory" not in options
        assert (await http.get("/sdapi/v1/sd-modules")).status_code == 200
        assert (await http.get("/sdapi/v1/sd-vae")).status_code == 404
        legacy = await http.post("/sdapi/v1/txt2img", json={**BODY, "override_settings": {"forge_inference_memory": 1}})
        assert legacy.status_code == 500 and legacy.json()["error"] == "KeyError"
        assert legacy.json()["message"] == "'forge_inference_memory'"  # Forge's body says message, not errors
        done = await http.post("/sdapi/v1/txt2img", json=BODY)
        assert "X-Process-Time" not in done.headers
        wrong = await http.post("/sdapi/v1/txt2img", json={**BODY, "steps": "many"})
        assert wrong.status_code == 422 and set(wrong.json()["detail"][0]) == {"type", "loc", "msg", "input"}
        assert (await http.post("/sdapi/v1/options", json={"sd_model_checkpoint": "sd_xl_base_1.0"})).status_code == 200
    assert stub.engine.stats.loads == 0  # selected only; the next generation loads it


async def test_sdnext(start_stub: StartStub) -> None:
    stub = await start_stub(flavour=flavours.SDNEXT)
    async with httpx.AsyncClient(base_url=stub.url, timeout=20) as http:
        assert (await http.get("/sdapi/v1/version")).json()["app"] == "sd.next"
        answers = [(await http.get("/sdapi/v1/progress")).status_code for _ in range(6)]
        assert answers == [200] * 5 + [429]  # 60 of the 300 units a client may spend a minute, each
        limited = await http.get("/sdapi/v1/progress")
        assert limited.json()["detail"].endswith("/sdapi/v1/progress: rate limit exceeded")
        assert (await http.post("/internal/progress", json={"id_task": "undefined"})).status_code == 200  # free
        unknown = await http.post("/sdapi/v1/txt2img", json={**BODY, "sampler_name": "Nope"})
        assert unknown.status_code == 404 and unknown.json()["detail"] == "Sampler not found"
        assert set(unknown.json()) == {"error", "code", "detail", "body", "errors"}
        assert (await http.post("/sdapi/v1/interrupt")).status_code == 204
        assert (await http.post("/sdapi/v1/options", json={"samples_format": "png"})).json() == {
            "updated": [{"samples_format": True}]}
        assert "aliases" not in (await http.get("/sdapi/v1/samplers")).json()[0]
        assert {m["type"] for m in (await http.get("/sdapi/v1/sd-models")).json()} == {"sd", "sdxl"}


async def test_a1111_keeps_its_own_shapes(start_stub: StartStub) -> None:
    stub = await start_stub()
    async with httpx.AsyncClient(base_url=stub.url, timeout=20) as http:
        assert (await http.get("/sdapi/v1/version")).status_code == 404
        assert (await http.get("/sdapi/v1/sd-vae")).status_code == 200
        assert [(await http.get("/sdapi/v1/progress")).status_code for _ in range(8)] == [200] * 8
        legacy = await http.post("/sdapi/v1/txt2img", json={**BODY, "override_settings": {"no_such_option": 1}})
        assert legacy.status_code == 500 and legacy.json()["errors"] == "'no_such_option'"
