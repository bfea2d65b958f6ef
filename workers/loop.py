"""The worker's loop: claim the next task, run it, settle it; keep its lease; obey control messages.

One task at a time (one GPU). An idle worker waits for a wake-up on its inbox (an enqueue wakes one idle worker per
task) and polls every ``worker_poll_s`` as a fallback; a worker that just finished claims again at once. Every Redis
step rides out an outage (:class:`~common.outage.Outage`): the running generation goes on, its lease is renewed
(or taken back) when Redis answers again, and its outcome is stored then, fenced on the lease token.

Stopping: :meth:`WorkerLoop.request_stop` (SIGTERM/SIGINT) takes no new task and gives the running one
``worker_grace_s`` to finish; after that it is interrupted and handed back, uncounted. A drain message does the same
without a deadline; pause stops taking tasks until resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable

from common import metrics
from common.errors import FailureCode, QueueUnreachable, TaskFailed
from common.events import EventType, TaskEvent
from common.outage import Outage, bounded, is_outage
from common.queue import messages
from common.queue.models import Claimed
from common.registry import WorkerState
from common.settings import Settings
from workers.health import heartbeat_loop
from workers.source import TaskSource
from workers.startup import WorkerContext
from workers.task import Done, Failed, HandBack, Outcome, execute

log = logging.getLogger(__name__)


class WorkerLoop:
    def __init__(self, wctx: WorkerContext) -> None:
        self.wctx = wctx
        self.settings: Settings = wctx.settings
        self.source: TaskSource = wctx.source
        self.outage = Outage(f"worker {wctx.info.name}", limit_s=self.settings.redis_outage_s, logger=log)
        self.draining = False
        self.paused = False
        self.stopping = False
        self._wake = asyncio.Event()
        self._current: tuple[Claimed, asyncio.Task[None]] | None = None
        self._lease_lost = False
        self._after: set[asyncio.Task[object]] = set()  # Redis work that need not hold up the next claim
        self.duty = metrics.DutyClock(wctx.info.name)

    # --- main loop -------------------------------------------------------------------------------------

    async def run(self) -> None:
        background = [
            asyncio.create_task(self._listen(), name="inbox"),
            asyncio.create_task(self._renew_leases(), name="lease renewal"),
            asyncio.create_task(heartbeat_loop(self.wctx, self.outage), name="heartbeat"),
        ]
        try:
            while not self.stopping and not self.draining:
                self._wake.clear()
                self.duty.tick()
                if self._can_take():
                    claimed = await self.outage.call(lambda: self.source.claim(self.wctx.info))
                    if claimed is not None:
                        await self._run(claimed)
                        continue  # look for the next task at once: the GPU should not idle
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.worker_poll_s):
                        await self._wake.wait()
            if self.draining:
                log.info("drained: no task left, stopping")
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            if self._after:  # the last events and heartbeat go out before the worker leaves
                await asyncio.wait(self._after, timeout=5)

    def _later(self, work: Awaitable[object]) -> None:
        task = asyncio.ensure_future(work)
        self._after.add(task)
        task.add_done_callback(self._done_later)

    def _done_later(self, task: asyncio.Future[object]) -> None:
        self._after.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("an event or heartbeat could not be sent: %s", task.exception())

    def _can_take(self) -> bool:
        return not self.paused and self.wctx.info.state != WorkerState.UNHEALTHY

    def request_stop(self, grace_s: float | None = None) -> None:
        """Take no new task; the running one may finish within ``grace_s`` (default ``worker_grace_s``)."""
        self.stopping = True
        self._wake.set()
        if self._current is not None:
            grace = self.settings.worker_grace_s if grace_s is None else grace_s
            task = self._current[1]
            asyncio.get_running_loop().call_later(grace, lambda: task.done() or task.cancel())

    # --- one task --------------------------------------------------------------------------------------

    async def _run(self, claimed: Claimed) -> None:
        self._lease_lost = False
        self.duty.busy()
        task = asyncio.create_task(self._execute(claimed), name=f"task {claimed.task_id}")
        self._current = (claimed, task)
        try:
            await asyncio.wait({task})  # not `await task`: a cancelled task must not cancel the loop
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        finally:
            self.duty.idle()
            self._current = None
            info = self.wctx.info
            if info.state not in (WorkerState.DRAINING, WorkerState.UNHEALTHY):
                info.state = WorkerState.PAUSED if self.paused else WorkerState.IDLE
            info.current_task = info.task_started_ms = None
            self._later(self._quietly(self.source.heartbeat(info)))

    async def _execute(self, claimed: Claimed) -> None:
        try:
            try:
                spec = await self.outage.call(lambda: self.source.spec(claimed))
            except TaskFailed as exc:
                outcome: Outcome = Failed(exc)
            else:
                outcome = await execute(self.settings, self.wctx.runner, claimed, spec)
        except (asyncio.CancelledError, QueueUnreachable):  # stopping past the grace period, or the lease is lost
            await asyncio.shield(self._abandon(claimed))
            raise
        except Exception as exc:  # a bug, not the task's fault: fail it once rather than crash-loop the pool
            log.exception("task %s: internal error", claimed.task_id)
            outcome = Failed(TaskFailed(f"internal error in the worker: {type(exc).__name__}: {exc}",
                                        FailureCode.INTERNAL))
        await self._settle(claimed, outcome)

    async def _abandon(self, claimed: Claimed) -> None:
        await self.wctx.runner.interrupt_quietly()
        if self._lease_lost:
            return  # another worker runs it now
        with contextlib.suppress(Exception):
            await self.source.hand_back(claimed.task_id, counted=False)
            log.info("task %s handed back (the worker is stopping)", claimed.task_id)

    async def _settle(self, claimed: Claimed, outcome: Outcome) -> None:
        """Store the outcome (fenced), then tell the front ends."""
        meta, name = claimed.meta, self.wctx.info.name
        if isinstance(outcome, HandBack):
            if outcome.backend_failed:
                await self._quietly(self.source.heartbeat(self.wctx.info))  # unhealthy: others take it
            await self.outage.call(lambda: self.source.hand_back(
                claimed.task_id, defer_s=outcome.defer_s, counted=outcome.counted,
                backend_failed=outcome.backend_failed, avoid=True,
            ))
            event = TaskEvent(type=EventType.RETRYING, task_id=meta.task_id, job_id=meta.job_id, worker=name,
                              message=outcome.message)
        else:
            value = outcome.result if isinstance(outcome, Done) else outcome.error
            if not await self.outage.call(lambda: self.source.finish(claimed, value)):
                log.warning("task %s: lease lost (another worker took it over); this run's outcome is discarded",
                            claimed.task_id)
                return
            event = _terminal_event(claimed, name, outcome)
            if isinstance(outcome, Done):
                metrics.observe_result(outcome.result)
            else:
                metrics.observe_failure(outcome.error.code.value)
        self._later(self.outage.call(lambda: self.source.publish(event)))  # after the result: never before it

    # --- leases and control ----------------------------------------------------------------------------

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lease_s / 3)
            current = self._current
            if current is None:
                continue
            claimed, task = current
            try:
                lost = await bounded(self.source.renew([claimed.task_id], self.wctx.info))
                self.outage.succeeded()
            except Exception as exc:
                if not is_outage(exc):
                    log.exception("lease renewal failed")
                with contextlib.suppress(QueueUnreachable):  # the main loop decides when to give up
                    self.outage.failed(exc)
                continue
            if lost and not task.done():
                log.warning("task %s: lease lost (another worker runs it now); stopping this run", claimed.task_id)
                self._lease_lost = True
                task.cancel()

    async def _listen(self) -> None:
        async for message in self.source.messages():
            await self._obey(message)

    async def _obey(self, message: messages.ControlMessage) -> None:
        info = self.wctx.info
        if isinstance(message, messages.Wake | messages.LanesChanged):
            self._wake.set()
        elif isinstance(message, messages.CancelTask):
            if self._current is not None and self._current[0].task_id == message.task_id:
                await self.wctx.runner.cancel(message.task_id)
        elif isinstance(message, messages.Drain):
            self.draining = True
            info.state = WorkerState.DRAINING
            await self._quietly(self.source.heartbeat(info))
            self._wake.set()
        elif isinstance(message, messages.Pause | messages.Resume):
            await self._set_paused(paused=isinstance(message, messages.Pause))

    async def _set_paused(self, *, paused: bool) -> None:
        """A paused worker finishes its task and takes no new one until resumed (it stays registered)."""
        info = self.wctx.info
        self.paused = paused
        if paused and info.state == WorkerState.IDLE:
            info.state = WorkerState.PAUSED
        elif not paused and info.state == WorkerState.PAUSED:
            info.state = WorkerState.IDLE
            self._wake.set()
        await self._quietly(self.source.heartbeat(info))

    async def _quietly(self, work: Awaitable[object]) -> None:
        try:
            await bounded(work)
        except Exception as exc:
            if not is_outage(exc):
                raise
            with contextlib.suppress(QueueUnreachable):
                self.outage.failed(exc)


def _terminal_event(claimed: Claimed, worker: str, outcome: Done | Failed) -> TaskEvent:
    meta = claimed.meta
    if isinstance(outcome, Done):
        return TaskEvent(type=EventType.FINISHED, task_id=meta.task_id, job_id=meta.job_id, worker=worker)
    error = outcome.error
    kind = EventType.CANCELLED if error.code == FailureCode.CANCELLED else EventType.FAILED
    return TaskEvent(type=kind, task_id=meta.task_id, job_id=meta.job_id, worker=worker, message=str(error),
                     code=error.code.value)
