"""Lanes: tasks with the same requirements wait in the same lane, so a worker finds work it can do in a few steps.

A task's :class:`Requirements` are what a worker must have to run it: the checkpoint (by its canonical name), and
capability tokens for anything else workers may differ on (``lora:<name>``, ``upscaler:<name>``; a custom workflow
needs ``backend:comfyui``, ``node:<class>`` and ``model:<folder>/<file>``).
The lane is a readable key made from them (``any``, ``ckpt=dreamshaper_8``,
``ckpt=sdxl_base+lora:add_detail``). Each lane is a sorted set of its due tasks in fair order; a worker reads the
head of each lane it serves and takes the first in fair order (or the one affinity prefers), so the cost of a pick
depends on how many lanes it serves, never on how many tasks wait or how many workers there are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import PurePath

from pydantic import BaseModel, ConfigDict

from common.models import GenerationRequest, UpscaleRequest, WorkflowRequest
from common.registry import WorkerInfo

ANY = "any"
MAX_LANE_CHARS = 120  # longer lane names (many LoRAs) are hashed, to keep Redis key names short


class Requirements(BaseModel):
    """What a worker needs to run a task."""

    model_config = ConfigDict(frozen=True)

    checkpoint: str | None = None  # canonical checkpoint name (a checkpoint's model_name when a worker knows it)
    needs: tuple[str, ...] = ()  # sorted, lower-case capability tokens

    @property
    def lane(self) -> str:
        if self.checkpoint is None and not self.needs:
            return ANY
        parts = [f"ckpt={self.checkpoint}"] if self.checkpoint is not None else []
        name = "+".join(parts + list(self.needs))
        if len(name) > MAX_LANE_CHARS:
            return "h=" + hashlib.sha1(name.encode()).hexdigest()[:20]
        return name


def canonical_checkpoint(query: str, workers: Sequence[WorkerInfo]) -> str:
    """The checkpoint's model name as the live workers know it, else the query without extension and hash."""
    for worker in workers:
        found = worker.find_checkpoint(query)
        if found is not None:
            return found.model_name.lower()
    return PurePath(query.split(" [")[0].strip()).stem.lower() or query.strip().lower()


def requirements_for(request: GenerationRequest, workers: Sequence[WorkerInfo]) -> Requirements:
    """The requirements of one request (``workers``: the live ones, to resolve the checkpoint's name)."""
    if isinstance(request, UpscaleRequest):
        return Requirements(needs=(f"upscaler:{request.upscaler.lower()}",))
    if isinstance(request, WorkflowRequest):
        checkpoint = canonical_checkpoint(request.checkpoint, workers) if request.checkpoint else None
        return Requirements(checkpoint=checkpoint, needs=tuple(request.needs()))
    needs = {f"lora:{lora.name.lower()}" for lora in request.loras}
    if request.hires is not None and request.hires.upscaler is not None:
        needs.add(f"upscaler:{request.hires.upscaler.lower()}")
    checkpoint = canonical_checkpoint(request.checkpoint, workers) if request.checkpoint else None
    return Requirements(checkpoint=checkpoint, needs=tuple(sorted(needs)))


def capabilities(info: WorkerInfo) -> frozenset[str]:
    """The capability tokens a worker offers (what ``Requirements.needs`` is matched against)."""
    tokens = {f"lora:{name.lower()}" for name in info.loras}
    tokens |= {f"upscaler:{name.lower()}" for name in info.upscalers}
    if info.backend is not None:
        tokens.add(f"backend:{info.backend}")
    tokens |= {f"node:{name.lower()}" for name in info.node_classes}
    tokens |= {f"model:{folder}/{file.lower()}" for folder, files in info.models.items() for file in files}
    return frozenset(tokens)


def serves(info: WorkerInfo, requirements: Requirements, tokens: frozenset[str] | None = None) -> bool:
    if requirements.checkpoint is not None and info.find_checkpoint(requirements.checkpoint) is None:
        return False
    offered = capabilities(info) if tokens is None else tokens
    return all(need in offered for need in requirements.needs)


def is_warm(info: WorkerInfo, requirements: Requirements) -> bool:
    """True if the worker can run the lane's tasks without loading another checkpoint."""
    if requirements.checkpoint is None:
        return True
    found = info.find_checkpoint(requirements.checkpoint)
    return found is not None and found.title == info.loaded_checkpoint


def split_lanes(info: WorkerInfo, lanes: Iterable[tuple[str, Requirements]]) -> tuple[list[str], list[str]]:
    """(lanes the worker serves, the subset it serves warm), in a stable order."""
    tokens = capabilities(info)
    served = sorted((lane, req) for lane, req in lanes if serves(info, req, tokens))
    return [lane for lane, _ in served], [lane for lane, req in served if is_warm(info, req)]
