"""The task function: run one claimed task and decide what happens next (one :class:`Outcome`).

- done: the result is stored (fenced on the lease) and ``finished`` is published.
- WebUI unreachable or stalled: the worker marks itself unhealthy and hands the task back uncounted, so an honest
  outage of one worker costs nothing; a task that has failed its workers' WebUIs ``max_tries`` times (a poison
  task, a WebUI that drops every generation) fails with the backend's message instead of looping forever.
- other 5xx, or a checkpoint this worker lacks: retried with back-off, other workers first, up to ``max_tries``.
- out of memory (after the half-batch retry), 422, malformed answer, running past ``job_timeout_s``: failed at once.
- cancelled: ends as cancelled. A task that keeps stopping its worker (crash, lost connection) fails after
  ``max_tries`` starts.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from common.errors import FailureCode, TaskFailed
from common.queue.models import Claimed
from common.registry import WorkerState
from common.settings import Settings
from common.tasks import TaskResult, TaskSpec
from workers.backends.errors import (
    BackendRejected,
    BackendServerError,
    BackendUnreachable,
    MalformedResponse,
    OutOfMemory,
)
from workers.runner import CheckpointMissing, TaskRunner


@dataclass
class Done:
    result: TaskResult


@dataclass
class Failed:
    error: TaskFailed


@dataclass
class HandBack:
    """Back in line: ``counted`` (the start counts as a try), ``backend_failed`` (our WebUI failed it)."""

    message: str
    defer_s: float = 0.0
    counted: bool = False
    backend_failed: bool = False


Outcome = Done | Failed | HandBack


async def execute(settings: Settings, runner: TaskRunner, claimed: Claimed, spec: TaskSpec) -> Outcome:
    """Run ``spec`` once; never raises for a task's own failure (only for cancellation and bugs)."""
    tries = claimed.meta.tries
    try:
        if tries > settings.max_tries:
            raise TaskFailed(
                f"the task was started {tries - 1} times and its worker stopped each time (crash or lost "
                "connection); giving up", FailureCode.CRASHED,
            )
        try:
            async with asyncio.timeout(settings.job_timeout_s):
                result = await runner.run(spec, cancel_requested=claimed.cancel_requested)
        except TimeoutError:
            await runner.interrupt_quietly()
            raise TaskFailed(f"the task ran longer than {settings.job_timeout_s:g}s (EASEL_JOB_TIMEOUT_S); "
                             "try fewer steps or a smaller size", FailureCode.WEBUI_ERROR) from None
    except BackendUnreachable as exc:  # includes a timeout or a stalled generation
        runner.info.state = WorkerState.UNHEALTHY
        return _backend_failed(settings, claimed, exc)
    except (BackendServerError, CheckpointMissing) as exc:
        return _retry_or_fail(settings, tries, exc)
    except OutOfMemory as exc:
        return Failed(TaskFailed(f"{exc} — try a smaller size or fewer images", FailureCode.OUT_OF_MEMORY))
    except BackendRejected as exc:
        return Failed(TaskFailed(str(exc), FailureCode.REJECTED))
    except MalformedResponse as exc:
        return Failed(TaskFailed(str(exc), FailureCode.MALFORMED_RESPONSE))
    except TaskFailed as exc:
        return Failed(exc)
    result.tries = tries
    return Done(result)


def _backend_failed(settings: Settings, claimed: Claimed, exc: Exception) -> Outcome:
    times = claimed.meta.handbacks + 1
    if times >= settings.max_tries:
        return Failed(TaskFailed(
            f"{exc} (the task failed its worker's WebUI {times} times; giving up)", FailureCode.WEBUI_UNREACHABLE
        ))
    return HandBack(f"{exc}; the task goes back to the queue for another worker", backend_failed=True)


def _retry_or_fail(settings: Settings, tries: int, exc: Exception) -> Outcome:
    """A transient failure: back in line after a back-off, or the final failure once the tries are used up."""
    if tries >= settings.max_tries:
        return Failed(TaskFailed(f"{exc} (gave up after {tries} tries)", FailureCode.WEBUI_ERROR))
    defer = settings.retry_backoff_s * 2 ** (tries - 1)
    return HandBack(f"{exc}; retrying in {defer:.0f}s (try {tries + 1} of {settings.max_tries})",
                    defer_s=defer, counted=True)
