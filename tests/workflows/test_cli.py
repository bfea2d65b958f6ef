"""``easel workflows``, ``easel submit --workflow`` and ``easel demo --backend comfyui`` as a user runs them: real
processes for the ComfyUI stub, the worker and the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.images import read_infotext
from easel.stack import LocalStack
from tests.test_cli import easel
from tests.workflows.conftest import GRAPH, INPUTS


@pytest.fixture
def comfy_stack(redis_url: str, prefix: str) -> Iterator[LocalStack]:
    with LocalStack(redis_url=redis_url, prefix=prefix, step_ms=5, load_ms=20, flavor="comfyui") as running:
        yield running


@pytest.mark.timeout(180)  # a dozen `python -m easel` processes on a busy machine
def test_workflows_from_the_command_line(comfy_stack: LocalStack, tmp_path: Path) -> None:
    env = {"REDIS_URL": str(comfy_stack.redis_url), "EASEL_REDIS_PREFIX": comfy_stack.prefix,
           "EASEL_DATA_DIR": str(tmp_path / "data")}
    added = easel("workflows", "add", "sd15", str(GRAPH), "--inputs", str(INPUTS),
                  "--input", "sampler:str:3.sampler_name", env=env)
    assert added.returncode == 0, added.stderr
    assert "workflow sd15 registered: 7 nodes" in added.stdout
    fancy = json.loads(GRAPH.read_text())
    fancy["10"] = {"class_type": "FancyCustomNode", "inputs": {"images": ["8", 0]}}
    (tmp_path / "fancy.json").write_text(json.dumps(fancy))
    refused = easel("workflows", "add", "fancy", str(tmp_path / "fancy.json"), env=env)
    assert refused.returncode == 1 and "class 'FancyCustomNode' is not installed" in refused.stderr
    bad_spec = easel("workflows", "add", "x", str(GRAPH), "--input", "steps:int", env=env)
    assert bad_spec.returncode == 1 and "expected NAME:TYPE:NODE.INPUT" in bad_spec.stderr
    listed = json.loads(easel("workflows", "ls", "--json", env=env).stdout)
    assert [w["name"] for w in listed] == ["sd15"] and "graph" not in listed[0]

    out = tmp_path / "out"
    too_many = easel("submit", "a cat", "--workflow", "sd15", "--set", "steps=99", "--out", str(out), env=env)
    assert too_many.returncode == 1 and "steps: must be in 1..50, got 99" in too_many.stderr
    not_declared = easel("submit", "a cat", "--workflow", "sd15", "--set", "denoise=0.5", env=env)
    assert not_declared.returncode == 1 and "workflow 'sd15' has no input 'denoise'" in not_declared.stderr
    refused_by_comfyui = easel("submit", "a cat", "--workflow", "sd15", "--set", "sampler=bogus", "--set",
                               "width=64", "--set", "height=64", "--out", str(out), env=env)
    assert refused_by_comfyui.returncode == 1
    assert "sampler: 'bogus' is not one this ComfyUI server has" in refused_by_comfyui.stdout.replace("\n", " ")
    done = easel("submit", "a cat", "--workflow", "sd15", "--set", "steps=3", "--set", "width=64", "--set",
                 "height=64", "--set", "seed=9", "--out", str(out), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    [png] = out.glob("*/*-9.png")
    text = read_infotext(png.read_bytes()) or ""
    assert text.startswith("a cat\n") and "Seed: 9" in text and "Workflow: sd15" in text and "Size: 64x64" in text

    assert easel("workflows", "rm", "sd15", env=env).returncode == 0
    gone = easel("workflows", "rm", "sd15", env=env)
    assert gone.returncode == 1 and "there is no workflow 'sd15'" in gone.stderr


@pytest.mark.timeout(180)
def test_demo_on_the_comfyui_stub(redis_url: str, tmp_path: Path) -> None:
    out, data = tmp_path / "out", {"EASEL_DATA_DIR": str(tmp_path / "data")}
    done = easel("demo", "--backend", "comfyui", "--out", str(out), "--step-ms", "5",
                 env={"REDIS_URL": redis_url, **data}, timeout=150)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "8 task(s) done, 0 failed" in done.stdout and "3. Custom workflow sd15-demo" in done.stdout
    texts = [read_infotext(p.read_bytes()) or "" for p in out.glob("*/*.png")]
    assert len(texts) == 8 and all("Version: ComfyUI 0.3.64" in t for t in texts if "Postprocess" not in t)
    assert sum("Workflow: sd15-demo" in t for t in texts) == 1
