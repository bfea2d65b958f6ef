"""Custom ComfyUI workflows: an admin's API-format graph with declared inputs, and the checks on both.

A :class:`WorkflowDef` is what an admin registers: the graph exactly as ComfyUI's "Export (API)" writes it, and the
inputs users may fill (each names the node id and input it fills, its type, bounds and default). Users never send a
graph: they name a workflow and give values, which :meth:`WorkflowDef.bind_values` checks against the declarations.
What a worker needs to run the graph (its node classes and the model files it names) becomes capability tokens,
so a workflow task only goes to a worker that has all of them.
"""

from __future__ import annotations

import base64
import binascii
import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from common.images import BadImage, inspect_image
from common.limits import SEED_MAX

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
MAX_GRAPH_NODES = 500
MAX_STR = 2000

# Loader inputs that name a model file, and the folder ComfyUI keeps it in (GET /models/{folder}).
MODEL_INPUTS: dict[str, str] = {
    "ckpt_name": "checkpoints", "lora_name": "loras", "vae_name": "vae", "control_net_name": "controlnet",
    "unet_name": "diffusion_models", "style_model_name": "style_models", "upscale_model_name": "upscale_models",
}
_UPSCALE_LOADERS = {"UpscaleModelLoader"}  # their input is plain ``model_name``
OUTPUT_CLASSES = ("SaveImage",)
SAMPLER_CLASSES = ("KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced")


class InputType(StrEnum):
    INT = "int"
    FLOAT = "float"
    STR = "str"
    SEED = "seed"  # an int 0..SEED_MAX; -1 (the default) draws one at submit time
    IMAGE = "image"  # base64 image data; the worker uploads it and fills in the file name
    CHECKPOINT = "checkpoint"  # a checkpoint file name; routes the task to workers having it


