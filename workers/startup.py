"""Start-up and discovery: open the backend (detected or forced), read what its server offers, build the parts."""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass

from common.registry import WorkerInfo, WorkerState
from common.settings import Settings
from workers.backends.detect import DetectingBackend
from workers.backends.errors import BackendError
from workers.backends.http import Connection
from workers.runner import TaskRunner
from workers.source import TaskSource

log = logging.getLogger(__name__)


@dataclass
class WorkerContext:
    """Everything a task needs, opened by :func:`open_context` and closed by :func:`close_context`."""

    settings: Settings
    source: TaskSource
    backend: DetectingBackend
    info: WorkerInfo
    runner: TaskRunner


async def discover(backend: DetectingBackend, info: WorkerInfo) -> None:
    """Fill ``info`` with what the server offers (kind, flavour, models, samplers, node classes...)."""
    caps = await backend.discover()
    caps.apply_to(info)


def connection_of(settings: Settings) -> Connection:
    return Connection(auth=settings.webui_auth(), connect_timeout=settings.webui_connect_timeout_s,
                      read_timeout=settings.webui_read_timeout_s)


async def open_context(settings: Settings, source: TaskSource) -> WorkerContext:
    backend = DetectingBackend(settings.require_webui_url(), settings.backend, connection=connection_of(settings),
                               progress_interval_s=settings.progress_interval_s)
    info = WorkerInfo(name=source.name, node=socket.gethostname(), webui_url=backend.base_url,
                      started_ms=int(time.time() * 1000))
    try:
        await discover(backend, info)
        info.state = WorkerState.IDLE
    except BackendError as exc:  # start anyway: the health check brings it in once the server answers
        log.warning("the server at %s cannot be used yet (%s); retrying at each health check", backend.base_url, exc)
        info.state = WorkerState.UNHEALTHY

    async def beat() -> None:  # state changes (busy, switching) are published at once, not at the next beat
        await source.heartbeat(info)

    runner = TaskRunner(backend, source, info, progress_interval_s=settings.progress_interval_s,
                        stall_s=settings.stall_s, on_state=beat)
    return WorkerContext(settings, source, backend, info, runner)


async def close_context(wctx: WorkerContext) -> None:
    await wctx.backend.aclose()
