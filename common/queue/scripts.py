"""The queue's Lua scripts (``lua/*.lua``), one typed wrapper each: arguments built and replies decoded here only.

Each script runs atomically in Redis; ``lua/common.lua`` (key names, lane and idle-set helpers) is prepended to
every one. Replies are decoded into the shapes of :mod:`common.queue.models`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from common.queue.keys import Keys
from common.queue.models import CancelOutcome, Claimed, TaskMeta


def _source(name: str) -> str:
    folder = resources.files("common.queue") / "lua"
    return (folder / "common.lua").read_text() + "\n" + (folder / f"{name}.lua").read_text()


def text(value: Any) -> str:
    """A Redis reply as str (replies are bytes unless the client decodes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class NewTask:
    """One task for :meth:`QueueScripts.enqueue`."""

    task_id: str
    cost_ms: float  # estimated run time: advances its owner's virtual clock
    payload: bytes  # arq's serialized job
    meta: TaskMeta
    requirements: str  # JSON of its lane's Requirements


@dataclass(frozen=True)
class Enqueued:
    accepted: bool
    queued_before: int  # the owner's waiting and running tasks before this job
    places: list[int]  # place in line of each new task (1 = next)


@dataclass(frozen=True)
class PickPolicy:
    """How a worker chooses between lanes (model affinity) and how stale its peers' signs of life may be."""

    affinity: bool
    switch_margin: float  # another lane's demand per worker must be this many times the warm lane's to switch
    max_pass_over_ms: int  # no task is passed over for longer
    fresh_ms: int  # a task that just arrived still counts as this much waiting
    warm_stale_ms: int  # a worker counts as holding a checkpoint while it renewed within this
    idle_stale_ms: int  # an idle registration older than this belongs to a worker that stopped polling


@dataclass(frozen=True)
class ClaimReply:
    lanes_version: int
    claimed: Claimed | None


class QueueScripts:
    """The scripts registered on one connection pool (EVALSHA; reloaded automatically after a Redis restart)."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.keys = keys
        self._enqueue: AsyncScript = redis.register_script(_source("enqueue"))
        self._claim: AsyncScript = redis.register_script(_source("claim"))
        self._renew: AsyncScript = redis.register_script(_source("renew"))
        self._finish: AsyncScript = redis.register_script(_source("finish"))
        self._hand_back: AsyncScript = redis.register_script(_source("hand_back"))
        self._cancel: AsyncScript = redis.register_script(_source("cancel"))

    async def enqueue(self, *, owner: str, now_ms: int, limit: int, aging: float, boost_ms: float, ttl_ms: int,
                      idle_stale_ms: int, tasks: list[NewTask]) -> Enqueued:
        args: list[Any] = [self.keys.prefix, owner, now_ms, limit, aging, boost_ms, ttl_ms, idle_stale_ms]
        for task in tasks:
            args += [task.task_id, task.cost_ms, task.payload, task.meta.model_dump_json(exclude_none=True),
                     task.requirements]
        reply = await self._enqueue(keys=[], args=args)
        return Enqueued(int(reply[0]) > 0, int(reply[1]), [int(p) for p in reply[2:]])

    async def claim(self, *, worker: str, token: str, now_ms: int, lease_ms: int, lanes: list[str],
                    warm: list[str], policy: PickPolicy) -> ClaimReply:
        warm_set = set(warm)
        pairs = [value for lane in lanes for value in (lane, int(lane in warm_set))]
        reply = await self._claim(keys=[], args=[
            self.keys.prefix, worker, token, now_ms, lease_ms, int(policy.affinity), policy.switch_margin,
            policy.max_pass_over_ms, policy.warm_stale_ms, policy.idle_stale_ms, policy.fresh_ms, *pairs,
        ])
        version = int(reply[1])
        if int(reply[0]) == 0:
            return ClaimReply(version, None)
        payload = json.loads(reply[4]) if reply[4] else None
        args = payload.get("a") if isinstance(payload, dict) else None  # arq's job: {"f", "a": [spec], "k", ...}
        spec = args[0] if isinstance(args, list) and args and isinstance(args[0], dict) else None
        meta = TaskMeta.model_validate_json(reply[3])
        return ClaimReply(version, Claimed(text(reply[2]), meta, spec, bool(int(reply[5]))))

    async def renew(self, *, worker: str, token: str, now_ms: int, lease_ms: int, warm: list[str],
                    task_ids: list[str]) -> list[str]:
        """Renew leases; returns the ids whose lease is lost for good."""
        lost = await self._renew(keys=[], args=[self.keys.prefix, worker, token, now_ms, lease_ms,
                                                _json_list(warm), *task_ids])
        return [text(t) for t in lost]

    async def finish(self, *, token: str, task_id: str, result: bytes, result_ttl_ms: int) -> bool:
        return bool(await self._finish(keys=[], args=[self.keys.prefix, token, task_id, result, result_ttl_ms]))

    async def hand_back(self, *, worker: str, token: str, task_id: str, now_ms: int, defer_ms: int, counted: bool,
                        backend_failed: bool, avoid_ms: int, idle_stale_ms: int) -> bool:
        return bool(await self._hand_back(keys=[], args=[
            self.keys.prefix, worker, token, task_id, now_ms, defer_ms, int(counted), int(backend_failed), avoid_ms,
            idle_stale_ms,
        ]))

    async def cancel(self, *, task_id: str, result: bytes, result_ttl_ms: int, message: str) -> CancelOutcome:
        reply = await self._cancel(keys=[], args=[self.keys.prefix, task_id, result, result_ttl_ms, message])
        return CancelOutcome(text(reply))


def _json_list(values: list[str]) -> str:
    # cjson decodes "[]" as an empty table; an explicit list keeps the scripts' ipairs() loops simple
    return json.dumps(values)
