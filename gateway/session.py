"""One connected node: a :class:`PoolMember` acting on its behalf, and the checks on everything it says.

The session outlives a cut link by one lease: a node that reconnects within it carries on with the same lease token
(its running task, its renewals and its finish go through as if nothing happened); one that does not come back has
its task put back in line. Every refused request is logged with the node's name and why (never its token).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable

from aiohttp import web

from common import gateway_protocol as proto
from common import metrics
from common.errors import TaskFailed
from common.events import EventType, TaskEvent
from common.nodes import NodeRecord
from common.queue import messages
from common.queue.member import PoolMember
from common.queue.models import Claimed
from common.registry import WorkerInfo
from common.tasks import TaskResult, TaskSpec
from gateway import checks

log = logging.getLogger(__name__)

SETTLED_MEMORY = 64  # answers to finish kept for a node that repeats one after a reconnect
CLAIM_TRIES = 3  # tasks over the node's limits handed back before a claim answers "nothing"


class NodeSession:
    def __init__(self, record: NodeRecord, member: PoolMember, *, secret: bytes, max_image_bytes: int,
                 on_refused: Callable[[str], None] | None = None) -> None:
        self.record = record
        self.member = member
        self.name = record.name
        self._secret = secret
        self._max_image_bytes = max_image_bytes
        self._on_refused = on_refused
        self.ws: web.WebSocketResponse | None = None
        self.running: dict[str, tuple[Claimed, TaskSpec]] = {}
        self.settled: OrderedDict[str, bool] = OrderedDict()
        self.detached_since: float | None = None
        self.closed = False
        self._inbox: asyncio.Task[None] | None = None

    # --- connection --------------------------------------------------------------------------------------

    async def attach(self, ws: web.WebSocketResponse) -> None:
        old, self.ws = self.ws, ws
        self.detached_since = None
        if old is not None and not old.closed:
            await old.close(code=proto.CLOSE_REPLACED, message=b"the node connected again")
        if self._inbox is None:
            self._inbox = asyncio.create_task(self._forward_inbox(), name=f"inbox of node {self.name}")

    def detach(self, ws: web.WebSocketResponse) -> None:
        if self.ws is ws:
            self.ws = None
            self.detached_since = asyncio.get_running_loop().time()

    async def send(self, message: proto.Welcome | proto.Reply | proto.Control) -> None:
        ws = self.ws
        if ws is not None and not ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str(message.model_dump_json())

    async def close(self, *, code: int | None = None, reason: str = "", counted: bool = False) -> None:
        """End the session: disconnect, put its running tasks back in line, unregister."""
        if self.closed:
            return
        self.closed = True
        if self._inbox is not None:
            self._inbox.cancel()
            await asyncio.gather(self._inbox, return_exceptions=True)
        if self.ws is not None and code is not None:
            with contextlib.suppress(Exception):
                await self.ws.close(code=code, message=reason.encode()[:120])
        for task_id in list(self.running):
            with contextlib.suppress(Exception):
                if await self.member.hand_back(task_id, counted=counted):
                    log.info("node %s: task %s put back in line (%s)", self.name, task_id, reason or "gone")
        self.running.clear()
        with contextlib.suppress(Exception):
            await self.member.leave()

    async def _forward_inbox(self) -> None:
        async for message in self.member.messages():
            if isinstance(message, messages.CancelTask) and message.task_id not in self.running:
                continue
            await self.send(proto.Control(message=message))

    # --- requests ----------------------------------------------------------------------------------------

    def refuse(self, request_id: int, why: str) -> proto.Reply:
        log.warning("node %s: refused: %s", self.name, why)
        if self._on_refused is not None:
            self._on_refused(self.name)
        return proto.Reply(id=request_id, ok=False, error=why)

    async def handle(self, req: proto.NodeRequest) -> proto.Reply:  # noqa: C901 - one branch per request kind
        if isinstance(req, proto.ClaimRequest):
            return proto.Reply(id=req.id, claimed=await self._claim(self._info(req.info)))
        if isinstance(req, proto.HeartbeatRequest):
            await self.member.heartbeat(self._info(req.info))
            return proto.Reply(id=req.id)
        if isinstance(req, proto.RenewRequest):
            return await self._renew(req)
        if isinstance(req, proto.FinishRequest):
            return await self._finish(req)
        if isinstance(req, proto.HandBackRequest):
            if req.task_id not in self.running:
                return self.refuse(req.id, f"hand back of task {req.task_id}, which it does not run")
            del self.running[req.task_id]
            value = await self.member.hand_back(req.task_id, defer_s=req.defer_s, counted=req.counted,
                                                backend_failed=req.backend_failed, avoid=req.avoid)
            self._remember(req.task_id, value)
            return proto.Reply(id=req.id, value=value)
        if isinstance(req, proto.CancelQuery):
            if req.task_id not in self.running:
                return self.refuse(req.id, f"asked about task {req.task_id}, which it does not run")
            return proto.Reply(id=req.id, value=await self.member.cancel_requested(req.task_id))
        if isinstance(req, proto.PublishRequest):
            return await self._publish(req)
        if isinstance(req, proto.PreviewRequest):
            if req.task_id not in self.running:
                return self.refuse(req.id, f"a preview of task {req.task_id}, which it does not run")
            if (problem := checks.check_preview(req.jpeg)) is not None:
                return self.refuse(req.id, problem)
            await self.member.set_preview(req.task_id, req.jpeg)
            return proto.Reply(id=req.id)
        if isinstance(req, proto.SpeedRequest):
            await self.member.record_speed(kind=req.kind, checkpoint=req.checkpoint, work=req.work,
                                           seconds=req.seconds)
            return proto.Reply(id=req.id)
        if isinstance(req, proto.LoadRequest):
            await self.member.record_load(checkpoint=req.checkpoint, seconds=req.seconds)
            return proto.Reply(id=req.id)
        await self.close(reason="it left")  # LeaveRequest
        return proto.Reply(id=req.id)

    def _info(self, info: WorkerInfo) -> WorkerInfo:
        """The node's registry entry as the pool sees it: its own name, only the checkpoints it may run."""
        update: dict[str, object] = {"name": self.name, "node": f"gateway:{self.name}"}
        if self.record.checkpoints:
            allowed = self.record.checkpoints
            update["checkpoints"] = [c for c in info.checkpoints if any(c.matches(q) for q in allowed)]
        return info.model_copy(update=update)

    async def _claim(self, info: WorkerInfo) -> proto.NodeTask | None:
        for _ in range(CLAIM_TRIES):
            claimed = await self.member.claim(info)
            if claimed is None:
                return None
            try:
                spec = await self.member.spec(claimed)
            except TaskFailed as exc:  # cannot be rebuilt: fail it here, the node never sees it
                await self.member.finish(claimed, exc)
                await self.member.publish(TaskEvent(type=EventType.FAILED, task_id=claimed.task_id,
                                                    job_id=claimed.meta.job_id, worker=self.name, message=str(exc),
                                                    code=exc.code.value))
                continue
            if (why := checks.over_limits(self.record, spec.request)) is not None:
                log.info("node %s: task %s handed back: %s", self.name, claimed.task_id, why)
                await self.member.hand_back(claimed.task_id, counted=False, avoid=True)
                continue
            self.running[claimed.task_id] = (claimed, spec)
            owner = checks.pseudonym(spec.owner, self._secret)
            meta = claimed.meta.model_copy(update={"owner": owner})
            shown = spec.model_copy(update={"owner": owner}).model_dump(mode="json")
            return proto.NodeTask(task_id=claimed.task_id, meta=meta, spec=shown,
                                  cancel_requested=claimed.cancel_requested)
        return None

    async def _renew(self, req: proto.RenewRequest) -> proto.Reply:
        foreign = [t for t in req.task_ids if t not in self.running]
        if foreign:
            return self.refuse(req.id, f"renewal of tasks it does not run: {', '.join(foreign[:4])}")
        lost = await self.member.renew(req.task_ids, self._info(req.info))
        for task_id in lost:
            self.running.pop(task_id, None)
        return proto.Reply(id=req.id, lost=lost)

    async def _finish(self, req: proto.FinishRequest) -> proto.Reply:
        if req.task_id in self.settled:  # a repeat after a reconnect: the same answer, stored once
            return proto.Reply(id=req.id, value=self.settled[req.task_id])
        if req.task_id not in self.running:
            return self.refuse(req.id, f"a result for task {req.task_id}, which it does not run")
        claimed, spec = self.running[req.task_id]
        if req.result is not None:
            if (problem := checks.check_result(spec, req.result, max_image_bytes=self._max_image_bytes)) is not None:
                return self.refuse(req.id, f"result of task {req.task_id}: {problem}")
            outcome: TaskResult | TaskFailed = req.result.model_copy(update={"worker": self.name})
        elif req.error is not None:
            outcome = TaskFailed(req.error.message, req.error.code)
        else:
            return self.refuse(req.id, "a finish with neither a result nor an error")
        del self.running[req.task_id]
        value = await self.member.finish(claimed, outcome)
        self._remember(req.task_id, value)
        if value and isinstance(outcome, TaskResult):
            metrics.observe_result(outcome)
        elif value and isinstance(outcome, TaskFailed):
            metrics.observe_failure(outcome.code.value)
        return proto.Reply(id=req.id, value=value)

    async def _publish(self, req: proto.PublishRequest) -> proto.Reply:
        event = req.event
        running = self.running.get(event.task_id)
        settled = event.task_id in self.settled
        if (problem := checks.check_event(event, running=running is not None, settled=settled)) is not None:
            return self.refuse(req.id, problem)
        job_id = running[0].meta.job_id if running is not None else event.job_id
        if event.job_id != job_id or (running is None and not event.task_id.startswith(job_id + ".")):
            return self.refuse(req.id, f"an event naming another job than task {event.task_id}'s")
        message = event.message[: checks.MAX_EVENT_MESSAGE] if event.message else None
        await self.member.publish(event.model_copy(update={"worker": self.name, "message": message,
                                                           "position": None if running is None else 0}))
        return proto.Reply(id=req.id)

    def _remember(self, task_id: str, value: bool) -> None:
        self.settled[task_id] = value
        while len(self.settled) > SETTLED_MEMORY:
            self.settled.popitem(last=False)
