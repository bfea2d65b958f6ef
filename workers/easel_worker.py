"""arq's Worker with the gaps Easel needs closed (../shared/reference/arq-notes.md).

- Pickup: instead of sleeping ``poll_delay`` between polls, the worker waits on a pub/sub wake-up (sent by every
  enqueue) and polls again the moment a task of its own ends; the timed poll remains as a fallback.
- Order: tasks are taken in Easel's fair order with model affinity (:mod:`workers.picking`), not arq's FIFO score.
- Leases: the in-progress key holds this worker's token and expires after ``lease_s`` unless renewed, so a dead
  worker's task is re-run elsewhere within seconds (arq waits job_timeout + 10 s); finishing is fenced on the token,
  so a worker that lost its lease cannot store a second result.
- Control: cancel (interrupt the running task on its WebUI) and drain arrive on a pub/sub channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import signal
from collections import Counter
from typing import Any

from arq.connections import create_pool
from arq.utils import timestamp_ms, to_ms
from arq.worker import Worker

from common.keys import ARQ_IN_PROGRESS_PREFIX, ARQ_JOB_PREFIX, ARQ_RESULT_PREFIX, ARQ_RETRY_PREFIX, Keys
from common.registry import WorkerState
from common.scheduling import TaskMeta
from common.scripts import CANDIDATE_FIELDS, Scripts, text
from common.settings import Settings
from workers.picking import Candidate, choose

log = logging.getLogger(__name__)

CANDIDATES = 200  # how far down the fair order a worker looks for tasks it should run
RETRY_ELSEWHERE_MS = 1000  # how long a worker leaves a task that just failed on it to the others
CLAIM_ATTEMPTS = 5  # choices per poll when other workers keep winning the race for the chosen task


class EaselWorker(Worker):
    """One GPU's worker. ``ctx["easel"]`` (set by ``on_startup``) gives it the WebUI and the worker's state."""

    def __init__(self, *, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.keys = Keys(settings.redis_prefix)
        self.token = f"{settings.worker_name}:{secrets.token_hex(6)}"
        self.in_progress_timeout_s = settings.lease_s  # arq's claim TTL becomes a short, renewed lease
        self.lost_leases: set[str] = set()
        self.draining = False
        self.paused = False
        self._wake = asyncio.Event()
        self._metas: dict[str, TaskMeta] = {}
        self._background: list[asyncio.Task[None]] = []
        self.scripts: Scripts | None = None

    # --- main loop -------------------------------------------------------------------------------------

    async def main(self) -> None:
        if self._pool is None:
            self._pool = await create_pool(
                self.redis_settings, job_deserializer=self.job_deserializer, job_serializer=self.job_serializer,
                default_queue_name=self.queue_name, expires_extra_ms=self.expires_extra_ms,
            )
        self.scripts = Scripts(self.pool)
        self.ctx["redis"] = self.pool
        self.ctx["worker"] = self
        if self.on_startup:
            await self.on_startup(self.ctx)
        self._background = [
            asyncio.create_task(self._listen(), name="control listener"),
            asyncio.create_task(self._renew_leases(), name="lease renewal"),
        ]
        try:
            while not (self.draining and not self.tasks):
                self._wake.clear()
                await self._poll_iteration()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_delay_s)
            log.info("drained: no task left, stopping")
        finally:
            for task in self._background:
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)

    async def _poll_iteration(self) -> None:
        # Claim one task at a time and choose again after a lost race: the winner's claim changes the picture
        # (another worker now holds that checkpoint), so several idle workers do not all switch to the same one.
        for _ in range(CLAIM_ATTEMPTS):
            if not (self.allow_pick_jobs and not self.draining and self.job_counter < self.max_jobs
                    and self._healthy()):
                break
            order = await self._choose()
            if not order or await self._claim(order[0]):
                break
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]
                task.result()  # surface errors of run_job itself

    def _healthy(self) -> bool:
        easel = self.ctx.get("easel")
        return not self.paused and (easel is None or easel.info.state != WorkerState.UNHEALTHY)

    # --- choosing and claiming -------------------------------------------------------------------------

    async def _choose(self) -> list[str]:
        assert self.scripts is not None
        flat = await self.scripts.candidates(
            keys=[self.keys.order, self.keys.meta, self.keys.queue, self.keys.passed, self.keys.avoid],
            args=[CANDIDATES, ARQ_IN_PROGRESS_PREFIX],
        )
        now = timestamp_ms()
        info = self.ctx["easel"].info

        def resolve(query: str | None) -> str | None:
            found = info.find_checkpoint(query) if query else None
            return found.title if found else None

        candidates, self._metas = [], {}
        holders: Counter[str] = Counter()
        for i in range(0, len(flat), CANDIDATE_FIELDS):
            raw_meta, score, running, passed = flat[i + 2], flat[i + 3], int(flat[i + 4]), flat[i + 5]
            avoid = text(flat[i + 6])
            if not raw_meta or not score:
                continue
            meta = TaskMeta.model_validate_json(raw_meta)
            if running:  # claims are atomic, so running tasks say at once which checkpoints are being served
                holders[resolve(meta.checkpoint) or ""] += 1
                continue
            if float(score) > now or (meta.checkpoint is not None and resolve(meta.checkpoint) is None):
                continue  # deferred (retry back-off), or a checkpoint only other workers have
            if avoid == self.settings.worker_name and now - float(score) < RETRY_ELSEWHERE_MS:
                continue  # its last try failed here: give the other workers the first chance
            self._metas[meta.task_id] = meta
            candidates.append(Candidate(meta, int(float(score)), int(passed) if passed else None))
        if not candidates:
            return []
        if {resolve(c.meta.checkpoint) or info.loaded_checkpoint for c in candidates} == {info.loaded_checkpoint}:
            return [c.meta.task_id for c in candidates]  # all suit what is loaded: fair order, no need to ask
        holders.update(await self._idle_elsewhere())
        choice = choose(
            candidates, loaded=info.loaded_checkpoint, resolve=resolve, holders=dict(holders),
            now_ms=now, max_pass_over_ms=self.settings.max_pass_over_s * 1000, affinity=self.settings.affinity,
        )
        if choice.passed_over:
            async with self.pool.pipeline(transaction=False) as pipe:
                for task_id in choice.passed_over:
                    pipe.hsetnx(self.keys.passed, task_id, str(now))
                await pipe.execute()
        return choice.order

    async def _idle_elsewhere(self) -> Counter[str]:
        """Checkpoints loaded on the other idle workers (busy ones are counted by their running tasks)."""
        counts: Counter[str] = Counter()
        for worker in await self.ctx["easel"].registry.live():
            if worker.name != self.settings.worker_name and worker.state == WorkerState.IDLE:
                counts[worker.loaded_checkpoint or ""] += 1
        return counts

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """arq's entry point, kept for completeness: claim the first of ``job_ids`` that is still free."""
        for raw in job_ids:
            if self.job_counter >= self.max_jobs or await self._claim(raw.decode()):
                return

    async def _claim(self, job_id: str) -> bool:
        """Claim ``job_id`` atomically with this worker's lease and start it; False if another worker was first."""
        assert self.scripts is not None
        meta = self._metas.get(job_id)
        await self.sem.acquire()
        now = timestamp_ms()
        claimed = await self.scripts.claim(
            keys=[self.queue_name, ARQ_IN_PROGRESS_PREFIX + job_id, self.keys.vclock],
            args=[job_id, now, self.token, int(self.settings.lease_s * 1000), meta.vstart if meta else 0],
        )
        if not claimed:
            self.sem.release()
            return False
        self.job_counter += 1
        score = await self.pool.zscore(self.queue_name, job_id)
        task = self.loop.create_task(self.run_job(job_id, int(score or now)))
        task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
        self.tasks[job_id] = task
        return True

    async def run_job(self, job_id: str, score: int) -> None:
        try:
            await super().run_job(job_id, score)
        finally:
            self._wake.set()  # look for the next task at once: the GPU should not idle

    # --- fenced finish ---------------------------------------------------------------------------------

    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        expire = 0 if keep_result_forever or result_timeout_s is None else to_ms(result_timeout_s)
        await self._finish(job_id, finish=finish, result=result_data, expire_ms=expire, incr_score=incr_score)

    async def finish_failed_job(self, job_id: str, result_data: bytes | None) -> None:
        expire = 0 if self.keep_result_forever else to_ms(self.keep_result_s)
        await self._finish(job_id, finish=True, result=result_data, expire_ms=expire, incr_score=None)

    async def _finish(
        self, job_id: str, *, finish: bool, result: bytes | None, expire_ms: int | None, incr_score: int | None
    ) -> None:
        assert self.scripts is not None
        keys = self.keys
        stored = await self.scripts.finish(
            keys=[ARQ_IN_PROGRESS_PREFIX + job_id, self.queue_name, ARQ_RESULT_PREFIX + job_id,
                  ARQ_RETRY_PREFIX + job_id, ARQ_JOB_PREFIX + job_id, keys.order, keys.meta, keys.cancel(job_id),
                  keys.passed, keys.avoid],
            args=[self.token, job_id, "1" if finish else "0", result or b"", expire_ms or 0,
                  "" if incr_score is None else incr_score, keys.user_tasks(""), keys.wake],
        )
        if not stored:
            self.lost_leases.add(job_id)
            log.warning("task %s: lease lost (another worker took it over); this run's outcome is discarded", job_id)

    # --- leases and control ----------------------------------------------------------------------------

    async def _renew_leases(self) -> None:
        assert self.scripts is not None
        lease_ms = int(self.settings.lease_s * 1000)
        while True:
            await asyncio.sleep(self.settings.lease_s / 3)
            running = list(self.job_tasks)
            if not running:
                continue
            with contextlib.suppress(Exception):  # Redis unreachable: the lease may lapse, fencing keeps it safe
                await self.scripts.renew(keys=[ARQ_IN_PROGRESS_PREFIX + j for j in running],
                                         args=[self.token, lease_ms])

    async def _listen(self) -> None:
        pubsub = self.pool.pubsub()
        await pubsub.subscribe(self.keys.wake, self.keys.control)
        try:
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is None:
                    continue
                if text(message["channel"]) == self.keys.wake:
                    self._wake.set()
                else:
                    await self._control(json.loads(message["data"]))
        finally:  # bounded: a connection cut mid-read must not hold up the worker's shutdown
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pubsub.aclose(), timeout=2)

    async def _control(self, message: dict[str, Any]) -> None:
        easel = self.ctx.get("easel")
        if "cancel" in message and easel is not None and message["cancel"] in self.job_tasks:
            await easel.runner.cancel(message["cancel"])
        elif message.get("drain") == self.settings.worker_name:
            await self.drain()
        elif message.get("pause") == self.settings.worker_name and easel is not None:
            await self._set_paused(easel, paused=True)
        elif message.get("resume") == self.settings.worker_name and easel is not None:
            await self._set_paused(easel, paused=False)

    async def _set_paused(self, easel: Any, *, paused: bool) -> None:
        """A paused worker finishes its task and takes no new one until resumed (it stays registered)."""
        self.paused = paused
        if paused and easel.info.state == WorkerState.IDLE:
            easel.info.state = WorkerState.PAUSED
        elif not paused and easel.info.state == WorkerState.PAUSED:
            easel.info.state = WorkerState.IDLE
            self._wake.set()
        await easel.registry.heartbeat(easel.info)

    async def close(self) -> None:
        """arq's close, except that a job task cancelled on the way out does not skip the shutdown hook.

        arq gathers its job tasks without ``return_exceptions``: one cancelled task re-raises CancelledError out of
        close(), and on_shutdown (registry entry, WebUI client) never runs.
        """
        if not self._handle_signals:
            self.handle_sig(signal.SIGUSR1)
        if not self._pool:
            return
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        await self.pool.aclose(close_connection_pool=True)
        self._pool = None

    async def drain(self) -> None:
        """Finish the running task, take no more, then stop."""
        self.draining = True
        easel = self.ctx.get("easel")
        if easel is not None:
            easel.info.state = WorkerState.DRAINING
            await easel.registry.heartbeat(easel.info)
        self._wake.set()
