"""Every Redis key and channel name of the queue, under one configurable prefix.

arq keeps its own per-task keys (``arq:job:<id>``, ``arq:result:<id>``, ``arq:in-progress:<id>``); Easel's task
ids are unique (``<job id>.<index>``, random job ids), so deployments sharing a server never collide on them.
Everything else lives under the deployment's prefix. The Lua scripts build the same names from the prefix (see
``lua/common.lua``); this module is the one place they are written down.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "easel:"

# arq's fixed prefixes (arq/constants.py), named here so Easel code never spells them inline.
ARQ_JOB_PREFIX = "arq:job:"
ARQ_RESULT_PREFIX = "arq:result:"
ARQ_IN_PROGRESS_PREFIX = "arq:in-progress:"

TASK_FUNCTION = "run_task"
"""The function name written into arq's job payload (arq's format requires one)."""


@dataclass(frozen=True)
class Keys:
    """Key names for one deployment (one prefix)."""

    prefix: str = DEFAULT_PREFIX

    # --- the waiting-task index (see common/queue/__init__.py) ---

    @property
    def waiting(self) -> str:
        """Sorted set: every waiting task (due or deferred) by fair key; a task's ZRANK + 1 is its place in line."""
        return f"{self.prefix}waiting"

    def lane(self, lane: str) -> str:
        """Sorted set: the due waiting tasks of one lane (tasks with the same requirements), by fair key."""
        return f"{self.prefix}lane:{lane}"

    @property
    def lanes(self) -> str:
        """Hash: lane -> JSON Requirements; workers read it to know which lanes they can serve."""
        return f"{self.prefix}lanes"

    @property
    def lanes_version(self) -> str:
        """Counter bumped whenever a new lane appears (workers re-read ``lanes`` when it changes)."""
        return f"{self.prefix}lanes-version"

    @property
    def lane_stats(self) -> str:
        """Hash: ``<lane>:n`` tasks in the lane and ``<lane>:t`` the sum of their enqueue times (affinity demand)."""
        return f"{self.prefix}lane-stats"

    @property
    def delayed(self) -> str:
        """Sorted set: tasks deferred by a retry back-off, by due time (ms); moved into their lane when due."""
        return f"{self.prefix}delayed"

    @property
    def running(self) -> str:
        """Sorted set: running tasks by lease expiry (ms); an expired lease puts its task back in line."""
        return f"{self.prefix}running"

    @property
    def meta(self) -> str:
        """Hash: task id -> JSON TaskMeta (owner, lane, fair key, tries...) of every waiting or running task."""
        return f"{self.prefix}meta"

    def idle(self, lane: str, *, warm: bool) -> str:
        """Sorted set: idle workers able to serve ``lane`` (``warm``: with its checkpoint loaded), by last poll."""
        return f"{self.prefix}{'idle-warm' if warm else 'idle'}:{lane}"

    @property
    def idle_lanes(self) -> str:
        """Hash: idle worker -> JSON of the idle sets it is in (so a wake-up removes it from all of them)."""
        return f"{self.prefix}idle-lanes"

    def warm(self, lane: str) -> str:
        """Sorted set: workers with ``lane``'s checkpoint loaded, by last sign of life (affinity's holders)."""
        return f"{self.prefix}warm:{lane}"

    # --- fairness ---

    @property
    def vclock(self) -> str:
        """The queue's virtual clock: the virtual start of the latest task to start."""
        return f"{self.prefix}vclock"

    @property
    def user_clocks(self) -> str:
        """Hash: owner -> virtual finish of that owner's last queued task."""
        return f"{self.prefix}user-clock"

    def user_tasks(self, owner: str) -> str:
        """Set of an owner's waiting or running task ids (the per-user limit counts it)."""
        return f"{self.prefix}user-tasks:{owner}"

    @property
    def passed(self) -> str:
        """Hash: task id -> when a worker first passed over it for another lane's task (ms)."""
        return f"{self.prefix}passed"

    @property
    def avoid(self) -> str:
        """Hash: task id -> ``<worker>|<until ms>``: its last try failed there; others get the first chance."""
        return f"{self.prefix}avoid"

    @property
    def speeds(self) -> str:
        """Hash of moving averages of task speed (per worker, per checkpoint, load times)."""
        return f"{self.prefix}speeds"

    # --- tasks, jobs, blobs ---

    def cancel(self, task_id: str) -> str:
        """Flag: cancel this running task (read by its worker; the control message is only a shortcut)."""
        return f"{self.prefix}cancel:{task_id}"

    def job(self, job_id: str) -> str:
        """JSON of a submitted job (owner, origin, task ids), for status look-ups by any front end."""
        return f"{self.prefix}job:{job_id}"

    def blob(self, digest: str) -> str:
        """An input (init image, image to upscale) stored once by its sha256, referenced by every task using it."""
        return f"{self.prefix}blob:{digest}"

    def preview(self, task_id: str) -> str:
        """The latest progress preview (JPEG) of a running task; short-lived, never in the durable stream."""
        return f"{self.prefix}preview:{task_id}"

    @property
    def workflows(self) -> str:
        """Hash: workflow name -> JSON of an admin's registered ComfyUI workflow (common.workflows)."""
        return f"{self.prefix}workflows"

    # --- events, registry, channels ---

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

    def inbox(self, worker: str) -> str:
        """Pub/sub channel of one worker: wake-ups and control messages meant for it alone."""
        return f"{self.prefix}inbox:{worker}"

    @property
    def broadcast(self) -> str:
        """Pub/sub channel every worker listens to (e.g. a new lane appeared)."""
        return f"{self.prefix}broadcast"
