"""The store of custom ComfyUI workflows, and the checks made when an admin adds one or a user picks one.

Workflows live in one Redis hash (name -> JSON of :class:`~common.workflow_models.WorkflowDef`). When one is added,
every node class and model file it names is checked against the live ComfyUI workers' registry entries (what their
``/object_info`` and ``/models`` listed); with no live ComfyUI worker nothing can be checked, and it is refused
unless forced. A user's pick becomes a :class:`~common.models.WorkflowRequest` only through :func:`request_for`,
which copies the definition from the store: users never send a graph.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import ValidationError
from redis.asyncio import Redis

from common.errors import NotAvailable
from common.limits import Limits
from common.models import WorkflowRequest
from common.queue.keys import Keys
from common.registry import WorkerInfo
from common.workflow_models import InputType, WorkflowDef, WorkflowInput

T = TypeVar("T")

__all__ = [
    "InputType",
    "WorkflowDef",
    "WorkflowInput",
    "WorkflowStore",
    "check_against_workers",
    "parse_assignments",
    "request_for",
]


class WorkflowStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._key = keys.workflows

    async def put(self, workflow: WorkflowDef) -> None:
        await _done(self._redis.hset(self._key, workflow.name, workflow.model_dump_json()))

    async def get(self, name: str) -> WorkflowDef | None:
        raw = await _done(self._redis.hget(self._key, name))
        return WorkflowDef.model_validate_json(raw) if raw else None

    async def names(self) -> list[str]:
        return sorted(n.decode() if isinstance(n, bytes) else n for n in await _done(self._redis.hkeys(self._key)))

    async def all(self) -> list[WorkflowDef]:
        raw = await _done(self._redis.hvals(self._key))
        return sorted((WorkflowDef.model_validate_json(r) for r in raw), key=lambda w: w.name)

    async def remove(self, name: str) -> bool:
        return bool(await _done(self._redis.hdel(self._key, name)))


async def _done(result: Awaitable[T] | T) -> T:
    """redis-py types hash commands as either; on the asyncio client they are awaitable."""
    return await result if inspect.isawaitable(result) else result


def check_against_workers(workflow: WorkflowDef, workers: Sequence[WorkerInfo], *, force: bool = False) -> list[str]:
    """Refuse (ValueError naming it) a node class or model file that no live ComfyUI worker has.

    Returns warnings (e.g. nothing could be checked because ``force`` let it through with no ComfyUI worker live).
    """
    comfy = [w for w in workers if w.backend == "comfyui"]
    if not comfy:
        if force:
            return ["no ComfyUI worker is live: the workflow's node classes and models were not checked"]
        raise ValueError("no ComfyUI worker is live to check the workflow's node classes and models against; "
                         "start one, or add it with --force to skip the check")
    classes = {c for w in comfy for c in w.node_classes}
    for node_id, node in sorted(workflow.graph.items()):
        if node["class_type"] not in classes:
            raise ValueError(f"node {node_id}: class '{node['class_type']}' is not installed on any live ComfyUI "
                             "worker (a custom node? install it there first)")
    files = {(folder, f.lower()) for w in comfy for folder, names in w.models.items() for f in names}
    files |= {("checkpoints", (c.filename or c.title).lower()) for w in comfy for c in w.checkpoints}
    defaults = {i.name: i.default for i in workflow.inputs if i.default is not None and i.type != InputType.IMAGE}
    chosen = workflow.checkpoint_input()  # users choose it; each task is checked against the workers when submitted
    skip = {(chosen.node, chosen.input)} if chosen is not None else set()
    for folder, file in sorted(workflow.models(defaults, skip)):
        if (folder, file.lower()) not in files:
            raise ValueError(f"model '{file}' ({folder}) is not on any live ComfyUI worker")
    return []


def parse_input(text: str) -> dict[str, Any]:
    """``steps:int:3.steps:1:50:20`` -> the input's fields (ValueError saying the expected form)."""
    parts = text.split(":")
    if len(parts) < 3 or "." not in parts[2]:
        raise ValueError(f"input '{text}': expected NAME:TYPE:NODE.INPUT[:MIN[:MAX[:DEFAULT]]], "
                         "e.g. steps:int:3.steps:1:50:20")
    node, _, input_name = parts[2].partition(".")
    fields: dict[str, Any] = {"name": parts[0], "type": parts[1], "node": node, "input": input_name}
    for key, value in zip(("min", "max"), parts[3:5], strict=False):
        if value:
            fields[key] = value
    if len(parts) > 5:
        fields["default"] = ":".join(parts[5:])  # a default may hold ':' (a prompt)
    return fields


def build_definition(name: str, graph: str, inputs: str | None, specs: Sequence[str], *, description: str = "",
                     added_by: str = "", work: float | None = None) -> WorkflowDef:
    """A workflow from its API-format JSON text, its inputs as a JSON list and/or ``NAME:TYPE:NODE.INPUT...``
    specs; ValueError naming what is wrong."""
    try:
        data: dict[str, Any] = {"name": name, "graph": json.loads(graph),
                                "inputs": json.loads(inputs) if inputs else []}
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data["inputs"], list):
        raise ValueError("inputs: expected a JSON list of inputs")
    data["inputs"] += [parse_input(text) for text in specs]
    data.update(description=description, added_by=added_by, added_ms=int(time.time() * 1000))
    if work is not None:
        data["work"] = work
    try:
        return WorkflowDef.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise ValueError(f"{where}: {message}" if where else message) from None


def parse_assignments(pairs: Sequence[str]) -> dict[str, str]:
    """``["steps=20", "prompt=a cat"]`` -> a dict; ValueError naming a pair without ``=``."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"'{pair}' is not key=value (e.g. steps=20)")
        values[key.strip()] = value.strip()
    return values


async def request_for(store: WorkflowStore, name: str, values: Mapping[str, Any],
                      limits: Limits | None = None) -> WorkflowRequest:
    """The request to run workflow ``name`` with ``values`` (checked against its declared inputs).

    Raises NotAvailable if there is no such workflow, ValueError naming the input whose value is wrong.
    """
    workflow = await store.get(name)
    if workflow is None:
        known = ", ".join(await store.names()) or "none"
        raise NotAvailable(f"workflow: there is no workflow '{name}'; registered: {known}")
    try:
        return WorkflowRequest.model_validate(
            {"workflow": name, "definition": workflow.model_dump(), "values": dict(values)},
            context={"limits": limits} if limits is not None else None,
        )
    except ValidationError as exc:
        raise ValueError(exc.errors(include_url=False)[0]["msg"]) from None
