"""Declared inputs, value checks and what a workflow needs of a worker (pure models, no Redis)."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from pydantic import ValidationError

from common.models import WorkflowRequest
from common.registry import CheckpointInfo, WorkerInfo
from common.workflow_models import WorkflowDef
from common.workflows import check_against_workers, parse_assignments, parse_input
from tests.conftest import png_bytes
from tests.workflows.conftest import example_data


def request(workflow: WorkflowDef, **values: Any) -> WorkflowRequest:
    return WorkflowRequest(workflow=workflow.name, definition=workflow, values=values)


def test_values_are_typed_defaulted_and_bounded(sd15: WorkflowDef) -> None:
    made = request(sd15, steps="12", cfg="4.5", prompt="a cat")
    assert made.values["steps"] == 12 and made.values["cfg"] == 4.5 and made.values["prompt"] == "a cat"
    assert made.values["width"] == 512 and made.values["seed"] == -1  # declared defaults
    assert made.values["checkpoint"] == "v1-5-pruned-emaonly.safetensors"  # no default: the graph's own value
    assert made.checkpoint == "v1-5-pruned-emaonly.safetensors" and made.prompt == "a cat"
    for values, message in (
        ({"steps": "99"}, "steps: must be in 1..50, got 99"),
        ({"cfg": "lots"}, "cfg: expected float, got 'lots'"),
        ({"seed": "-7"}, "seed: must be between -1 and"),
        ({"sampler": "euler"}, "workflow 'sd15' has no input 'sampler'; its inputs: prompt (str, any)"),
    ):
        with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
            request(sd15, **values)


def test_seeds_are_drawn_and_reset(sd15: WorkflowDef) -> None:
    drawn = request(sd15).with_seeds(lambda: 42)
    assert drawn.values["seed"] == 42 and drawn.seed == 42
    assert drawn.reseeded().values["seed"] == -1


def test_an_admins_mistakes_are_named() -> None:
    cases: list[tuple[dict[str, Any], str]] = []
    ui_format = example_data()
    ui_format["graph"] = {"nodes": [], "links": []}
    cases.append((ui_format, "export the workflow in API format"))
    no_output = example_data()
    del no_output["graph"]["9"]
    cases.append((no_output, "no SaveImage node"))
    missing_node = example_data()
    missing_node["inputs"].append({"name": "denoise", "type": "float", "node": "99", "input": "denoise"})
    cases.append((missing_node, "input 'denoise': the graph has no node 99"))
    link = example_data()
    link["inputs"].append({"name": "model", "type": "str", "node": "3", "input": "model"})
    cases.append((link, "is a link to another node"))
    bad_default = example_data()
    bad_default["inputs"][3]["default"] = 80
    cases.append((bad_default, "steps: must be in 1..50, got 80"))
    for data, message in cases:
        with pytest.raises(ValidationError, match=message):
            WorkflowDef.model_validate(data)


def test_needs_name_every_node_class_and_model_but_the_chosen_checkpoint(sd15: WorkflowDef) -> None:
    data = example_data()
    data["graph"]["10"] = {"class_type": "LoraLoader", "inputs": {"lora_name": "Add_Detail.safetensors",
                                                                  "model": ["4", 0], "clip": ["4", 1]}}
    needs = request(WorkflowDef.model_validate(data)).needs()
    assert "backend:comfyui" in needs and "node:ksampler" in needs and "node:loraloader" in needs
    assert "model:loras/add_detail.safetensors" in needs
    assert not any(n.startswith("model:checkpoints/") for n in needs)  # routed as the task's checkpoint


def comfy_worker(**fields: Any) -> WorkerInfo:
    base: dict[str, Any] = {
        "name": "c", "node": "h", "webui_url": "http://c", "backend": "comfyui",
        "node_classes": ["KSampler", "CheckpointLoaderSimple", "EmptyLatentImage", "CLIPTextEncode", "VAEDecode",
                         "SaveImage"],
        "checkpoints": [CheckpointInfo(title="v1-5-pruned-emaonly.safetensors", model_name="v1-5-pruned-emaonly",
                                       filename="v1-5-pruned-emaonly.safetensors")],
    }
    return WorkerInfo(**{**base, **fields})


def test_added_workflows_are_checked_against_live_comfyui_workers(sd15: WorkflowDef) -> None:
    assert check_against_workers(sd15, [comfy_worker()]) == []
    a1111 = WorkerInfo(name="a", node="h", webui_url="http://a", backend="a1111")
    with pytest.raises(ValueError, match=r"no ComfyUI worker is live .* --force"):
        check_against_workers(sd15, [a1111])
    assert "not checked" in check_against_workers(sd15, [a1111], force=True)[0]
    with pytest.raises(ValueError, match="node 8: class 'VAEDecode' is not installed on any live ComfyUI worker"):
        check_against_workers(sd15, [comfy_worker(node_classes=["KSampler", "CheckpointLoaderSimple",
                                                                "EmptyLatentImage", "CLIPTextEncode", "SaveImage"])])
    data = example_data()
    data["graph"]["10"] = {"class_type": "LoraLoader", "inputs": {"lora_name": "gone.safetensors",
                                                                  "model": ["4", 0], "clip": ["4", 1]}}
    with_lora = WorkflowDef.model_validate(data)
    missing = re.escape("model 'gone.safetensors' (loras) is not on any live ComfyUI worker")
    with pytest.raises(ValueError, match=missing):
        check_against_workers(with_lora, [comfy_worker(node_classes=[*comfy_worker().node_classes, "LoraLoader"])])


def test_image_inputs_take_base64_images(sd15: WorkflowDef) -> None:
    data = example_data()
    data["graph"]["10"] = {"class_type": "LoadImage", "inputs": {"image": "x.png"}}
    data["inputs"].append({"name": "image", "type": "image", "node": "10", "input": "image"})
    workflow = WorkflowDef.model_validate(data)
    with pytest.raises(ValidationError, match="image: workflow 'sd15' needs an image here"):
        request(workflow)
    with pytest.raises(ValidationError, match="image: not an image"):
        request(workflow, image=base64.b64encode(b"hello").decode())
    assert request(workflow, image=base64.b64encode(png_bytes()).decode()).values["image"]


def test_command_line_forms() -> None:
    assert parse_input("prompt:str:6.text::: a cat: at noon") == {
        "name": "prompt", "type": "str", "node": "6", "input": "text", "default": " a cat: at noon"}
    assert parse_input("steps:int:3.steps:1:50:20") == {
        "name": "steps", "type": "int", "node": "3", "input": "steps", "min": "1", "max": "50", "default": "20"}
    with pytest.raises(ValueError, match=re.escape("expected NAME:TYPE:NODE.INPUT")):
        parse_input("steps:int")
    assert parse_assignments(["steps=20", "prompt=a=b"]) == {"steps": "20", "prompt": "a=b"}
    with pytest.raises(ValueError, match="'steps' is not key=value"):
        parse_assignments(["steps"])
