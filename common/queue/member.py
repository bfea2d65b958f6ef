"""One worker's side of the queue protocol, on Redis: claim, renew, finish, hand back, events, registry, inbox.

A trusted worker uses it directly; the gateway uses one per connected node, on the node's behalf. It holds the
worker's lease token (``<worker>:<random>``): every step that changes a task the worker runs is fenced on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
from collections.abc import AsyncIterator

from arq.jobs import serialize_result
from redis.asyncio import Redis

from common import serialization
from common.errors import TaskFailed
from common.events import EventStream, TaskEvent
from common.outage import FIRST_DELAY_S, MAX_DELAY_S, bounded, is_outage
from common.queue import messages
from common.queue.blobs import Blobs, from_payload
from common.queue.fairness import Speeds
from common.queue.keys import TASK_FUNCTION, Keys
from common.queue.lanes import Requirements, split_lanes
from common.queue.models import Claimed
from common.queue.policy import RETRY_ELSEWHERE_MS, pick_policy
from common.queue.scripts import QueueScripts, text
from common.registry import Registry, WorkerInfo
from common.settings import Settings
from common.tasks import TaskResult, TaskSpec, now_ms

log = logging.getLogger(__name__)

class PoolMember:
    """See the module docstring. ``name`` is the worker's registry name."""

    def __init__(self, redis: Redis, settings: Settings, name: str) -> None:
        self.redis = redis
        self.settings = settings
        self.name = name
        self.keys = Keys(settings.redis_prefix)
        self.token = f"{name}:{secrets.token_hex(6)}"
        self.scripts = QueueScripts(redis, self.keys)
        self.events = EventStream(redis, self.keys, maxlen=settings.events_maxlen,
                                  max_age_s=settings.events_max_age_s)
        self.registry = Registry(redis, self.keys, ttl_s=settings.worker_ttl_s)
        self.speeds = Speeds(redis, self.keys)
        self.blobs = Blobs(redis, self.keys, ttl_s=settings.result_ttl_s + 86_400)
        self.policy = pick_policy(settings)
        self._lease_ms = int(settings.lease_s * 1000)
        self._lanes: dict[str, Requirements] = {}
        self._lanes_version = -1
        self._served: tuple[object, tuple[list[str], list[str]]] | None = None  # (what it depends on, the answer)

    # --- lanes ---------------------------------------------------------------------------------------------

    async def _load_lanes(self) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self.keys.lanes_version)
            pipe.hgetall(self.keys.lanes)
            version, lanes = await pipe.execute()
        self._lanes_version = int(version or 0)
        self._lanes = {text(k): Requirements.model_validate_json(v) for k, v in lanes.items()}

    def lanes_for(self, info: WorkerInfo) -> tuple[list[str], list[str]]:
        """(lanes this worker serves, those whose checkpoint it has loaded); recomputed only when they may change."""
        basis = (self._lanes_version, info.loaded_checkpoint, tuple(c.title for c in info.checkpoints),
                 tuple(info.loras), tuple(info.upscalers), info.backend, tuple(info.node_classes),
                 tuple((folder, tuple(files)) for folder, files in info.models.items()))
        if self._served is None or self._served[0] != basis:
            self._served = (basis, split_lanes(info, self._lanes.items()))
        return self._served[1]

    # --- tasks ---------------------------------------------------------------------------------------------

    async def claim(self, info: WorkerInfo) -> Claimed | None:
        """Claim the task this worker should run next (None: nothing it can run; it is registered as idle)."""
        if self._lanes_version < 0:
            await self._load_lanes()
        for _ in range(2):  # once more if new lanes appeared: one of them may hold our next task
            lanes, warm = self.lanes_for(info)
            reply = await self.scripts.claim(worker=self.name, token=self.token, now_ms=now_ms(),
                                             lease_ms=self._lease_ms, lanes=lanes, warm=warm, policy=self.policy)
            if reply.claimed is not None or reply.lanes_version == self._lanes_version:
                return reply.claimed
            await self._load_lanes()
        return None

    async def spec(self, claimed: Claimed) -> TaskSpec:
        """The claimed task's spec, its inputs fetched (raises TaskFailed if it cannot be rebuilt)."""
        if claimed.payload is None:
            raise TaskFailed(f"the task {claimed.task_id} has no payload any more (expired); submit it again")
        return await from_payload(claimed.payload, self.blobs.get)

    async def renew(self, task_ids: list[str], info: WorkerInfo) -> list[str]:
        """Renew the leases of ``task_ids``; returns those lost for good (another worker runs them now)."""
        _, warm = self.lanes_for(info)
        return await self.scripts.renew(worker=self.name, token=self.token, now_ms=now_ms(),
                                        lease_ms=self._lease_ms, warm=warm, task_ids=task_ids)

    async def finish(self, claimed: Claimed, outcome: TaskResult | TaskFailed) -> bool:
        """Store the outcome in arq's format; False if this worker lost the task (the outcome is discarded)."""
        success = isinstance(outcome, TaskResult)
        value = outcome.model_dump(mode="json") if isinstance(outcome, TaskResult) else outcome
        started = claimed.meta.started_ms or now_ms()
        data = serialize_result(TASK_FUNCTION, (), {}, claimed.meta.tries, claimed.meta.enqueue_ms, success, value,
                                started, now_ms(), claimed.task_id, self.keys.waiting, claimed.task_id,
                                serializer=serialization.serialize)
        return await self.scripts.finish(token=self.token, task_id=claimed.task_id, result=data or b"",
                                         result_ttl_ms=int(self.settings.result_ttl_s * 1000))

    async def hand_back(self, task_id: str, *, defer_s: float = 0.0, counted: bool, backend_failed: bool = False,
                        avoid: bool = False) -> bool:
        """Put a task this worker holds back in line, keeping its place.

        ``counted``: the start counts as a try. ``backend_failed``: our generation server failed it (counted towards
        giving up on a task that fails every server). ``avoid``: other workers get the first chance at it.
        """
        return await self.scripts.hand_back(
            worker=self.name, token=self.token, task_id=task_id, now_ms=now_ms(), defer_ms=int(defer_s * 1000),
            counted=counted, backend_failed=backend_failed, avoid_ms=RETRY_ELSEWHERE_MS if avoid else 0,
            idle_stale_ms=self.policy.idle_stale_ms,
        )

    async def cancel_requested(self, task_id: str) -> bool:
        return bool(await self.redis.exists(self.keys.cancel(task_id)))

    # --- events, previews, speeds, registry ------------------------------------------------------------------

    async def publish(self, event: TaskEvent) -> None:
        await self.events.publish(event)

    async def set_preview(self, task_id: str, jpeg: bytes) -> None:
        await self.events.set_preview(task_id, jpeg)

    async def record_speed(self, *, kind: str, checkpoint: str | None, work: float, seconds: float) -> None:
        await self.speeds.record(worker=self.name, kind=kind, checkpoint=checkpoint, work=work, seconds=seconds)

    async def record_load(self, *, checkpoint: str, seconds: float) -> None:
        await self.speeds.record_load(checkpoint=checkpoint, seconds=seconds)

    async def heartbeat(self, info: WorkerInfo) -> None:
        await self.registry.heartbeat(info)

    async def leave(self) -> None:
        """Unregister: the registry entry and every idle set (wake-ups must not go to a worker that is gone)."""
        raw = await self.redis.hget(self.keys.idle_lanes, self.name)  # type: ignore[misc]
        async with self.redis.pipeline(transaction=True) as pipe:
            for name in json.loads(raw) if raw else []:
                pipe.zrem(f"{self.keys.prefix}{name}", self.name)
            pipe.hdel(self.keys.idle_lanes, self.name)
            await pipe.execute()
        await self.registry.remove(self.name)

    # --- inbox ---------------------------------------------------------------------------------------------

    async def messages(self) -> AsyncIterator[messages.ControlMessage]:
        """This worker's control messages and wake-ups, for as long as it runs; reconnects after an outage.

        After every (re)subscription it yields a ``Wake``: a wake-up sent while it was not listening is not lost.
        """
        delay = FIRST_DELAY_S
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.keys.inbox(self.name), self.keys.broadcast)
                delay = FIRST_DELAY_S
                yield messages.Wake()
                while True:
                    raw = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if raw is not None and (message := messages.decode(raw["data"])) is not None:
                        yield message
            except Exception as exc:
                if not is_outage(exc):
                    raise
                await asyncio.sleep(random.uniform(delay / 2, delay))
                delay = min(MAX_DELAY_S, delay * 2)
            finally:  # bounded: a connection cut mid-read must not hold up the worker's shutdown
                with contextlib.suppress(Exception):
                    await bounded(pubsub.aclose(), 2)
