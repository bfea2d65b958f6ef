"""A job's images laid out like an X/Y plot: one row per prompt (or per value of the first axis), one column per
combination of the other axes' values, read from the task labels a sweep gives (``prompt 2 cfg=5 steps=20``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jobs.models import ImageDetail, JobDetail, TaskDetail


@dataclass
class Cell:
    task: TaskDetail
    images: list[ImageDetail]


@dataclass
class Grid:
    rows: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)

    def cell(self, row: str, column: str) -> Cell | None:
        return self.cells.get((row, column))


def _split(label: str) -> tuple[str, str]:
    """(row, column) of a task label. Sweeps: ``prompt N`` (or the first axis) is the row, the other axes the column.
    Derived jobs (``denoise=0.5 of <image>``): what it was made from is the row, its parameters the column."""
    parts = label.split()
    if parts[:1] == ["prompt"] and len(parts) > 1:
        return f"prompt {parts[1]}", " ".join(parts[2:])
    axes = [p for p in parts if "=" in p]
    rest = [p for p in parts if "=" not in p]
    if rest:
        return " ".join(rest), " ".join(axes)
    if len(axes) > 1:
        return axes[0], " ".join(axes[1:])
    return "", " ".join(axes)


def layout(job: JobDetail, *, include_deleted: bool = False) -> Grid:
    grid = Grid()
    for task in job.tasks:
        row, column = _split(task.label)
        if row not in grid.rows:
            grid.rows.append(row)
        if column not in grid.columns:
            grid.columns.append(column)
        images = [i for i in task.images if include_deleted or not i.deleted]
        grid.cells[(row, column)] = Cell(task, images)
    return grid


def prompt_of(job: JobDetail, row: str) -> str:
    """The prompt a row stands for (from the infotext of its first image), for the row's header."""
    for task in job.tasks:
        if _split(task.label)[0] == row and task.images:
            return task.images[0].infotext.split("\n", 1)[0]
    return ""
