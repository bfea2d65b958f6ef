"""Workflows are filled by node title and input name, and remember which Easel field filled what."""

from __future__ import annotations

import pytest

from common.registry import WorkerInfo
from workers.backends.base import BackendKind, Capabilities, Flavour
from workers.backends.comfyui.graph import Graph, In

EXPORTED = {  # an admin's workflow as ComfyUI exports it (API format with titles)
    "10": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "a.safetensors"},
           "_meta": {"title": "checkpoint"}},
    "11": {"class_type": "KSampler", "inputs": {"model": ["10", 0], "steps": 20, "seed": 0},
           "_meta": {"title": "sampler"}},
}


def test_built_graphs_link_by_output_and_bind_fields() -> None:
    graph = Graph()
    ckpt = graph.add("CheckpointLoaderSimple", title="checkpoint", ckpt_name=In("x.safetensors", "checkpoint"))
    sampler = graph.add("KSampler", title="sampler 1", model=ckpt.out(0), steps=In(20, "steps"), cfg=7.0)
    api = graph.to_api()
    assert api[sampler.id]["inputs"] == {"model": [ckpt.id, 0], "steps": 20, "cfg": 7.0}
    assert api[sampler.id]["_meta"] == {"title": "sampler 1"}
    assert graph.field_of(sampler.id, "steps") == "steps" and graph.field_of(sampler.id, "cfg") is None
    assert graph.field_of(ckpt.id) == "checkpoint" and graph.field_of(sampler.id) == "steps"
    assert graph.ids("KSampler") == [sampler.id] and graph.title(sampler.id) == "sampler 1"


def test_a_loaded_workflow_is_filled_by_title_without_changing_the_original() -> None:
    graph = Graph.from_api(EXPORTED)
    graph.set("sampler", "steps", In(30, "steps"))
    graph.set("sampler", "seed", In(7, "seed"))
    assert graph.to_api()["11"]["inputs"] == {"model": ["10", 0], "steps": 30, "seed": 7}
    assert EXPORTED["11"]["inputs"]["steps"] == 20
    assert graph.field_of("11", "seed") == "seed"
    added = graph.add("SaveImage", title="output 1", images=In(None, "x"))
    assert added.id not in EXPORTED
    with pytest.raises(KeyError, match="no node titled 'nope'"):
        graph.set("nope", "steps", 1)


def test_capabilities_fill_a_registry_entry() -> None:
    info = WorkerInfo(name="gpu0", node="host", webui_url="http://comfy:8188")
    Capabilities(kind=BackendKind.COMFYUI, flavour=Flavour.COMFYUI, version="0.3.64", samplers=["Euler"],
                 node_classes=["KSampler"], models={"loras": ["a.safetensors"]}).apply_to(info)
    assert (info.backend, info.flavour, info.backend_version) == ("comfyui", "comfyui", "0.3.64")
    assert info.samplers == ["Euler"] and info.node_classes == ["KSampler"] and info.models == {
        "loras": ["a.safetensors"]}
    assert WorkerInfo.model_validate_json(info.model_dump_json()) == info  # crosses processes as JSON
