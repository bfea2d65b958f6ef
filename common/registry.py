"""Worker registry: each worker heartbeats what it is and what its WebUI offers.

Front ends read it to refuse requests no live worker can serve (unknown checkpoint, sampler, upscaler or LoRA)
before they reach the queue. An entry expires ``ttl`` after the last heartbeat.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from enum import StrEnum
from pathlib import PurePath

from pydantic import BaseModel, Field
from redis.asyncio import Redis

from common.queue.keys import Keys


class WorkerState(StrEnum):
    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    SWITCHING = "switching"
    DRAINING = "draining"
    PAUSED = "paused"
    UNHEALTHY = "unhealthy"


class CheckpointInfo(BaseModel):
    """A checkpoint a WebUI lists (`/sdapi/v1/sd-models`)."""

    title: str = Field(description="`name.safetensors [hash]`, what A1111 calls the title.")
    model_name: str = Field(description="File stem, e.g. `v1-5-pruned-emaonly`.")
    hash: str | None = Field(default=None, description="10-hex-digit short sha256, once computed.")
    filename: str | None = None
    architecture: str | None = Field(default=None, description="`sd15` or `sdxl` when it can be known.")

    def matches(self, query: str) -> bool:
        """True if ``query`` is any of the names A1111 accepts for this checkpoint (case-insensitive)."""
        q = query.strip().lower()
        names = {self.title, self.model_name, self.title.split(" [")[0], PurePath(self.title.split(" [")[0]).stem}
        if self.filename:
            names.add(PurePath(self.filename).name)
        if self.hash:
            names.add(self.hash)
        return q in {n.lower() for n in names}


class WorkerInfo(BaseModel):
    """One worker's registry entry."""

    name: str
    node: str = Field(description="Host the worker runs on.")
    webui_url: str
    backend: str | None = Field(default=None, description="API kind of its server: `a1111` or `comfyui`.")
    flavour: str | None = Field(default=None, description="`a1111`, `forge`, `forge-neo`, `sdnext` or `comfyui`.")
    backend_version: str | None = Field(default=None, description="The server's version, when it tells.")
    gpu: str | None = Field(default=None, description="GPU name, when the WebUI reports it.")
    state: WorkerState = WorkerState.STARTING
    current_task: str | None = None
    task_started_ms: int | None = Field(default=None, description="When the current task started.")
    loaded_checkpoint: str | None = Field(default=None, description="Title of the checkpoint in VRAM.")
    checkpoints: list[CheckpointInfo] = Field(default_factory=list)
    samplers: list[str] = Field(default_factory=list, description="Sampler names and aliases.")
    schedulers: list[str] = Field(default_factory=list, description="Scheduler names and labels.")
    upscalers: list[str] = Field(default_factory=list, description="Upscaler names (incl. latent modes).")
    loras: list[str] = Field(default_factory=list, description="LoRA names and aliases.")
    node_classes: list[str] = Field(default_factory=list, description="ComfyUI node classes it can run.")
    models: dict[str, list[str]] = Field(default_factory=dict, description="ComfyUI model files by folder.")
    tasks_done: int = 0
    checkpoint_loads: int = Field(default=0, description="Checkpoint switches since the worker started.")
    seconds_per_work: float | None = Field(default=None, description="This worker's average speed (s per work unit).")
    started_ms: int = 0
    heartbeat_ms: int = 0

    def find_checkpoint(self, query: str) -> CheckpointInfo | None:
        return next((c for c in self.checkpoints if c.matches(query)), None)


class Registry:
    """Read and write worker entries."""

    def __init__(self, redis: Redis, keys: Keys, *, ttl_s: float = 10.0) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl_ms = int(ttl_s * 1000)

    async def heartbeat(self, info: WorkerInfo) -> None:
        info.heartbeat_ms = int(time.time() * 1000)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._keys.worker(info.name), info.model_dump_json(), px=self._ttl_ms)
            pipe.zadd(self._keys.workers, {info.name: info.heartbeat_ms})
            await pipe.execute()

    async def remove(self, name: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._keys.worker(name))
            pipe.zrem(self._keys.workers, name)
            await pipe.execute()

    async def live(self) -> list[WorkerInfo]:
        """Workers that heartbeated within the TTL, by name."""
        now = int(time.time() * 1000)
        await self._redis.zremrangebyscore(self._keys.workers, "-inf", now - self._ttl_ms)
        names = await self._redis.zrange(self._keys.workers, 0, -1)
        if not names:
            return []
        values = await self._redis.mget([self._keys.worker(n.decode()) for n in names])
        return sorted(
            (WorkerInfo.model_validate_json(v) for v in values if v), key=lambda w: w.name
        )


def union(workers: Iterable[WorkerInfo], attr: str) -> set[str]:
    """Every value of a list attribute across workers, lower-cased for matching."""
    return {value.lower() for w in workers for value in getattr(w, attr)}
