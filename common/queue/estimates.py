"""When will a task start? Places are exact (a rank in the waiting index); start times are estimated.

The first ``WINDOW`` waiting tasks are simulated exactly: the live workers take them in fair order, each task costing
its measured speed (and a checkpoint load where the worker must switch). A task further down the line is placed
from its rank: after the window, the workers that can run it take the tasks between the window's end and it at the
window's average cost. So an estimate costs the same at any depth, and its error grows only for tasks far away.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from common.queue.fairness import SpeedTable
from common.queue.lanes import Requirements, serves
from common.queue.models import Estimate, QueuedTask, TaskMeta
from common.registry import WorkerInfo, WorkerState

WINDOW = 256  # waiting tasks simulated one by one; those further back are extrapolated from their place


@dataclass
class _Lane:
    info: WorkerInfo
    free_ms: float
    loaded: str | None


def _serves(info: WorkerInfo, meta: TaskMeta, requirements: Mapping[str, Requirements]) -> bool:
    """Whether the worker can run the task: its lane's requirements when known (node classes, LoRAs...), else
    its checkpoint."""
    needed = requirements.get(meta.lane)
    if needed is not None:
        return serves(info, needed)
    return meta.checkpoint is None or info.find_checkpoint(meta.checkpoint) is not None


def _unserved(meta: TaskMeta, workers: Sequence[_Lane]) -> str:
    if meta.checkpoint and not any(lane.info.find_checkpoint(meta.checkpoint) for lane in workers):
        return f"no worker has model {meta.checkpoint}"
    return "no live worker can run it" if workers else "no worker is online"


def estimate(
    running: Sequence[QueuedTask],
    window: Sequence[QueuedTask],
    workers: Sequence[WorkerInfo],
    speeds: SpeedTable,
    *,
    beyond: Mapping[str, tuple[int, TaskMeta]] | None = None,
    now_ms: int | None = None,
    requirements: Mapping[str, Requirements] | None = None,
) -> dict[str, Estimate]:
    """Estimates for the running tasks, the ``window`` (the first waiting tasks, in fair order) and ``beyond``
    (task id -> (place, meta) of waiting tasks after the window)."""
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    needs = requirements or {}
    usable = [w for w in workers if w.state not in (WorkerState.DRAINING, WorkerState.UNHEALTHY, WorkerState.PAUSED)]
    current = {t.meta.task_id: t for t in running}
    lanes = []
    for info in usable:
        free = float(now)
        task = current.get(info.current_task or "")
        if task is not None:
            elapsed = now - (info.task_started_ms or now)
            free = now + max(0.0, speeds.seconds(task.meta, info.name) * 1000 - elapsed)
        lanes.append(_Lane(info, free, info.loaded_checkpoint))
    result: dict[str, Estimate] = {t: Estimate(0, now) for t in current}
    costs: list[float] = []
    for task in window:
        meta = task.meta
        able = [lane for lane in lanes if _serves(lane.info, meta, needs)]
        if not able:
            result[meta.task_id] = Estimate(task.place, None, _unserved(meta, lanes))
            continue
        lane = min(able, key=lambda lane: lane.free_ms)
        start = lane.free_ms  # a task starts (and says so) before its worker loads its checkpoint
        busy = speeds.seconds(meta, lane.info.name) * 1000
        checkpoint = lane.info.find_checkpoint(meta.checkpoint) if meta.checkpoint else None
        if checkpoint is not None and checkpoint.title != lane.loaded:
            busy += speeds.load_seconds(checkpoint.title) * 1000
            lane.loaded = checkpoint.title
        lane.free_ms = start + busy
        costs.append(busy)
        result[meta.task_id] = Estimate(task.place, int(start))
    last_place = window[-1].place if window else 0
    average = sum(costs) / len(costs) if costs else None
    for task_id, (place, meta) in (beyond or {}).items():
        able = [lane for lane in lanes if _serves(lane.info, meta, needs)]
        if not able:
            result[task_id] = Estimate(place, None, _unserved(meta, lanes))
            continue
        per_task = average if average is not None else speeds.seconds(meta) * 1000
        ahead = max(0, place - last_place - 1)
        start = min(lane.free_ms for lane in able) + ahead * per_task / len(able)
        result[task_id] = Estimate(place, int(start))
    return result
