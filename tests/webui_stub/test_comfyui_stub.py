"""The ComfyUI stub behaves as ComfyUI 0.3.64 did on the rig (../shared/reference/comfyui-api.md)."""

from __future__ import annotations

import io
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import pytest
from PIL import Image

from tests.conftest import ComfyStub, png_bytes, until


def graph(steps: int = 2, prefix: str = "api") -> dict[str, Any]:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["1", 1]}},
        "3": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "4": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "seed": 1, "steps": steps, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
            "positive": ["2", 0], "negative": ["2", 0], "latent_image": ["3", 0], "denoise": 1.0}},
        "5": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": prefix}},
    }


@pytest.fixture
async def http(comfy: ComfyStub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=comfy.url, timeout=10) as client:
        yield client


async def run_and_record(comfy: ComfyStub, body: dict[str, Any], *, flags: bool) -> list[Any]:
    """POST the prompt with a client id and record that client's socket until the prompt is done."""
    events: list[Any] = []
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(comfy.url.replace("http", "ws") + "/ws?clientId=c1") as ws:
            if flags:
                await ws.send_json({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
            async with session.post(comfy.url + "/prompt", json={**body, "client_id": "c1"}) as response:
                prompt_id = (await response.json())["prompt_id"]
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    events.append(("frame", *struct.unpack(">II", msg.data[:8])))
                    continue
                message = json.loads(msg.data)
                events.append((message["type"], message["data"]))
                if message["type"] == "executing" and message["data"] == {"node": None, "prompt_id": prompt_id}:
                    return events
    raise AssertionError("the socket closed")


def kinds(events: list[Any]) -> list[str]:
    return [e[0] if e[0] != "frame" else f"frame{e[1]}" for e in events if e[0] != "progress_state"]


async def test_websocket_sequence_with_preview_metadata(comfy: ComfyStub) -> None:
    events = await run_and_record(comfy, {"prompt": graph()}, flags=True)
    assert kinds(events) == [
        "status", "feature_flags", "status", "status", "execution_start", "execution_cached",
        "executing", "executing", "executing", "executing",  # loader, text, latent, sampler
        "frame4", "progress", "frame4", "progress",  # a preview before each step's progress
        "executing", "executing", "executed", "execution_success", "status", "executing",
    ]
    states = [e[1]["nodes"] for e in events if e[0] == "progress_state"]
    assert states[-1]["4"] == {**states[-1]["4"], "value": 2, "max": 2, "state": "finished"}
    assert states[0]["1"]["value"] == 0.0 and states[-1]["1"]["value"] == 1.0


async def test_without_the_flag_previews_are_type_1_after_progress(comfy: ComfyStub) -> None:
    events = await run_and_record(comfy, {"prompt": graph()}, flags=False)
    sampled = kinds(events)[9:13]  # no feature_flags answer this time
    assert sampled == ["progress", "frame1", "progress", "frame1"]
    assert ("frame", 1, 1) in events  # type 1, JPEG


async def test_a_cached_rerun_runs_nothing_and_keeps_the_file(comfy: ComfyStub) -> None:
    first = await run_and_record(comfy, {"prompt": graph()}, flags=True)
    again = await run_and_record(comfy, {"prompt": graph()}, flags=True)
    assert kinds(again)[4:] == ["execution_start", "execution_cached", "executed", "execution_success", "status",
                                "executing"]
    cached = next(e[1] for e in again if e[0] == "execution_cached")
    assert sorted(cached["nodes"]) == ["1", "2", "3", "4", "5", "6"]
    outputs = [e[1]["output"] for run in (first, again) for e in run if e[0] == "executed"]
    assert outputs[0] == outputs[1]  # the same file name: nothing new is written


async def test_history_timing_and_shape(comfy: ComfyStub, http: httpx.AsyncClient) -> None:
    prompt_id = (await http.post("/prompt", json={"prompt": graph(steps=20), "prompt_id": "mine"})).json()["prompt_id"]
    assert prompt_id == "mine"
    assert (await http.get("/history/mine")).json() == {}  # queued or running
    await until(lambda: "mine" in comfy.engine.history)
    entry = (await http.get("/history/mine")).json()["mine"]
    assert entry["status"]["status_str"] == "success" and entry["status"]["completed"] is True
    assert [m[0] for m in entry["status"]["messages"]] == ["execution_start", "execution_cached", "execution_success"]
    assert entry["outputs"] == {"6": {"images": [{"filename": "api_00001_.png", "subfolder": "", "type": "output"}]}}
    assert entry["prompt"][1] == "mine" and entry["meta"]["6"]["node_id"] == "6"
    png = (await http.get("/view", params={"filename": "api_00001_.png [output]"})).content
    with Image.open(io.BytesIO(png)) as img:
        assert img.size == (64, 64) and json.loads(img.text["prompt"])["4"]["class_type"] == "KSampler"  # type: ignore[attr-defined]


async def test_queue_delete_and_interrupt_semantics(comfy: ComfyStub, http: httpx.AsyncClient) -> None:
    await comfy.fault("hang")
    await http.post("/prompt", json={"prompt": graph(prefix="a"), "prompt_id": "running"})
    await http.post("/prompt", json={"prompt": graph(prefix="b"), "prompt_id": "pending"})
    await until(lambda: comfy.engine.running is not None)
    queue = (await http.get("/queue")).json()
    assert [i[1] for i in queue["queue_running"]] == ["running"]
    assert [i[1] for i in queue["queue_pending"]] == ["pending"]
    answer = await http.post("/interrupt", json={"prompt_id": "pending"})  # not running: a silent no-op
    assert (answer.status_code, answer.content) == (200, b"")
    answer = await http.post("/queue", json={"delete": ["pending", "unknown"]})
    assert (answer.status_code, answer.content, answer.headers.get("content-type")) == (200, b"", None)
    assert (await http.get("/queue")).json()["queue_pending"] == []
    await http.post("/queue", json={"delete": ["running"]})  # delete never stops the running one
    assert comfy.engine.running is not None
    await http.post("/interrupt", json={"prompt_id": "running"})
    await until(lambda: "running" in comfy.engine.history)
    status = comfy.engine.history["running"]["status"]
    assert status["status_str"] == "error" and status["messages"][-1][0] == "execution_interrupted"
    assert "pending" not in comfy.engine.history


async def test_global_interrupt_without_a_body(comfy: ComfyStub, http: httpx.AsyncClient) -> None:
    await comfy.fault("hang")
    await http.post("/prompt", json={"prompt": graph(), "prompt_id": "p"})
    await until(lambda: comfy.engine.last_node == "4")  # in the sampler
    await http.post("/interrupt")
    await until(lambda: "p" in comfy.engine.history)
    assert comfy.engine.history["p"]["status"]["messages"][-1][1]["node_type"] == "KSampler"


async def test_uploads_reuse_same_bytes_and_number_other_bytes(http: httpx.AsyncClient) -> None:
    def upload(data: bytes, **fields: str) -> Any:
        return http.post("/upload/image", files={"image": ("upl.png", data, "image/png")}, data=fields)

    red, blue = png_bytes(8, 8, (255, 0, 0)), png_bytes(8, 8, (0, 0, 255))
    assert (await upload(red)).json() == {"name": "upl.png", "subfolder": "", "type": "input"}
    assert (await upload(red)).json()["name"] == "upl.png"
    assert (await upload(blue)).json()["name"] == "upl (1).png"
    assert (await upload(blue, overwrite="true")).json()["name"] == "upl.png"
    assert (await upload(red, subfolder="sub/dir")).json() == {"name": "upl.png", "subfolder": "sub/dir",
                                                              "type": "input"}
    assert (await upload(red, subfolder="../../etc")).status_code == 400
    bogus = await upload(red, type="bogus")
    assert (bogus.status_code, bogus.headers["content-type"].split(";")[0]) == (500, "text/plain")


@pytest.mark.parametrize(("change", "kind", "details"), [
    (lambda g: g["3"]["inputs"].update(width=0), "value_smaller_than_min", "width"),
    (lambda g: g["3"]["inputs"].update(width="abc"), "invalid_input_type",
     "width, abc, invalid literal for int() with base 10: 'abc'"),
    (lambda g: g["4"]["inputs"].update(sampler_name="Euler a"), "value_not_in_list",
     "sampler_name: 'Euler a' not in (list of length 42)"),
    (lambda g: g["1"]["inputs"].update(ckpt_name="nope.safetensors"), "value_not_in_list",
     "ckpt_name: 'nope.safetensors' not in ['dreamshaper_8.safetensors', 'sd_xl_base_1.0.safetensors', "
     "'v1-5-pruned-emaonly.safetensors']"),
])
async def test_validation_refusals_as_comfyui_words_them(http: httpx.AsyncClient, change: Any, kind: str,
                                                         details: str) -> None:
    prompt = graph()
    change(prompt)
    answer = await http.post("/prompt", json={"prompt": prompt})
    body = answer.json()
    assert answer.status_code == 400 and body["error"]["type"] == "prompt_outputs_failed_validation"
    assert body["error"]["details"] == ""  # the fault is upstream of the output node
    (node,) = body["node_errors"].values()
    assert (node["errors"][0]["type"], node["errors"][0]["details"], node["dependent_outputs"]) == (kind, details,
                                                                                                   ["6"])


async def test_v3_combo_inputs_are_not_checked_until_they_run(comfy: ComfyStub, http: httpx.AsyncClient) -> None:
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
              "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "nope.pth"}},
              "3": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]}},
              "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "x"}}}
    answer = await http.post("/prompt", json={"prompt": prompt, "prompt_id": "v3"})
    assert answer.status_code == 200 and answer.json()["node_errors"] == {}
    await until(lambda: "v3" in comfy.engine.history)
    error = comfy.engine.history["v3"]["status"]["messages"][-1]
    assert error[0] == "execution_error" and error[1]["exception_type"] == "FileNotFoundError"
    assert error[1]["exception_message"] == "Model in folder 'upscale_models' with filename 'nope.pth' not found.\n"


async def test_number_is_consumed_by_refused_posts_and_api_prefix_works(http: httpx.AsyncClient) -> None:
    await http.post("/prompt", json={"prompt": {}})
    await http.post("/api/prompt", json={"prompt": {"1": {"class_type": "NoSuchNode", "inputs": {}}}})
    answer = (await http.post("/prompt", json={"prompt": graph(), "front": True})).json()
    assert answer["number"] == -2
    assert (await http.post("/prompt", content=b"not json")).status_code == 500
    assert (await http.get("/api/models/nonexistent_folder")).status_code == 404
    assert (await http.get("/api/object_info/NoSuchNode")).json() == {}
