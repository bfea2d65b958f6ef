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
