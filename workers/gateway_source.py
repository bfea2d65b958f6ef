"""A volunteer node's :class:`TaskSource`: the pool through the worker gateway, over one outbound WebSocket.

The link is kept up in the background with exponential back-off and jitter. While it is down every step raises
``ConnectionError``, which the worker loop rides out as it rides out a Redis outage; a step cut mid-way is sent again
once the link is back (the gateway answers a repeat with the first answer, so nothing is stored twice). The node
resumes with the same session if it is back within its lease. A refused token (unknown, revoked, banned) stops
the node with :class:`NodeRefused`: no amount of retrying fixes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import ssl
from collections.abc import AsyncIterator

import aiohttp

from common import gateway_protocol as proto
from common.errors import EaselError, TaskFailed
from common.events import TERMINAL, EventType, TaskEvent
from common.outage import FIRST_DELAY_S, MAX_DELAY_S
from common.queue import messages
from common.queue.models import Claimed
from common.registry import WorkerInfo
from common.settings import ConfigurationError, Settings
from common.tasks import TaskResult, TaskSpec

log = logging.getLogger(__name__)

CONNECT_WAIT_S = 5.0  # a step waits this long for the link before it counts as an outage


class NodeRefused(EaselError):
    """The gateway does not accept this node's token."""


def ws_url(gateway_url: str) -> str:
    base = gateway_url.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base.removeprefix("https://") + proto.PATH
    if base.startswith("http://"):
        return "ws://" + base.removeprefix("http://") + proto.PATH
    raise ConfigurationError(f"EASEL_GATEWAY_URL={gateway_url!r}: use https://host[:port] (or http:// for tests)")


