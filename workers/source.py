"""What a worker needs from the pool: the :class:`TaskSource` protocol.

A trusted worker's source is :class:`common.queue.member.PoolMember` (Redis). A volunteer node reaches the pool
through the gateway instead, with a source that speaks to it over a WebSocket; the loop, the runner and the
generation server code are the same either way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from common.errors import TaskFailed
from common.events import TaskEvent
from common.queue.messages import ControlMessage
from common.queue.models import Claimed
from common.registry import WorkerInfo
from common.tasks import TaskResult, TaskSpec


class TaskSource(Protocol):
    name: str

    async def claim(self, info: WorkerInfo) -> Claimed | None:
        """The task this worker should run next, claimed with a lease; None when there is none it can run."""

    async def spec(self, claimed: Claimed) -> TaskSpec:
        """The claimed task's spec with its inputs (raises TaskFailed when it cannot be rebuilt)."""

    async def renew(self, task_ids: list[str], info: WorkerInfo) -> list[str]:
        """Renew leases; returns the ids lost for good (another worker runs them now)."""

    async def finish(self, claimed: Claimed, outcome: TaskResult | TaskFailed) -> bool:
        """Store the task's outcome; False when the lease was lost (the outcome is discarded)."""

    async def hand_back(self, task_id: str, *, defer_s: float = 0.0, counted: bool, backend_failed: bool = False,
                        avoid: bool = False) -> bool:
        """Put the task back in line (see PoolMember.hand_back)."""

    async def cancel_requested(self, task_id: str) -> bool: ...

    async def publish(self, event: TaskEvent) -> None: ...

    async def set_preview(self, task_id: str, jpeg: bytes) -> None: ...

    async def record_speed(self, *, kind: str, checkpoint: str | None, work: float, seconds: float) -> None: ...

    async def record_load(self, *, checkpoint: str, seconds: float) -> None: ...

    async def heartbeat(self, info: WorkerInfo) -> None: ...

    async def leave(self) -> None:
        """Unregister (the worker stops)."""

    def messages(self) -> AsyncIterator[ControlMessage]:
        """Wake-ups and control messages for this worker, for as long as it runs."""
