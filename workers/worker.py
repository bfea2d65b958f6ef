"""The GPU worker: an :class:`~workers.easel_worker.EaselWorker` running one task at a time against one WebUI.

``easel worker`` calls :func:`run`. The arq function :func:`run_task` stays thin: parse the payload, let the
:class:`~workers.runner.TaskRunner` do the work, and map failures onto what happens next:

- WebUI unreachable: the worker marks itself unhealthy and puts the task back (not counted as a try); another
  worker, or this one once its WebUI answers again, runs it.
- other 5xx: retried with back-off, on any worker, up to ``max_tries``; then failed with the backend's message.
- out of memory (after the half-batch retry), 422, malformed answer: failed at once with the backend's message.
- cancelled: ends as cancelled. A task that keeps stopping its worker (crash, lost connection) fails after
  ``max_tries`` starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from arq import Retry
from arq.worker import func

from common import serialization
from common.connection import redis_settings
from common.errors import FailureCode, TaskFailed
from common.events import EventStream, EventType, TaskEvent
from common.keys import ARQ_RETRY_PREFIX, TASK_FUNCTION, Keys
from common.registry import CheckpointInfo, Registry, WorkerInfo, WorkerState
from common.settings import Settings
from common.tasks import TaskSpec
from workers.easel_worker import EaselWorker
from workers.runner import CheckpointMissing, TaskRunner
from workers.webui.client import WebUIClient
from workers.webui.errors import (
    BackendRejected,
    BackendServerError,
    BackendUnreachable,
    MalformedResponse,
    OutOfMemory,
    WebUIError,
)

log = logging.getLogger(__name__)


@dataclass
class WorkerContext:
    """Everything a task needs, opened in :func:`startup` and closed in :func:`shutdown`."""

    settings: Settings
    webui: WebUIClient
    events: EventStream
    registry: Registry
    info: WorkerInfo
    runner: TaskRunner
    heartbeat: asyncio.Task[None] | None = None


def context(ctx: dict[str, Any]) -> WorkerContext:
    """Typed access to the worker's resources in arq's ``ctx``."""
    value = ctx["easel"]
    assert isinstance(value, WorkerContext)
    return value


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


async def check_health(wctx: WorkerContext) -> None:
    """Between tasks: is the WebUI answering? Unhealthy workers take no tasks; recovered ones re-read the WebUI."""
    info = wctx.info
    if info.state in (WorkerState.BUSY, WorkerState.SWITCHING, WorkerState.PAUSED):
        return
    try:
        await wctx.webui.progress(skip_current_image=True)
        if info.state == WorkerState.UNHEALTHY:
            await discover(wctx.webui, info)
            info.state = WorkerState.IDLE
            log.warning("the WebUI at %s answers again: taking tasks", info.webui_url)
    except WebUIError as exc:
        if info.state != WorkerState.UNHEALTHY:
            log.warning("the WebUI at %s is unreachable (%s): taking no tasks until it is back", info.webui_url, exc)
        if info.state != WorkerState.DRAINING:
            info.state = WorkerState.UNHEALTHY


async def _heartbeat_loop(wctx: WorkerContext) -> None:
    while True:
        try:
            await check_health(wctx)
            await wctx.registry.heartbeat(wctx.info)
        except Exception:  # a Redis blip must not kill the heartbeat; the next beat retries
            log.exception("heartbeat failed")
        await asyncio.sleep(wctx.settings.heartbeat_s)


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    keys = Keys(settings.redis_prefix)
    webui = WebUIClient(
        settings.require_webui_url(),
        auth=settings.webui_auth(),
        connect_timeout=settings.webui_connect_timeout_s,
        read_timeout=settings.webui_read_timeout_s,
    )
    info = WorkerInfo(
        name=settings.worker_name, node=socket.gethostname(), webui_url=webui.base_url,
        started_ms=int(time.time() * 1000),
    )
    try:
        await discover(webui, info)
        info.state = WorkerState.IDLE
    except WebUIError as exc:  # start anyway: the health check brings it in once the WebUI answers
        log.warning("the WebUI at %s does not answer yet (%s)", webui.base_url, exc)
        info.state = WorkerState.UNHEALTHY
    registry = Registry(ctx["redis"], keys, ttl_s=settings.worker_ttl_s)
    events = EventStream(ctx["redis"], keys, maxlen=settings.events_maxlen)

    async def beat() -> None:  # state changes (busy, switching) are published at once, not at the next beat
        await registry.heartbeat(info)

    runner = TaskRunner(webui, ctx["redis"], keys, info, progress_interval_s=settings.progress_interval_s,
                        on_state=beat, events_maxlen=settings.events_maxlen)
    wctx = WorkerContext(settings, webui, events, registry, info, runner)
    await registry.heartbeat(info)
    wctx.heartbeat = asyncio.create_task(_heartbeat_loop(wctx), name="heartbeat")
    ctx["easel"] = wctx
    log.info("worker %s ready: WebUI %s, %d checkpoints, loaded %s",
             info.name, webui.base_url, len(info.checkpoints), info.loaded_checkpoint)


async def shutdown(ctx: dict[str, Any]) -> None:
    wctx = ctx.get("easel")
    if not isinstance(wctx, WorkerContext):
        return
    if wctx.heartbeat is not None:
        wctx.heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await wctx.heartbeat
    with contextlib.suppress(Exception):
        await wctx.registry.remove(wctx.info.name)
    await wctx.webui.aclose()


_OUTCOME = "easel_outcome"  # ctx key: the terminal event, published by after_job_end once arq stored the result


async def run_task(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """arq entry point: one task, JSON in, JSON out."""
    wctx = context(ctx)
    spec = TaskSpec.model_validate(payload, context={"limits": None})
    job_try = int(ctx["job_try"])
    try:
        if job_try > wctx.settings.max_tries:
            raise TaskFailed(
                f"the task was started {job_try - 1} times and its worker stopped each time (crash or lost "
                "connection); giving up", FailureCode.CRASHED,
            )
        result = await wctx.runner.run(spec)
    except BackendUnreachable as exc:
        raise await _give_back(ctx, spec, exc) from exc
    except (BackendServerError, CheckpointMissing) as exc:
        raise await _retry_or_fail(ctx, spec, exc) from exc
    except OutOfMemory as exc:
        raise _fail(ctx, spec, f"{exc} — try a smaller size or fewer images", FailureCode.OUT_OF_MEMORY) from exc
    except BackendRejected as exc:
        raise _fail(ctx, spec, str(exc), FailureCode.REJECTED) from exc
    except MalformedResponse as exc:
        raise _fail(ctx, spec, str(exc), FailureCode.MALFORMED_RESPONSE) from exc
    except TaskFailed as exc:
        raise _fail(ctx, spec, str(exc), exc.code) from exc
    except asyncio.CancelledError:  # shutdown past the grace period (or a lost lease): the task goes back
        await asyncio.shield(_abandon(ctx, spec))
        raise
    finally:
        if wctx.info.state not in (WorkerState.DRAINING, WorkerState.UNHEALTHY):
            wctx.info.state = WorkerState.PAUSED if ctx["worker"].paused else WorkerState.IDLE
        wctx.info.current_task = wctx.info.task_started_ms = None
        with contextlib.suppress(Exception):  # other workers' affinity choices read who is idle
            await wctx.registry.heartbeat(wctx.info)
    ctx[_OUTCOME] = TaskEvent(type=EventType.FINISHED, task_id=spec.task_id, job_id=spec.job_id,
                              worker=wctx.info.name)
    result.tries = job_try
    return result.model_dump(mode="json")


async def after_job_end(ctx: dict[str, Any]) -> None:
    """Publish the task's terminal event now that arq has stored its result — unless another worker owns it now."""
    event = ctx.pop(_OUTCOME, None)
    if isinstance(event, TaskEvent) and event.task_id not in ctx["worker"].lost_leases:
        await context(ctx).events.publish(event)
    ctx["worker"].lost_leases.discard(ctx.get("job_id"))


