"""``easel worker``: connect to the pool, open the WebUI, run the loop until stopped, drained or Redis is gone.

:class:`Worker` is also what tests and benchmarks start in-process (``await worker.start()``, then ``run()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from arq.connections import ArqRedis

from common import metrics
from common.outage import Outage
from common.queue.client import connect_redis
from common.queue.member import PoolMember
from common.settings import Settings
from workers.gateway_source import GatewaySource
from workers.loop import WorkerLoop
from workers.startup import WorkerContext, close_context, open_context

log = logging.getLogger(__name__)


class Worker:
    """One GPU's worker process: its Redis pool, its WebUI, its loop."""

    def __init__(self, settings: Settings) -> None:
        settings.require_webui_url()  # fail at start-up, not on the first task
        self.settings = settings
        self._redis: ArqRedis | None = None
        self._gateway: GatewaySource | None = None
        self.wctx: WorkerContext | None = None
        self.loop: WorkerLoop | None = None
        self._running: asyncio.Task[object] | None = None

    async def start(self) -> None:
        """Connect (waiting out a Redis outage), read the WebUI, register. Ready to take tasks after this."""
        settings = self.settings
        outage = Outage(f"worker {settings.worker_name}", limit_s=settings.redis_outage_s, logger=log)
        source: PoolMember | GatewaySource
        if settings.gateway_url:  # a volunteer node: the pool through the gateway, no Redis
            self._gateway = source = GatewaySource(settings)
            await source.connect()
        else:
            self._redis = await connect_redis(settings)
            source = PoolMember(self._redis, settings, settings.worker_name)
        self.wctx = await open_context(settings, source)
        await outage.call(lambda: source.heartbeat(self.wctx.info))  # type: ignore[union-attr]
        self.loop = WorkerLoop(self.wctx)
        info = self.wctx.info
        log.info("worker %s ready: WebUI %s, %d checkpoints, loaded %s",
                 info.name, info.webui_url, len(info.checkpoints), info.loaded_checkpoint)

    async def run(self) -> None:
        assert self.loop is not None, "start() first"
        self._running = asyncio.current_task()
        await self.loop.run()

    def request_stop(self, grace_s: float | None = None) -> None:
        if self.loop is not None:
            self.loop.request_stop(grace_s)

    async def close(self, grace_s: float = 0.0) -> None:
        """Stop (the running task gets ``grace_s``, then goes back in line), unregister, close everything."""
        if self.loop is not None and not self.loop.stopping:
            self.loop.request_stop(grace_s)
        running = self._running
        if running is not None and running is not asyncio.current_task() and not running.done():
            await asyncio.wait({running}, timeout=grace_s + 15)
        if self.wctx is not None:
            with contextlib.suppress(Exception):
                await self.wctx.source.leave()
            await close_context(self.wctx)
            self.wctx = None
        if self._redis is not None:
            await self._redis.aclose(close_connection_pool=True)
            self._redis = None
        if self._gateway is not None:
            await self._gateway.close()
            self._gateway = None


async def serve(settings: Settings) -> None:
    """Run a worker until SIGINT/SIGTERM (the running task gets ``worker_grace_s`` to finish) or a drain."""
    worker = Worker(settings)
    try:
        await worker.start()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, worker.request_stop)
        await worker.run()
    finally:
        await worker.close(grace_s=0)


def run(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    metrics.start_exporter(settings.metrics_port)
    asyncio.run(serve(settings))
