"""Which queued task should this worker run next? (model affinity over the fair order)

Loading a checkpoint costs seconds, so a worker prefers tasks for the checkpoint it has loaded. It switches when
another checkpoint's *demand* — its waiting tasks weighted by how long each has waited — per worker that would serve
it, beats its own by a margin. No task is passed over for longer than ``max_pass_over_ms``: once that bound is
reached it is taken first. Without affinity the fair order is followed as is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from common.scheduling import TaskMeta

SWITCH_MARGIN = 2.0  # another checkpoint's demand per worker must be this many times ours to switch
FRESH_MS = 1000  # a task that just arrived still counts as this much waiting


@dataclass(frozen=True)
class Candidate:
    """A task this worker could run now, in fair order."""

    meta: TaskMeta
    queue_score: int
    passed_since: int | None = None


@dataclass(frozen=True)
class Choice:
    order: list[str]  # task ids to try, best first
    passed_over: list[str]  # runnable tasks earlier in fair order that this choice skips


def choose(
    candidates: Sequence[Candidate],
    *,
    loaded: str | None,
    resolve: Callable[[str | None], str | None],
    holders: dict[str, int],
    now_ms: int,
    max_pass_over_ms: float,
    affinity: bool = True,
) -> Choice:
    """Order ``candidates`` for this worker.

    ``resolve`` maps a task's checkpoint (as the user wrote it) to this worker's checkpoint title (None for "any");
    ``holders`` counts the *other* live workers that have each title loaded.
    """
    ids = [c.meta.task_id for c in candidates]
    if not candidates or not affinity:
        return Choice(ids, [])
    overdue = [c for c in candidates if c.passed_since is not None and now_ms - c.passed_since > max_pass_over_ms]
    if overdue:
        first = overdue[0].meta.task_id
        return Choice([first, *(i for i in ids if i != first)], [])

    def group(c: Candidate) -> str | None:
        return resolve(c.meta.checkpoint) or loaded  # a task for "any checkpoint" suits what is loaded

    demand: dict[str | None, float] = {}
    for c in candidates:
        demand[group(c)] = demand.get(group(c), 0.0) + max(FRESH_MS, now_ms - c.meta.enqueue_ms)

    def share(title: str | None) -> float:
        return demand.get(title, 0.0) / (holders.get(title or "", 0) + 1)

    target = max(demand, key=share)
    if loaded in demand and share(loaded) * SWITCH_MARGIN >= share(target):
        target = loaded
    preferred = [c.meta.task_id for c in candidates if group(c) == target]
    rest = [i for i in ids if i not in set(preferred)]
    skipped = ids[: ids.index(preferred[0])]
    return Choice(preferred + rest, skipped)