async def _uncount_try(ctx: dict[str, Any], task_id: str) -> None:
    """This start was not the task's fault (our WebUI went away, or we are shutting down)."""
    await ctx["redis"].decr(ARQ_RETRY_PREFIX + task_id)


async def _abandon(ctx: dict[str, Any], spec: TaskSpec) -> None:
    wctx = context(ctx)
    await wctx.runner.interrupt_quietly()
    with contextlib.suppress(Exception):
        await _uncount_try(ctx, spec.task_id)


async def _give_back(ctx: dict[str, Any], spec: TaskSpec, exc: Exception) -> Exception:
    wctx = context(ctx)
    wctx.info.state = WorkerState.UNHEALTHY
    await wctx.registry.heartbeat(wctx.info)
    await _uncount_try(ctx, spec.task_id)
    await wctx.events.publish(TaskEvent(
        type=EventType.RETRYING, task_id=spec.task_id, job_id=spec.job_id, worker=wctx.info.name,
        message=f"{exc}; the task goes back to the queue for another worker",
    ))
    return Retry(defer=0)


async def _retry_or_fail(ctx: dict[str, Any], spec: TaskSpec, exc: Exception) -> Exception:
    """A transient failure: arq's Retry with back-off, or the final failure once the tries are used up."""
    wctx, job_try = context(ctx), int(ctx["job_try"])
    settings = wctx.settings
    if job_try >= settings.max_tries:
        return _fail(ctx, spec, f"{exc} (gave up after {job_try} tries)", FailureCode.WEBUI_ERROR)
    defer = settings.retry_backoff_s * 2 ** (job_try - 1)
    await ctx["redis"].hset(Keys(settings.redis_prefix).avoid, spec.task_id, wctx.info.name)
    await wctx.events.publish(TaskEvent(
        type=EventType.RETRYING, task_id=spec.task_id, job_id=spec.job_id, worker=wctx.info.name,
        message=f"{exc}; retrying in {defer:.0f}s (try {job_try + 1} of {settings.max_tries})",
    ))
    return Retry(defer=defer)