class GatewaySource:
    """See the module docstring. ``name`` is known once :meth:`connect` returns (the gateway assigns it)."""

    def __init__(self, settings: Settings) -> None:
        if not settings.gateway_url or settings.node_token is None:
            raise ConfigurationError("a node needs EASEL_GATEWAY_URL (--gateway) and EASEL_NODE_TOKEN (--token)")
        self.url = ws_url(settings.gateway_url)
        self._token = settings.node_token.get_secret_value()
        self._ssl: ssl.SSLContext | bool = True
        if self.url.startswith("wss://"):
            self._ssl = ssl.create_default_context(cafile=settings.gateway_ca_file)
        self.name = ""
        self.lease_s = settings.lease_s
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[proto.Reply]] = {}
        self._inbox: asyncio.Queue[messages.ControlMessage] = asyncio.Queue()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._up = asyncio.Event()
        self._welcomed = asyncio.Event()
        self._fatal: str | None = None
        self._http: aiohttp.ClientSession | None = None
        self._link: asyncio.Task[None] | None = None
        self.connections = 0  # links made so far (tests read it)

    # --- the link ------------------------------------------------------------------------------------------

    async def connect(self, timeout_s: float = 30.0) -> None:
        """Open the link (kept up from now on) and wait for the gateway's welcome."""
        self._http = aiohttp.ClientSession()
        self._link = asyncio.create_task(self._keep_linked(), name="gateway link")
        try:
            async with asyncio.timeout(timeout_s):
                while not self._welcomed.is_set():
                    if self._fatal is not None:
                        raise NodeRefused(self._fatal)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.1):
                            await self._welcomed.wait()
        except BaseException:
            await self.close()
            raise
        log.info("joined the pool through %s as %s", self.url, self.name)

    async def close(self) -> None:
        if self._link is not None:
            self._link.cancel()
            await asyncio.gather(self._link, return_exceptions=True)
        if self._http is not None:
            await self._http.close()

    async def _keep_linked(self) -> None:
        delay = FIRST_DELAY_S
        assert self._http is not None
        while self._fatal is None:
            try:
                async with self._http.ws_connect(
                    self.url, headers={proto.AUTH_HEADER: f"Bearer {self._token}"}, ssl=self._ssl, heartbeat=10.0,
                    max_msg_size=0, compress=0,
                ) as ws:
                    self._ws = ws
                    self.connections += 1
                    delay = FIRST_DELAY_S
                    await self._read(ws)
                    if ws.close_code in proto.FATAL_CLOSE_CODES:
                        self._refused(f"the gateway closed the link: {ws.close_code} {_reason(ws)}")
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status in (401, 403):
                    self._refused("the gateway refused this node's token (unknown, replaced or revoked); ask the "
                                  "operator for a new one (`easel workers invite NAME`)")
                else:
                    log.warning("the gateway at %s answered %s; retrying", self.url, exc.status)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                if isinstance(exc, aiohttp.ClientConnectorCertificateError | ssl.SSLError):
                    self._refused(f"TLS: the gateway's certificate is not trusted ({exc}); set EASEL_GATEWAY_CA_FILE")
                elif self._up.is_set() or self.connections == 0:
                    log.warning("the gateway at %s is unreachable (%s); retrying", self.url, type(exc).__name__)
            finally:
                self._ws = None
                self._up.clear()
                for future in self._pending.values():
                    if not future.done():
                        future.set_exception(ConnectionError("the link to the gateway was cut"))
                self._pending.clear()
            if self._fatal is None:
                await asyncio.sleep(random.uniform(delay / 2, delay))
                delay = min(MAX_DELAY_S, delay * 2)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            message = proto.FROM_GATEWAY.validate_json(msg.data)
            if isinstance(message, proto.Welcome):
                self.name, self.lease_s = message.name, message.lease_s
                self._welcomed.set()
                self._up.set()
                self._inbox.put_nowait(messages.Wake())  # a wake-up sent while the link was down is not lost
            elif isinstance(message, proto.Reply):
                future = self._pending.pop(message.id, None)
                if future is not None and not future.done():
                    future.set_result(message)
            else:
                self._inbox.put_nowait(message.message)

    def _refused(self, why: str) -> None:
        self._fatal = why
        log.error("%s", why)
        self._inbox.put_nowait(messages.Drain())  # the loop stops taking tasks

    async def _call(self, request: proto.NodeRequest) -> proto.Reply:
        if self._fatal is not None:
            raise NodeRefused(self._fatal)
        try:
            async with asyncio.timeout(CONNECT_WAIT_S):
                await self._up.wait()
        except TimeoutError:
            raise ConnectionError(f"the gateway at {self.url} is unreachable") from None
        ws = self._ws
        if ws is None:
            raise ConnectionError("the link to the gateway was cut")
        future: asyncio.Future[proto.Reply] = asyncio.get_running_loop().create_future()
        self._pending[request.id] = future
        try:
            await ws.send_str(request.model_dump_json())
        except (ConnectionError, RuntimeError) as exc:
            self._pending.pop(request.id, None)
            raise ConnectionError(f"the link to the gateway was cut ({exc})") from exc
        reply = await future
        if not reply.ok:
            log.warning("the gateway refused %s: %s", request.type, reply.error)
        return reply

    async def _tell(self, request: proto.NodeRequest) -> None:
        """Send without waiting for the answer (events, previews, speeds, heartbeats: off the GPU's critical path);
        a refusal is logged when it comes. Raises ConnectionError while the link is down, as :meth:`_call` does."""
        if self._fatal is not None:
            raise NodeRefused(self._fatal)
        ws = self._ws
        if ws is None or not self._up.is_set():
            raise ConnectionError(f"the gateway at {self.url} is unreachable")
        future: asyncio.Future[proto.Reply] = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda f: _log_refusal(request.type, f))
        self._pending[request.id] = future
        try:
            await ws.send_str(request.model_dump_json())
        except (ConnectionError, RuntimeError) as exc:
            self._pending.pop(request.id, None)
            future.cancel()
            raise ConnectionError(f"the link to the gateway was cut ({exc})") from exc

    # --- TaskSource ----------------------------------------------------------------------------------------

    async def claim(self, info: WorkerInfo) -> Claimed | None:
        task = (await self._call(proto.ClaimRequest(id=next(self._ids), info=info))).claimed
        if task is None:
            return None
        return Claimed(task_id=task.task_id, meta=task.meta, payload=task.spec, cancel_requested=task.cancel_requested)

    async def spec(self, claimed: Claimed) -> TaskSpec:
        if claimed.payload is None:
            raise TaskFailed(f"the task {claimed.task_id} came without its spec")
        return TaskSpec.model_validate(claimed.payload, context={"limits": None})

    async def renew(self, task_ids: list[str], info: WorkerInfo) -> list[str]:
        reply = await self._call(proto.RenewRequest(id=next(self._ids), task_ids=task_ids, info=info))
        return reply.lost if reply.ok else list(task_ids)

    async def finish(self, claimed: Claimed, outcome: TaskResult | TaskFailed) -> bool:
        if isinstance(outcome, TaskResult):
            request = proto.FinishRequest(id=next(self._ids), task_id=claimed.task_id, result=outcome)
        else:
            request = proto.FinishRequest(id=next(self._ids), task_id=claimed.task_id,
                                          error=proto.Failure(message=str(outcome)[:2000], code=outcome.code.value))
        return bool((await self._call(request)).value)

    async def hand_back(self, task_id: str, *, defer_s: float = 0.0, counted: bool, backend_failed: bool = False,
                        avoid: bool = False) -> bool:
        reply = await self._call(proto.HandBackRequest(id=next(self._ids), task_id=task_id, defer_s=defer_s,
                                                       counted=counted, backend_failed=backend_failed, avoid=avoid))
        return bool(reply.value)

    async def cancel_requested(self, task_id: str) -> bool:
        return bool((await self._call(proto.CancelQuery(id=next(self._ids), task_id=task_id))).value)

    async def publish(self, event: TaskEvent) -> None:
        request = proto.PublishRequest(id=next(self._ids), event=event)
        if event.type in TERMINAL or event.type == EventType.RETRYING:  # must not be lost to a cut: answered
            await self._call(request)
        else:
            await self._tell(request)

    async def set_preview(self, task_id: str, jpeg: bytes) -> None:
        await self._tell(proto.PreviewRequest(id=next(self._ids), task_id=task_id, jpeg=jpeg))

    async def record_speed(self, *, kind: str, checkpoint: str | None, work: float, seconds: float) -> None:
        await self._tell(proto.SpeedRequest(id=next(self._ids), kind=kind, checkpoint=checkpoint, work=work,
                                            seconds=seconds))

    async def record_load(self, *, checkpoint: str, seconds: float) -> None:
        await self._tell(proto.LoadRequest(id=next(self._ids), checkpoint=checkpoint, seconds=seconds))

    async def heartbeat(self, info: WorkerInfo) -> None:
        await self._tell(proto.HeartbeatRequest(id=next(self._ids), info=info))

    async def leave(self) -> None:
        if self._up.is_set():
            with contextlib.suppress(ConnectionError, NodeRefused):
                async with asyncio.timeout(2):
                    await self._call(proto.LeaveRequest(id=next(self._ids)))

    async def messages(self) -> AsyncIterator[messages.ControlMessage]:
        while True:
            yield await self._inbox.get()


def _log_refusal(kind: str, future: asyncio.Future[proto.Reply]) -> None:
    if future.cancelled() or future.exception() is not None:  # the link was cut: the step is lost, as it may be
        return
    reply = future.result()
    if not reply.ok:
        log.warning("the gateway refused %s: %s", kind, reply.error)


def _reason(ws: aiohttp.ClientWebSocketResponse) -> str:
    extra = ws.extra if hasattr(ws, "extra") else None  # aiohttp keeps the close reason here
    return str(extra or "")
