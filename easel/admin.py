"""``easel workers``, ``easel queue``, ``easel cancel`` and ``easel worker --drain``: look at and steer the pool."""

from __future__ import annotations

import asyncio
import json
import time

from rich.console import Console
from rich.table import Table

from common.errors import InvalidRequest
from common.queue import EaselClient, messages
from common.settings import Settings


def _age(ms: int | None, now: float) -> str:
    return "" if not ms else f"{max(0.0, now - ms / 1000):.0f}s"


async def _workers(settings: Settings, as_json: bool) -> int:
    async with EaselClient.connect(settings) as client:
        workers = await client.registry.live()
    if as_json:
        print(json.dumps([w.model_dump(mode="json", exclude={"samplers", "schedulers", "upscalers", "loras"})
                          for w in workers], indent=2))
        return 0
    now = time.time()
    table = Table(title=f"{len(workers)} live worker(s)")
    for column in ("name", "state", "node", "webui", "loaded", "models", "task", "done", "s/work", "seen"):
        table.add_column(column, overflow="fold")
    for w in workers:
        loaded = next((c.model_name for c in w.checkpoints if c.title == w.loaded_checkpoint), w.loaded_checkpoint)
        speed = f"{w.seconds_per_work:.3f}" if w.seconds_per_work else ""
        table.add_row(w.name, w.state.value, w.node, w.webui_url, loaded or "", str(len(w.checkpoints)),
                      w.current_task or "", str(w.tasks_done), speed, _age(w.heartbeat_ms, now) + " ago")
    Console().print(table)
    return 0


async def _queue(settings: Settings, as_json: bool) -> int:
    async with EaselClient.connect(settings) as client:
        tasks = await client.queue()
        estimates = await client.estimates()
    now = time.time()
    rows = []
    for task in tasks:
        estimate = estimates.get(task.meta.task_id)
        eta = None
        if estimate is not None and estimate.start_ms is not None:
            eta = max(0.0, estimate.start_ms / 1000 - now)
        rows.append({
            "position": estimate.position if estimate else None, "task": task.meta.task_id,
            "owner": task.meta.owner, "kind": task.meta.kind, "checkpoint": task.meta.checkpoint,
            "waiting_s": round(now - task.meta.enqueue_ms / 1000, 1), "running": task.running,
            "eta_s": None if eta is None else round(eta, 1), "note": estimate.reason if estimate else None,
        })
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title=f"{len(rows)} task(s) in fair order")
    for column in ("#", "task", "owner", "kind", "checkpoint", "waiting", "starts in"):
        table.add_column(column, overflow="fold")
    for row in rows:
        if row["running"]:
            starts = "running"
        elif row["eta_s"] is None:
            starts = str(row["note"])
        else:
            starts = f"~{row['eta_s']:.0f}s"
        table.add_row(str(row["position"]), str(row["task"]), str(row["owner"]), str(row["kind"]),
                      str(row["checkpoint"] or "any"), f"{row['waiting_s']:.0f}s", starts)
    Console().print(table)
    return 0


async def _cancel(settings: Settings, ids: list[str], by: str) -> int:
    async with EaselClient.connect(settings) as client:
        for ident in ids:
            if "." in ident:
                outcomes = {ident: await client.cancel(ident, by=by)}
            else:
                try:
                    outcomes = await client.cancel_job(ident, by=by)
                except InvalidRequest as exc:
                    print(f"easel: {exc}")
                    return 1
            for task_id, outcome in outcomes.items():
                print(f"{task_id}: {outcome.value}")
    return 0


async def _drain(settings: Settings) -> int:
    async with EaselClient.connect(settings) as client:
        names = [w.name for w in await client.registry.live()]
        if settings.worker_name not in names:
            print(f"easel: no live worker is named {settings.worker_name!r}; live: {', '.join(names) or 'none'}")
            return 1
        await client.tell(settings.worker_name, messages.Drain())
    print(f"{settings.worker_name}: draining (finishes its current task, takes no more, then stops)")
    return 0


def workers(settings: Settings, as_json: bool) -> int:
    return asyncio.run(_workers(settings, as_json))


def queue(settings: Settings, as_json: bool) -> int:
    return asyncio.run(_queue(settings, as_json))


def cancel(settings: Settings, ids: list[str], by: str) -> int:
    return asyncio.run(_cancel(settings, ids, by))


def drain(settings: Settings) -> int:
    return asyncio.run(_drain(settings))
