"""Health: between tasks, is the backend's server answering? An unhealthy worker takes no task; a recovered one
re-reads what its server offers. The registry heartbeat carries the result to front ends and to the other workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from common.errors import QueueUnreachable
from common.outage import Outage, bounded, is_outage
from common.registry import WorkerState
from workers.backends.errors import BackendError
from workers.startup import WorkerContext, discover

log = logging.getLogger(__name__)


async def check_health(wctx: WorkerContext) -> None:
    info = wctx.info
    if info.state in (WorkerState.BUSY, WorkerState.SWITCHING, WorkerState.PAUSED):
        return
    try:
        await wctx.backend.health()
        if info.state == WorkerState.UNHEALTHY:
            await discover(wctx.backend, info)
            info.state = WorkerState.IDLE
            log.warning("the server at %s answers again: taking tasks", info.webui_url)
    except BackendError as exc:
        if info.state != WorkerState.UNHEALTHY:
            log.warning("the server at %s is unreachable (%s): taking no tasks until it is back", info.webui_url, exc)
        if info.state != WorkerState.DRAINING:
            info.state = WorkerState.UNHEALTHY


async def heartbeat_loop(wctx: WorkerContext, outage: Outage) -> None:
    """Check health and refresh the registry entry every ``heartbeat_s``, through Redis outages."""
    while True:
        await check_health(wctx)
        try:
            await bounded(wctx.source.heartbeat(wctx.info))
            outage.succeeded()
        except Exception as exc:
            if is_outage(exc):
                with contextlib.suppress(QueueUnreachable):  # the main loop decides when to give up
                    outage.failed(exc)
            else:
                log.exception("heartbeat failed")
        await asyncio.sleep(wctx.settings.heartbeat_s)
