"""The buttons a job message carries at each stage (the buttons themselves are in :mod:`bot.buttons`).

A finished job of up to four images gets U1..U4 / V1..V4 / Keep / Delete for each image; a bigger one pages through
its images four at a time, with the same buttons for the page shown plus previous / next. Discord allows 5 rows of
5 buttons: rows 0-3 hold the image buttons (and previous, next, the gallery link in their fifth slot), row 4 the job's
own buttons.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import discord

from bot import buttons, render
from bot.keys import IMAGE_BUTTONS
from jobs.models import JobDetail, TaskStatus

ROWS: tuple[tuple[str, str, Callable[..., discord.ui.Item[Any]]], ...] = (
    ("up", "U", buttons.UpscaleImage), ("var", "V", buttons.VaryImage), ("keep", "Keep ", buttons.KeepImage),
    ("del", "Delete ", buttons.DeleteImage),
)


def job_view(detail: JobDetail, *, page: int = 1, gallery_url: str | None = None) -> discord.ui.View:
    """The buttons of a finished job (showing ``page`` when it has more than four images)."""
    view = discord.ui.View(timeout=None)
    if render.is_paged(detail):
        _page_buttons(view, detail, render.clamp_page(detail, page))
    else:
        images = [i for i in detail.images if not i.deleted][:IMAGE_BUTTONS]
        for row, (action, label, kind) in enumerate(ROWS):
            for n, image in enumerate(images, start=1):
                view.add_item(kind(detail.id, image_id=image.id, label=f"{label}{n}",
                                   style=_style(action, image.kept), row=row))
    if gallery_url:
        view.add_item(discord.ui.Button(label="Open in gallery", url=gallery_url, row=2))
    _job_buttons(view, detail)
    return view


def _page_buttons(view: discord.ui.View, detail: JobDetail, page: int) -> None:
    shown = render.on_page(detail, page)
    for row, (action, label, kind) in enumerate(ROWS):
        for number, image in shown:  # deleted images keep their place (and number) on the page, their buttons off
            view.add_item(kind(detail.id, page=page, number=number, label=f"{label}{number}",
                               style=_style(action, image.kept), row=row, disabled=image.deleted))
    last = render.page_count(detail)
    view.add_item(buttons.ShowPage(detail.id, max(1, page - 1), "prev", row=0, disabled=page <= 1))
    view.add_item(buttons.ShowPage(detail.id, min(last, page + 1), "next", row=1, disabled=page >= last))


def _style(action: str, kept: bool) -> discord.ButtonStyle:
    return discord.ButtonStyle.success if action == "keep" and kept else discord.ButtonStyle.secondary


def _job_buttons(view: discord.ui.View, detail: JobDetail) -> None:
    actions: list[type[buttons.JobAction]] = [buttons.Reroll, buttons.UpscaleKept, buttons.DeleteNotKept,
                                               buttons.Parameters]
    labels = {"reroll": "🎲 Reroll", "upkept": "Upscale kept", "delunkept": "Delete not kept", "params": "Parameters",
              "retry": "🔁 Retry"}
    if any(t.status in (TaskStatus.FAILED, TaskStatus.CANCELLED) for t in detail.tasks):
        actions.insert(0, buttons.RetryFailed)
    for kind in actions:
        view.add_item(kind(detail.id, label=labels[kind.action], row=4))  # type: ignore[arg-type]


def cancel_view(job_id: str, *, gallery_url: str | None = None) -> discord.ui.View:
    """While the job waits or runs: Cancel (and the gallery link)."""
    view = discord.ui.View(timeout=None)
    view.add_item(buttons.CancelJob(job_id, label="Cancel", row=0, style=discord.ButtonStyle.danger))
    if gallery_url:
        view.add_item(discord.ui.Button(label="Open in gallery", url=gallery_url, row=0))
    return view
