"""Start-up and discovery: open the WebUI client, read what the WebUI offers, build the worker's parts."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from dataclasses import dataclass

from common.registry import CheckpointInfo, WorkerInfo, WorkerState
from common.settings import Settings
from workers.runner import TaskRunner
from workers.source import TaskSource
from workers.webui.client import WebUIClient
from workers.webui.errors import WebUIError

log = logging.getLogger(__name__)


@dataclass
class WorkerContext:
    """Everything a task needs, opened by :func:`open_context` and closed by :func:`close_context`."""

    settings: Settings
    source: TaskSource
    webui: WebUIClient
    info: WorkerInfo
    runner: TaskRunner


async def discover(webui: WebUIClient, info: WorkerInfo) -> None:
    """Fill ``info`` with what the WebUI offers (models, samplers, schedulers, upscalers, LoRAs)."""
    models = await webui.sd_models()
    info.checkpoints = [
        CheckpointInfo(title=m.title, model_name=m.model_name, hash=m.hash, filename=m.filename) for m in models
    ]
    info.samplers = sorted({name for s in await webui.samplers() for name in (s.name, *s.aliases)})
    with contextlib.suppress(WebUIError):  # /schedulers exists from A1111 1.9 on
        info.schedulers = sorted(
            {name for s in await webui.schedulers() for name in (s.name, s.label, *(s.aliases or [])) if name}
        )
    upscalers = {u.name for u in await webui.upscalers()}
    with contextlib.suppress(WebUIError):
        upscalers |= {m.name for m in await webui.latent_upscale_modes()}
    info.upscalers = sorted(upscalers)
    with contextlib.suppress(WebUIError):  # the Lora extension may be disabled
        info.loras = sorted({name for lora in await webui.loras() for name in (lora.name, lora.alias) if name})
    current = await webui.current_checkpoint()
    match = next((c for c in info.checkpoints if current and c.matches(current)), None)
    info.loaded_checkpoint = match.title if match else current


async def open_context(settings: Settings, source: TaskSource) -> WorkerContext:
    webui = WebUIClient(
        settings.require_webui_url(),
        auth=settings.webui_auth(),
        connect_timeout=settings.webui_connect_timeout_s,
        read_timeout=settings.webui_read_timeout_s,
    )
    info = WorkerInfo(name=source.name, node=socket.gethostname(), webui_url=webui.base_url,
                      started_ms=int(time.time() * 1000))
    try:
        await discover(webui, info)
        info.state = WorkerState.IDLE
    except WebUIError as exc:  # start anyway: the health check brings it in once the WebUI answers
        log.warning("the WebUI at %s does not answer yet (%s)", webui.base_url, exc)
        info.state = WorkerState.UNHEALTHY

    async def beat() -> None:  # state changes (busy, switching) are published at once, not at the next beat
        await source.heartbeat(info)

    runner = TaskRunner(webui, source, info, progress_interval_s=settings.progress_interval_s,
                        stall_s=settings.stall_s, on_state=beat)
    return WorkerContext(settings, source, webui, info, runner)


async def close_context(wctx: WorkerContext) -> None:
    await wctx.webui.aclose()
