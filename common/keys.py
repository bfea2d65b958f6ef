"""Every Redis key and queue name Easel uses, under one configurable prefix.

arq keeps its own per-job keys (``arq:job:<id>``, ``arq:result:<id>``, ``arq:in-progress:<id>``); Easel's task ids
are unique (``<job id>.<index>``, random job ids), so deployments sharing a server never collide on them, and the
queue itself is prefixed here.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "easel:"

# arq's fixed prefixes (arq/constants.py), named here so Easel code never spells them inline.
ARQ_JOB_PREFIX = "arq:job:"
ARQ_RESULT_PREFIX = "arq:result:"
ARQ_IN_PROGRESS_PREFIX = "arq:in-progress:"
ARQ_RETRY_PREFIX = "arq:retry:"

TASK_FUNCTION = "run_task"
"""The one arq function every worker registers."""


@dataclass(frozen=True)
class Keys:
    """Key names for one deployment (one prefix)."""

    prefix: str = DEFAULT_PREFIX

    @property
    def queue(self) -> str:
        """arq's sorted set of queued and running tasks."""
        return f"{self.prefix}queue"

    @property
    def events(self) -> str:
        """Redis Stream of task events (queued, started, progress, finished, failed)."""
        return f"{self.prefix}events"

    @property
    def workers(self) -> str:
        """Sorted set of worker names scored by their last heartbeat (ms)."""
        return f"{self.prefix}workers"

    def worker(self, name: str) -> str:
        """JSON of one worker's registry entry."""
        return f"{self.prefix}worker:{name}"

    def job(self, job_id: str) -> str:
        """JSON of a submitted job (owner, origin, task ids), for status look-ups by any front end."""
        return f"{self.prefix}job:{job_id}"

    # --- scheduling (see common/scheduling.py) ---

    @property
    def order(self) -> str:
        """Sorted set: every queued or running task by its fair key (lower runs first)."""
        return f"{self.prefix}order"

    @property
    def meta(self) -> str:
        """Hash: task id -> JSON TaskMeta (owner, checkpoint, cost...), read by pickers and ETA estimates."""
        return f"{self.prefix}meta"

    @property
    def vclock(self) -> str:
        """The queue's virtual clock: the virtual start of the latest task to start."""
        return f"{self.prefix}vclock"

    @property
    def user_clocks(self) -> str:
        """Hash: owner -> virtual finish of that owner's last queued task."""
        return f"{self.prefix}user-clock"

    def user_tasks(self, owner: str) -> str:
        """Set of an owner's queued or running task ids (the per-user limit counts it)."""
        return f"{self.prefix}user-tasks:{owner}"

    def cancel(self, task_id: str) -> str:
        """Flag: cancel this running task (read by its worker; the pub/sub message is only a shortcut)."""
        return f"{self.prefix}cancel:{task_id}"

    @property
    def passed(self) -> str:
        """Hash: task id -> when a worker first passed over it for another checkpoint's task (ms)."""
        return f"{self.prefix}passed"

    @property
    def avoid(self) -> str:
        """Hash: task id -> the worker its last try failed on (others get the first chance at the retry)."""
        return f"{self.prefix}avoid"

    @property
    def speeds(self) -> str:
        """Hash of moving averages of task speed (per worker, per checkpoint, load times)."""
        return f"{self.prefix}speeds"

    @property
    def wake(self) -> str:
        """Pub/sub channel: a task became runnable; idle workers look at the queue now."""
        return f"{self.prefix}wake"

    @property
    def control(self) -> str:
        """Pub/sub channel: JSON control messages to workers (cancel a task, drain a worker)."""
        return f"{self.prefix}control"