def _fail(ctx: dict[str, Any], spec: TaskSpec, message: str, code: FailureCode) -> TaskFailed:
    """The exception to raise (arq stores it as the result); its event goes out in :func:`after_job_end`."""
    event_type = EventType.CANCELLED if code == FailureCode.CANCELLED else EventType.FAILED
    ctx[_OUTCOME] = TaskEvent(type=event_type, task_id=spec.task_id, job_id=spec.job_id,
                              worker=context(ctx).info.name, message=message, code=code.value)
    return TaskFailed(message, code)


class WorkerSettings:
    """arq settings that do not depend on the deployment; :func:`worker_settings` adds the rest."""

    functions: ClassVar[list[Any]] = [func(run_task, name=TASK_FUNCTION)]
    on_startup = startup
    on_shutdown = shutdown
    after_job_end = after_job_end
    max_jobs = 1  # one GPU does one thing at a time
    job_serializer = staticmethod(serialization.serialize)
    job_deserializer = staticmethod(serialization.deserialize)
    allow_abort_jobs = False  # Easel cancels through its own control channel (arq's abort ids go stale)
    health_check_interval = 3600  # Easel's own registry replaces arq's shared health-check key


def worker_settings(settings: Settings) -> dict[str, Any]:
    """Everything :class:`EaselWorker` needs for this deployment."""
    base = {k: v for k, v in vars(WorkerSettings).items() if not k.startswith("_")}
    return {
        **base,
        "redis_settings": redis_settings(settings),
        "queue_name": Keys(settings.redis_prefix).queue,
        "poll_delay": settings.worker_poll_s,
        "job_timeout": settings.job_timeout_s,
        "keep_result": settings.result_ttl_s,
        "max_tries": settings.max_tries + 1,  # Easel decides when to give up; arq's cap is only a backstop
        "job_completion_wait": settings.worker_grace_s,
        "ctx": {"settings": settings},
    }


def build_worker(settings: Settings, **overrides: Any) -> EaselWorker:
    settings.require_webui_url()  # fail at start-up, not on the first task
    return EaselWorker(settings=settings, **{**worker_settings(settings), **overrides})


async def serve(settings: Settings) -> None:
    """Run a worker until SIGINT/SIGTERM (the running task gets ``worker_grace_s`` to finish) or a drain."""
    worker = build_worker(settings)
    try:
        await worker.async_run()
    except asyncio.CancelledError:
        pass
    finally:
        await worker.close()


def run(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(settings))