class WorkflowInput(BaseModel):
    """One value a user may set: ``name`` fills input ``input`` of node ``node``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="What users write in `key=value`.")
    type: InputType
    node: str = Field(description="The node id in the API-format graph.")
    input: str = Field(description="The node's input name, e.g. `steps`.")
    min: float | None = None
    max: float | None = None
    default: int | float | str | None = None
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", v):
            raise ValueError(f"input name '{v}' must be lower-case letters, digits and _ (e.g. steps, cfg)")
        return v

    @model_validator(mode="after")
    def _bounds(self) -> WorkflowInput:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"input '{self.name}': min {self.min:g} is above max {self.max:g}")
        if self.type == InputType.SEED and self.default is None:
            self.default = -1
        if self.default is not None and self.type != InputType.IMAGE:
            self.default = self.check(self.default)
        return self

    def range_text(self) -> str:
        lo = "" if self.min is None else f"{self.min:g}"
        hi = "" if self.max is None else f"{self.max:g}"
        return f"{lo}..{hi}" if lo or hi else "any"

    def check(self, value: Any) -> int | float | str:
        """``value`` (a string from a command line or a typed JSON value) as this input's type, within bounds.

        Raises ValueError naming the input and its range.
        """
        where = f"{self.name}"
        try:
            if self.type in (InputType.INT, InputType.SEED):
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
                converted: int | float | str = int(str(value).strip()) if isinstance(value, str) else int(value)
            elif self.type == InputType.FLOAT:
                converted = float(value)
            else:
                if not isinstance(value, str):
                    raise ValueError
                converted = value
        except (TypeError, ValueError):
            raise ValueError(f"{where}: expected {self.type.value}, got {value!r}") from None
        if self.type == InputType.SEED:
            if not -1 <= int(converted) <= SEED_MAX:
                raise ValueError(f"{where}: must be between -1 and {SEED_MAX} (-1 = random), got {converted}")
            return converted
        if self.type == InputType.IMAGE:
            return _check_image(where, str(converted))
        if isinstance(converted, str):
            if len(converted) > MAX_STR or (self.type == InputType.CHECKPOINT and not converted.strip()):
                raise ValueError(f"{where}: must be 1 to {MAX_STR} characters")
            return converted
        if (self.min is not None and converted < self.min) or (self.max is not None and converted > self.max):
            raise ValueError(f"{where}: must be in {self.range_text()}, got {converted:g}")
        return converted


def _check_image(where: str, data: str) -> str:
    try:
        inspect_image(base64.b64decode(data, validate=True), max_bytes=50 * 2**20, max_pixels=64 * 2**20)
    except (binascii.Error, ValueError, BadImage) as exc:
        raise ValueError(f"{where}: not an image ({exc})") from None
    return data


class WorkflowDef(BaseModel):
    """A registered workflow: its API-format graph and declared inputs."""

    model_config = ConfigDict(extra="forbid")

    name: str
    graph: dict[str, Any] = Field(description="ComfyUI API format: node id -> class_type, inputs.")
    inputs: list[WorkflowInput] = Field(default_factory=list)
    description: str = ""
    work: float = Field(default=5.0, gt=0, description="GPU work units of one run, for fair shares and ETAs.")
    added_by: str = ""
    added_ms: int = 0

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError(f"workflow name '{v}' must be 1-40 lower-case letters, digits, - or _")
        return v

    @field_validator("graph")
    @classmethod
    def _graph(cls, v: dict[str, Any]) -> dict[str, Any]:
        if not v:
            raise ValueError("the workflow has no nodes")
        if len(v) > MAX_GRAPH_NODES:
            raise ValueError(f"the workflow has {len(v)} nodes; the limit is {MAX_GRAPH_NODES}")
        for node_id, node in v.items():
            if not isinstance(node, dict) or not isinstance(node.get("class_type"), str) \
                    or not isinstance(node.get("inputs"), dict):
                raise ValueError(
                    f"node {node_id} has no class_type/inputs: export the workflow in API format "
                    "(ComfyUI: Workflow > Export (API)), not the UI format"
                )
        if not any(node["class_type"] in OUTPUT_CLASSES for node in v.values()):
            raise ValueError("the workflow has no SaveImage node: Easel keeps what SaveImage nodes write")
        return v

    @model_validator(mode="after")
    def _inputs(self) -> WorkflowDef:
        seen: set[str] = set()
        for declared in self.inputs:
            if declared.name in seen:
                raise ValueError(f"input '{declared.name}' is declared twice")
            seen.add(declared.name)
            node = self.graph.get(declared.node)
            if node is None:
                raise ValueError(f"input '{declared.name}': the graph has no node {declared.node}")
            if declared.input not in node["inputs"]:
                raise ValueError(f"input '{declared.name}': node {declared.node} ({node['class_type']}) has no "
                                 f"input '{declared.input}'; it has {', '.join(sorted(node['inputs']))}")
            if isinstance(node["inputs"][declared.input], list):
                raise ValueError(f"input '{declared.name}': node {declared.node} input '{declared.input}' is a link "
                                 "to another node, not a value")
        return self

    def input(self, name: str) -> WorkflowInput | None:
        return next((i for i in self.inputs if i.name == name), None)

    def bind_values(self, values: dict[str, Any]) -> dict[str, int | float | str]:
        """Every declared input's value: the given one checked, else its default, else the graph's own value."""
        unknown = sorted(set(values) - {i.name for i in self.inputs})
        if unknown:
            listed = ", ".join(f"{i.name} ({i.type.value}, {i.range_text()})" for i in self.inputs) or "none"
            raise ValueError(f"workflow '{self.name}' has no input '{unknown[0]}'; its inputs: {listed}")
        bound: dict[str, int | float | str] = {}
        for declared in self.inputs:
            if declared.name in values:
                bound[declared.name] = declared.check(values[declared.name])
            elif declared.default is not None:
                bound[declared.name] = declared.default
            elif declared.type == InputType.IMAGE:
                raise ValueError(f"{declared.name}: workflow '{self.name}' needs an image here")
            else:
                bound[declared.name] = declared.check(self.graph[declared.node]["inputs"][declared.input])
        return bound

    def node_classes(self) -> set[str]:
        return {node["class_type"] for node in self.graph.values()}

    def models(self, values: dict[str, int | float | str] | None = None,
               skip: set[tuple[str, str]] | None = None) -> set[tuple[str, str]]:
        """(folder, file) of every model file the graph names, with ``values`` filled in (``skip``: inputs left out)."""
        filled = {(i.node, i.input): (values or {})[i.name] for i in self.inputs if i.name in (values or {})}
        found = set()
        for node_id, node in self.graph.items():
            for name, value in node["inputs"].items():
                value = filled.get((node_id, name), value)
                folder = MODEL_INPUTS.get(name)
                if name == "model_name" and node["class_type"] in _UPSCALE_LOADERS:
                    folder = "upscale_models"
                if folder is not None and isinstance(value, str) and (node_id, name) not in (skip or set()):
                    found.add((folder, value))
        return found

    def checkpoint_input(self) -> WorkflowInput | None:
        """The input that chooses the checkpoint, if one does (its task then routes by checkpoint, with affinity)."""
        return next((i for i in self.inputs if i.type == InputType.CHECKPOINT), None)

    def needs(self, values: dict[str, int | float | str]) -> list[str]:
        """Capability tokens a worker must offer: ComfyUI, every node class, every model file but the checkpoint
        a checkpoint input chooses (that one routes as the task's checkpoint)."""
        chosen = self.checkpoint_input()
        skip = {(chosen.node, chosen.input)} if chosen is not None else set()
        tokens = {"backend:comfyui"} | {f"node:{c.lower()}" for c in self.node_classes()}
        tokens |= {f"model:{folder}/{file.lower()}" for folder, file in self.models(values, skip)}
        return sorted(tokens)
