"""Persistent buttons on job messages: ``DynamicItem``s whose custom_id carries the image or job id, so they work
after a restart and long after the interaction token expired. Only the job's owner (or a member with Manage
Messages) may use them; anyone else gets an ephemeral refusal.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import discord

from bot.keys import (
    IMAGE_BUTTON,
    IMAGE_BUTTONS,
    JOB_BUTTON,
    UPSCALE_SCALE,
    VARIATION_DENOISE,
    image_button,
    job_button,
    owner_of,
)
from jobs.models import JobDetail, TaskStatus

if TYPE_CHECKING:
    from bot.app import EaselBot


def job_view(detail: JobDetail) -> discord.ui.View:
    """U1..U4 / V1..V4 / keep / delete for the first images, then the job's own buttons."""
    view = discord.ui.View(timeout=None)
    images = [i for i in detail.images if not i.deleted][:IMAGE_BUTTONS]
    for row, (action, label) in enumerate((("up", "U"), ("var", "V"), ("keep", "Keep "), ("del", "Delete "))):
        for n, image in enumerate(images, start=1):
            style = discord.ButtonStyle.success if action == "keep" and image.kept else discord.ButtonStyle.secondary
            view.add_item(ImageButton(image.id, action, label=f"{label}{n}", style=style, row=row))
    actions = [("reroll", "🎲 Reroll"), ("upkept", "Upscale kept"), ("delunkept", "Delete not kept"),
               ("params", "Parameters")]
    if any(t.status in (TaskStatus.FAILED, TaskStatus.CANCELLED) for t in detail.tasks):
        actions.insert(0, ("retry", "🔁 Retry"))
    for action, label in actions:
        view.add_item(JobButton(detail.id, action, label=label, row=4))
    return view


def cancel_view(job_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(JobButton(job_id, "cancel", label="Cancel", row=0, style=discord.ButtonStyle.danger))
    return view


def is_moderator(interaction: discord.Interaction) -> bool:
    """Members with Manage Messages may act on anyone's jobs."""
    permissions = getattr(interaction.user, "guild_permissions", None)
    return bool(permissions and permissions.manage_messages)


class ImageButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=IMAGE_BUTTON):
    def __init__(self, image_id: str, action: str, *, label: str = "", row: int | None = None,
                 style: discord.ButtonStyle = discord.ButtonStyle.secondary) -> None:
        super().__init__(discord.ui.Button(label=label or action, style=style, row=row,
                                           custom_id=image_button(image_id, action)))
        self.image_id, self.action = image_id, action

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any],
                             match: re.Match[str]) -> ImageButton:
        return cls(match["image_id"], match["action"])

    async def callback(self, interaction: discord.Interaction) -> None:
        bot: EaselBot = interaction.client  # type: ignore[assignment]
        await bot.run_action(interaction, self._act)

    async def _act(self, bot: EaselBot, interaction: discord.Interaction) -> str | None:
        jobs, actor, moderator = bot.jobs, owner_of(interaction.user.id), is_moderator(interaction)
        job_id = self.image_id.split(".")[0]
        if self.action in ("keep", "del"):
            if self.action == "keep":
                await jobs.curation.set_kept(actor, [self.image_id], True, moderator)
            else:
                await jobs.curation.delete_image(actor, self.image_id, moderator)
            bot.delivery.schedule(job_id, urgent=True)
            return f"{'Kept' if self.action == 'keep' else 'Deleted'} `{self.image_id}`."
        if self.action == "up":
            record = await jobs.curation.upscale_image(actor, self.image_id, scale=UPSCALE_SCALE, moderator=moderator)
        else:
            record = await jobs.curation.vary_image(actor, self.image_id, denoise=VARIATION_DENOISE,
                                                    moderator=moderator)
        await bot.post_job(interaction, record)
        return f"Queued job `{record.job_id}`."


class JobButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=JOB_BUTTON):
    def __init__(self, job_id: str, action: str, *, label: str = "", row: int | None = None,
                 style: discord.ButtonStyle = discord.ButtonStyle.primary) -> None:
        super().__init__(discord.ui.Button(label=label or action, style=style, row=row,
                                           custom_id=job_button(job_id, action)))
        self.job_id, self.action = job_id, action

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any],
                             match: re.Match[str]) -> JobButton:
        return cls(match["job_id"], match["action"])

    async def callback(self, interaction: discord.Interaction) -> None:
        bot: EaselBot = interaction.client  # type: ignore[assignment]
        await bot.run_action(interaction, self._act)

    async def _act(self, bot: EaselBot, interaction: discord.Interaction) -> str | None:
        jobs, actor, moderator = bot.jobs, owner_of(interaction.user.id), is_moderator(interaction)
        if self.action == "params":
            detail = await jobs.store.job(self.job_id)
            texts = [f"`{i.id}` seed {i.seed}\n```{i.infotext[:450]}```" for i in detail.images[:4]]
            return "\n".join(texts) or "No images yet."
        detail = await jobs.store.job(self.job_id)
        jobs.store.check_owner(detail, actor, moderator)
        if self.action == "cancel":
            await jobs.client.cancel_job(self.job_id, by=interaction.user.display_name)
            return "Cancelling."
        if self.action == "delunkept":
            count = await jobs.curation.delete_not_kept(actor, self.job_id, moderator)
            bot.delivery.schedule(self.job_id, urgent=True)
            return f"Deleted {count} image(s) not kept."
        if self.action == "upkept":
            record = await jobs.curation.upscale_kept(actor, self.job_id, scale=UPSCALE_SCALE, moderator=moderator)
        elif self.action == "retry":
            record = await jobs.curation.retry_failed(actor, self.job_id, moderator)
        else:
            record = await jobs.curation.rerun(actor, self.job_id, moderator)
        await bot.post_job(interaction, record)
        return f"Queued job `{record.job_id}`."
