"""Terminal side of following a job: live places in line and progress bars (from the job tracker), then the
job as stored, its PNGs copied out and a summary."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from common.tasks import JobRecord
from jobs.models import JobDetail, LiveTask, TaskStatus
from jobs.service import JobService
from jobs.tracker import JobTracker


def _waiting(task: LiveTask) -> str:
    text = f"queued, #{task.position} in line" if task.position else "queued"
    if task.eta_ms is not None:
        seconds = max(0, round(task.eta_ms / 1000 - time.time()))
        text += f", starts in ~{seconds}s"
    return text + (f" ({task.message})" if task.message else "")


def _status(task: LiveTask) -> str:
    if task.status == TaskStatus.QUEUED:
        return _waiting(task)
    if task.status == TaskStatus.RUNNING:
        doing = f"step {task.step}/{task.steps}" if task.steps else (task.message or "started")
        return f"{doing} on {task.worker}"
    if task.status == TaskStatus.DONE:
        seeds = f" seed {', '.join(str(s) for s in task.result.seeds)}" if task.result else ""
        return f"[green]done[/]{seeds}"
    return f"[red]{task.status.value}[/]: {task.message}"


def _fraction(task: LiveTask) -> float:
    if task.status == TaskStatus.DONE:
        return 1.0
    return task.step / task.steps if task.steps else 0.0


async def show_progress(tracker: JobTracker, after: str, console: Console) -> None:
    """Show the job's tasks, live, until all have ended."""
    columns = (
        TextColumn("{task.description}", style="bold"),
        BarColumn(bar_width=24),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bars:
        ids: dict[str, TaskID] = {
            t.task_id: bars.add_task(f"{t.task_id} {t.label}".strip(), total=1.0, status="queued")
            for t in tracker.view.tasks.values()
        }
        async for view in tracker.follow(after):
            for task in view.tasks.values():
                bars.update(ids[task.task_id], completed=_fraction(task), status=_status(task))


async def follow(jobs: JobService, record: JobRecord, after: str, console: Console) -> JobDetail:
    """Follow a submitted job to its end (through Redis outages), store its results, and return it as stored."""
    tracker = jobs.track(record)
    await show_progress(tracker, after, console)
    await tracker.redis(lambda: jobs.recording.sync(record.job_id))
    return await jobs.store.job(record.job_id)


def save_images(detail: JobDetail, out_dir: Path) -> list[Path]:
    """Copy the job's images (PNG with infotext) from the store to ``out_dir/<job id>/``; return the paths."""
    paths = []
    for image in detail.images:
        path = out_dir / detail.id / Path(image.file).name  # <task index>-<image n>-<seed>.png
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(image.file, path)
        paths.append(path)
    return paths


def summary_table(details: list[JobDetail], out_dir: Path) -> Table:
    """One row per image: which variant, its seed and size, how long the task took, the file it went to."""
    table = Table(title=f"Easel: images written under {out_dir}")
    for column in ("job", "#", "variant", "status", "seed", "size", "secs", "file"):
        table.add_column(column, overflow="fold")
    for detail in details:
        for task in detail.tasks:
            if not task.images:
                table.add_row(detail.id, str(task.index), task.label, f"[red]{task.status.value}[/]", "", "", "",
                              task.error or "")
            seconds = f"{((task.finished_ms or 0) - (task.started_ms or 0)) / 1000:.1f}"
            for image in task.images:
                table.add_row(detail.id, str(task.index), task.label, "[green]done[/]", str(image.seed),
                              f"{image.width}x{image.height}", seconds, Path(image.file).name)
    return table
