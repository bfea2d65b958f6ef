"""The queue protocol, in one package: who runs what next, and everything a front end or a worker says about it.

Modules:

- ``keys``: every Redis key and channel name, under the deployment's prefix.
- ``lua/*.lua`` and ``scripts``: the atomic steps (enqueue, claim, renew, finish, hand back, cancel), one typed
  wrapper each; nothing else builds their arguments or decodes their replies.
- ``models``: task metadata, states, claims, listings, estimates. ``messages``: typed control messages to workers.
- ``lanes``: tasks with the same requirements (checkpoint, LoRAs, upscaler...) share a lane; workers serve lanes.
- ``fairness``: fair order (start-time fair queueing with priorities and aging) and task cost (``Speeds``).
- ``estimates``: places (exact ranks) and start times (a bounded simulation plus extrapolation).
- ``blobs``: inputs stored once by content hash and referenced by tasks.
- ``client``: :class:`EaselClient`, the front ends' side. ``member``: :class:`PoolMember`, one worker's side.

The waiting-task index: ``waiting`` holds every waiting task by fair key, so a task's place is its rank (exact at
any depth, O(log n)); each lane holds its due tasks by the same key; ``delayed`` holds retries until they are due;
``running`` holds running tasks by lease expiry, and whoever claims next puts lapsed ones back in line. A worker
claims in one script that reads the head of each lane it serves and takes the first in fair order (or its loaded
checkpoint's, by model affinity, never passing a task over for longer than ``EASEL_MAX_PASS_OVER_S``), so a pick
costs the same at 10 or 100,000 waiting tasks and with 1 or 200 workers, and no two workers race for one task. An
enqueue wakes one idle worker per task (from the lane's idle set), never all of them.

What arq still does: it defines the storage format Easel keeps — the job payload (``arq:job:<id>``, written with
``arq.jobs.serialize_job``), the stored outcome (``arq:result:<id>``, ``serialize_result`` / ``deserialize_result``)
and the in-progress key (``arq:in-progress:<id>``, here a lease holding the worker's token) — and its connection
pool (``arq.connections.create_pool``). Picking, leases, retries and the worker's loop are Easel's
(``workers/loop.py``): arq's worker polls a FIFO, has no leases and no way to route a task to the worker able to run
it, so its loop was replaced rather than patched.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from common.queue.client import EaselClient, connect_redis, resolve_seed
    from common.queue.models import CancelOutcome, QueuedTask, TaskState

_EXPORTS = {
    "EaselClient": "common.queue.client",
    "connect_redis": "common.queue.client",
    "resolve_seed": "common.queue.client",
    "CancelOutcome": "common.queue.models",
    "QueuedTask": "common.queue.models",
    "TaskState": "common.queue.models",
}

__all__ = ["CancelOutcome", "EaselClient", "QueuedTask", "TaskState", "connect_redis", "resolve_seed"]


def __getattr__(name: str) -> Any:
    # Lazy, so that modules the client itself imports (the registry, events) can import common.queue.keys.
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'common.queue' has no attribute {name!r}")
