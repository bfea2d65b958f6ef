"""``easel gateway``: the HTTPS/WebSocket server volunteer nodes connect to, outbound, instead of reaching Redis.

Each node authenticates with its token and becomes one worker of the pool through a :class:`NodeSession`. The
gateway listens for revocations on the node channel (and re-checks every record every ``REVIEW_S`` in case a
message was missed), so a revoked node is cut off within seconds. ``/metrics`` serves Prometheus metrics from the
same server; ``/healthz`` answers 200 while Redis does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import ssl

from aiohttp import WSMsgType, web
from pydantic import ValidationError
from redis.asyncio import Redis

from common import gateway_protocol as proto
from common import metrics
from common.connection import open_redis
from common.nodes import NodeStore
from common.outage import bounded, is_outage
from common.queue.keys import Keys
from common.queue.member import PoolMember
from common.settings import Settings
from gateway.session import NodeSession

log = logging.getLogger(__name__)

REVIEW_S = 2.0
GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway")


class Gateway:
    def __init__(self, settings: Settings, redis: Redis) -> None:
        self.settings = settings
        self.redis = redis
        self.nodes = NodeStore(redis, Keys(settings.redis_prefix))
        self.sessions: dict[str, NodeSession] = {}
        self.refused = 0  # refused requests and connections (tests and metrics read it)
        secret = settings.gateway_secret.get_secret_value() if settings.gateway_secret else None
        if secret is None:
            log.warning("EASEL_GATEWAY_SECRET is not set: owner pseudonyms change when the gateway restarts")
        self._secret = (secret or secrets.token_hex(32)).encode()
        self._background: list[asyncio.Task[None]] = []

    # --- lifecycle -----------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._background = [asyncio.create_task(self._watch_nodes(), name="node revocations"),
                            asyncio.create_task(self._review(), name="node review")]

    async def stop(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        for session in list(self.sessions.values()):
            await session.close(code=1001, reason="the gateway is stopping")
        self.sessions.clear()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1024**2)
        app[GATEWAY] = self
        app.router.add_get(proto.PATH, self._node)
        app.router.add_get("/metrics", metrics.aiohttp_handler)
        app.router.add_get("/healthz", self._health)

        async def on_startup(_: web.Application) -> None:
            await self.start()

        async def on_cleanup(_: web.Application) -> None:
            await self.stop()

        app.on_startup.append(on_startup)
        app.on_cleanup.append(on_cleanup)
        return app

    async def _health(self, _: web.Request) -> web.Response:
        try:
            await bounded(self.redis.ping(), 2)
        except Exception as exc:
            return web.json_response({"ok": False, "error": type(exc).__name__}, status=503)
        return web.json_response({"ok": True, "nodes": len(self.sessions)})

    # --- revocation ----------------------------------------------------------------------------------------

    async def _watch_nodes(self) -> None:
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.nodes.channel)
                while True:
                    raw = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if raw is not None:
                        await self._recheck(raw["data"].decode())
            except Exception as exc:
                if not is_outage(exc):
                    log.exception("watching node revocations failed")
                await asyncio.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    await bounded(pubsub.aclose(), 2)

    async def _review(self) -> None:
        """Re-check connected nodes' records, and put back the tasks of nodes gone for longer than a lease."""
        while True:
            await asyncio.sleep(REVIEW_S)
            now = asyncio.get_running_loop().time()
            for name, session in list(self.sessions.items()):
                try:
                    if session.detached_since is not None and now - session.detached_since > self.settings.lease_s:
                        self.sessions.pop(name, None)
                        await session.close(reason="the node did not come back within its lease", counted=True)
                        continue
                    await self._recheck(name)
                except Exception as exc:
                    if not is_outage(exc):
                        log.exception("reviewing node %s failed", name)
            metrics.NODES_CONNECTED.set(sum(1 for s in self.sessions.values() if s.ws is not None))
            with contextlib.suppress(Exception):
                await bounded(metrics.update_queue_depth(self.redis, self.nodes.keys))

    async def _recheck(self, name: str) -> None:
        session = self.sessions.get(name)
        if session is None:
            return
        record = await self.nodes.get(name)
        if record is None or not record.active or record.token_sha256 != session.record.token_sha256:
            self.sessions.pop(name, None)
            why = record.status if record is not None else "removed"
            log.warning("node %s: %s; disconnected, its running task goes back in line", name,
                        "token replaced" if record is not None and record.active else why)
            await session.close(code=proto.CLOSE_REVOKED, reason=f"this node's token was {why}")
        else:
            session.record = record  # limits may have changed

    # --- the node's WebSocket -----------------------------------------------------------------------------

    def _note_refused(self, name: str) -> None:
        self.refused += 1
        metrics.GATEWAY_REFUSED.labels(node=name).inc()

    async def _node(self, request: web.Request) -> web.StreamResponse:
        header = request.headers.get(proto.AUTH_HEADER, "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        record = await self.nodes.authenticate(token) if token else None
        if record is None:
            self._note_refused("unknown")
            log.warning("refused a node connection from %s: %s", request.remote,
                        "no token" if not token else "unknown, replaced or revoked token")
            return web.json_response({"error": "unknown or revoked node token; ask the operator for a new one"},
                                     status=401)
        # no per-message compression: messages are small JSON or already-compressed PNGs; it costs latency
        ws = web.WebSocketResponse(heartbeat=10.0, max_msg_size=self.settings.gateway_max_message_bytes,
                                   compress=False)
        await ws.prepare(request)
        session = self.sessions.get(record.name)
        if session is None or session.closed:
            member = PoolMember(self.redis, self.settings, record.name)
            session = NodeSession(record, member, secret=self._secret,
                                  max_image_bytes=self.settings.gateway_max_image_bytes,
                                  on_refused=self._note_refused)
            self.sessions[record.name] = session
            log.info("node %s connected from %s", record.name, request.remote)
        else:
            log.info("node %s reconnected from %s; it keeps its running task", record.name, request.remote)
        await session.attach(ws)
        metrics.NODES_CONNECTED.set(sum(1 for s in self.sessions.values() if s.ws is not None))
        await session.send(proto.Welcome(name=record.name, lease_s=self.settings.lease_s))
        handling: set[asyncio.Task[None]] = set()
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                task = asyncio.create_task(self._answer(session, msg.data))
                handling.add(task)
                task.add_done_callback(handling.discard)
        finally:
            session.detach(ws)
            metrics.NODES_CONNECTED.set(sum(1 for s in self.sessions.values() if s.ws is not None))
            if session.closed:
                self.sessions.pop(record.name, None) if self.sessions.get(record.name) is session else None
        return ws

    async def _answer(self, session: NodeSession, data: str) -> None:
        try:
            req = proto.REQUEST.validate_json(data)
        except ValidationError as exc:
            request_id = _request_id(data)
            kind = _request_type(data)
            reply = session.refuse(request_id, f"a malformed or unknown request ({kind!r}): "
                                   f"{exc.error_count()} problem(s)")
        else:
            try:
                reply = await session.handle(req)
            except Exception as exc:
                if not is_outage(exc):
                    log.exception("node %s: %s failed", session.name, req.type)
                reply = proto.Reply(id=req.id, ok=False, error="the gateway could not reach the queue; try again")
        if not session.closed or isinstance(reply, proto.Reply):
            await session.send(reply)


def _request_id(data: str) -> int:
    with contextlib.suppress(Exception):
        value = json.loads(data).get("id")
        if isinstance(value, int) and value >= 0:
            return value
    return 0


def _request_type(data: str) -> str:
    with contextlib.suppress(Exception):
        return str(json.loads(data).get("type"))[:40]
    return "?"


def tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


async def serve(settings: Settings, host: str, port: int, *, cert: str | None = None, key: str | None = None,
                ready: asyncio.Event | None = None) -> None:
    """Run the gateway until cancelled."""
    redis = await open_redis(settings)
    gateway = Gateway(settings, redis)
    runner = web.AppRunner(gateway.app(), handle_signals=False, access_log=None)
    await runner.setup()
    try:
        context = tls_context(cert, key) if cert and key else None
        await web.TCPSite(runner, host, port, ssl_context=context).start()
        log.info("gateway listening on %s://%s:%d%s", "https" if context else "http", host, port, proto.PATH)
        if context is None:
            log.warning("the gateway serves plain HTTP: put it behind a TLS proxy or pass --tls-cert/--tls-key")
        if ready is not None:
            ready.set()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await redis.aclose()
