"""API-format ComfyUI workflows, built or loaded, with every parameter bound by name — never by a node id.

A :class:`Graph` is ComfyUI's ``{node_id: {"class_type", "inputs", "_meta": {"title"}}}`` map. Each node has a title
(its role: ``sampler 1``, ``checkpoint``, ``output 1``...) that the frontend shows and that survives an export, and
each input that carries a user's value remembers which Easel field it came from (:class:`In`), so a refusal from
ComfyUI (``node_errors`` keyed by node id and input name) can name that field. An admin's workflow loaded with
:meth:`Graph.from_api` is filled the same way, by title and input name (:meth:`Graph.set`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Out:
    """Output ``index`` of node ``node``: what a link points at."""

    node: str
    index: int = 0

    def link(self) -> list[str | int]:
        return [self.node, self.index]


@dataclass(frozen=True)
class In:
    """An input value that came from an Easel field (e.g. ``In(20, "steps")``)."""

    value: Any
    field: str


@dataclass(frozen=True)
class Node:
    id: str
    class_type: str
    title: str

    def out(self, index: int = 0) -> Out:
        return Out(self.id, index)


class Graph:
    """A workflow under construction. Node ids are "1", "2", ... in the order nodes are added."""

    def __init__(self) -> None:
        self._nodes: dict[str, dict[str, Any]] = {}
        self._fields: dict[tuple[str, str], str] = {}

    @classmethod
    def from_api(cls, prompt: dict[str, Any]) -> Graph:
        """A graph from API-format JSON (e.g. an admin's exported workflow); it is copied, never changed."""
        graph = cls()
        graph._nodes = copy.deepcopy(prompt)
        return graph

    def add(self, class_type: str, *, title: str, **inputs: Any) -> Node:
        node_id = str(len(self._nodes) + 1)
        while node_id in self._nodes:
            node_id = str(int(node_id) + 1)
        self._nodes[node_id] = {"class_type": class_type, "inputs": {}, "_meta": {"title": title}}
        for name, value in inputs.items():
            self._put(node_id, name, value)
        return Node(node_id, class_type, title)

    def set(self, title: str, input_name: str, value: Any) -> None:
        """Fill ``input_name`` of the node titled ``title`` (a declared input of a loaded workflow)."""
        self._put(self.node_id(title), input_name, value)

    def fill(self, node_id: str, input_name: str, value: Any, field: str) -> None:
        """Fill a declared input of a loaded workflow by node id (``field``: the declared input's name)."""
        if node_id not in self._nodes:
            raise KeyError(f"no node {node_id}")
        self._put(node_id, input_name, In(value, field))

    def nodes(self) -> dict[str, dict[str, Any]]:
        """The nodes (read only)."""
        return self._nodes

    def _put(self, node_id: str, name: str, value: Any) -> None:
        if isinstance(value, In):
            self._fields[(node_id, name)] = value.field
            value = value.value
        self._nodes[node_id]["inputs"][name] = value.link() if isinstance(value, Out) else value

    def node_id(self, title: str) -> str:
        for node_id, node in self._nodes.items():
            if node.get("_meta", {}).get("title") == title:
                return node_id
        raise KeyError(f"no node titled {title!r}")

    def title(self, node_id: str) -> str:
        node = self._nodes.get(node_id, {})
        return str(node.get("_meta", {}).get("title") or node.get("class_type") or node_id)

    def class_type(self, node_id: str) -> str | None:
        value = self._nodes.get(node_id, {}).get("class_type")
        return value if isinstance(value, str) else None

    def field_of(self, node_id: str, input_name: str | None = None) -> str | None:
        """The Easel field behind an input; without ``input_name``, the node's only field if it has one."""
        if input_name is not None:
            return self._fields.get((node_id, input_name))
        fields = {field for (nid, _), field in self._fields.items() if nid == node_id}
        return fields.pop() if len(fields) == 1 else None

    def ids(self, class_type: str) -> list[str]:
        return [nid for nid, node in self._nodes.items() if node.get("class_type") == class_type]

    def to_api(self) -> dict[str, Any]:
        """The JSON for ``POST /prompt`` (a copy)."""
        return copy.deepcopy(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)
