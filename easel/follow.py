"""Terminal side of following a job: live positions and progress bars, then the PNGs on disk."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from common.events import EventType
from common.queue import EaselClient
from common.tasks import JobRecord
from jobs.tracker import JobView, JobWatcher, TaskView


def _status(task: TaskView) -> str:
    if task.state == EventType.QUEUED:
        return f"queued, #{task.position} in line" if task.position else "queued"
    if task.state == EventType.PROGRESS:
        return f"step {task.step}/{task.steps} on {task.worker}"
    if task.state == EventType.FINISHED and task.result is not None:
        seeds = ", ".join(str(s) for s in task.result.seeds)
        return f"[green]done[/] seed {seeds}"
    if task.state in (EventType.FAILED, EventType.CANCELLED):
        return f"[red]{task.state.value}[/]: {task.message}"
    return f"{task.state.value}{f': {task.message}' if task.message else ''}"


def _fraction(task: TaskView) -> float:
    if task.state == EventType.FINISHED:
        return 1.0
    return task.step / task.steps if task.steps else 0.0


async def follow(client: EaselClient, record: JobRecord, after: str, console: Console) -> JobView:
    """Show the job's tasks until all have ended; return the final view."""
    columns = (
        TextColumn("{task.description}", style="bold"),
        BarColumn(bar_width=24),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    watcher = JobWatcher(client, record, after)
    with Progress(*columns, console=console, transient=False) as bars:
        ids: dict[str, TaskID] = {
            t.task_id: bars.add_task(f"{t.task_id} {t.label}".strip(), total=1.0, status="queued")
            for t in watcher.view.tasks.values()
        }
        async for view in watcher:
            for task in view.tasks.values():
                bars.update(ids[task.task_id], completed=_fraction(task), status=_status(task))
    return watcher.view


def image_path(out_dir: Path, task_id: str, n: int, seed: int) -> Path:
    """``out_dir/<job id>/<task index>-<image n>-<seed>.png``."""
    job_id, _, index = task_id.rpartition(".")
    return out_dir / job_id / f"{index}-{n}-{seed}.png"


def save_images(view: JobView, out_dir: Path) -> list[Path]:
    """Write every image of the job (PNG with its infotext) under ``out_dir/<job id>/``; return the paths."""
    paths = []
    for task in view.tasks.values():
        for n, image in enumerate(task.result.images if task.result else []):
            path = image_path(out_dir, task.task_id, n, image.seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(image.png)
            paths.append(path)
    return paths


def summary_table(views: list[JobView], out_dir: Path) -> Table:
    """One row per image: which variant, its seed and size, how long the task took, the file it went to."""
    table = Table(title=f"Easel: images written under {out_dir}")
    for column in ("job", "#", "variant", "status", "seed", "size", "secs", "file"):
        table.add_column(column, overflow="fold")
    for view in views:
        for task in view.tasks.values():
            job_id, _, index = task.task_id.rpartition(".")
            result = task.result
            if result is None:
                table.add_row(job_id, index, task.label, f"[red]{task.state.value}[/]", "", "", "",
                              task.message or "")
                continue
            seconds = f"{(result.finished_ms - result.started_ms) / 1000:.1f}"
            for n, image in enumerate(result.images):
                path = image_path(out_dir, task.task_id, n, image.seed)
                table.add_row(job_id, index, task.label, "[green]done[/]", str(image.seed),
                              f"{image.width}x{image.height}", seconds, path.name)
    return table
