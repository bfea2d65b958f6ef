"""Persistent buttons of job messages: one ``DynamicItem`` class per action, whose custom_id carries the ids it acts
on, so every button works after a restart and long after the interaction token expired.

A button first checks, in ``interaction_check``, that the clicking member owns the job (or has Manage Messages); a
refused member is answered privately. Its action then runs behind a private "thinking..." answer that it replaces
with the outcome, or with what went wrong (an outage of the queue included): a click is never left unanswered.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Self

import discord

from bot import answers, keys
from bot.ports import jobs_of, refresher, submitter
from common.errors import NotFound
from common.tasks import JobRecord
from jobs.models import ImageDetail

Button = discord.ui.Button[Any]


class Acting:
    """The owner check and the answer, shared by every button (a mixin placed before ``DynamicItem``)."""

    owner_only: ClassVar[bool] = True
    job_id: str

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        if not self.owner_only:
            return True
        try:
            jobs = jobs_of(interaction.client)
            detail = await jobs.store.job(self.job_id)
            jobs.store.check_owner(detail, keys.owner_of(interaction.user.id), answers.is_moderator(interaction))
        except Exception as exc:  # refused, an unknown job, or the store unreachable: all answered
            await answers.answer(interaction, answers.failure_text(exc))
            return False
        return True

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            reply = await self.act(interaction)
        except Exception as exc:
            reply = answers.failure_text(exc)
        await interaction.followup.send(reply or "Done.", ephemeral=True)

    async def act(self, interaction: discord.Interaction) -> str | None:
        raise NotImplementedError


async def _post(interaction: discord.Interaction, record: JobRecord) -> str:
    await submitter(interaction.client).post_job(interaction, record)
    return f"Queued job `{record.job_id}`."


def _who(interaction: discord.Interaction) -> tuple[str, bool]:
    return keys.owner_of(interaction.user.id), answers.is_moderator(interaction)


# --- one image's buttons ----------------------------------------------------------------------------------------

class ImageAction(Acting):
    """U / V / Keep / Delete of one image. ``page`` is set on a paged job's buttons: the page to show after."""

    action: ClassVar[str]

    def __init__(self, job_id: str, *, image_id: str | None = None, page: int | None = None,
                 number: int | None = None, label: str = "", style: discord.ButtonStyle = discord.ButtonStyle.secondary,
                 row: int | None = None, disabled: bool = False) -> None:
        if image_id is not None:
            custom_id = keys.image_button(image_id, self.action)
        else:
            assert page is not None and number is not None
            custom_id = keys.page_image_button(job_id, page, number, self.action)
        super().__init__(Button(label=label or self.action, style=style, row=row,  # type: ignore[call-arg]
                                custom_id=custom_id, disabled=disabled))
        self.job_id, self.image_id, self.page, self.number = job_id, image_id, page, number

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any],
                             match: re.Match[str]) -> Self:
        if match["image_id"]:
            return cls(match["image_id"].split(".")[0], image_id=match["image_id"])
        return cls(match["job_id"], page=int(match["page"]), number=int(match["number"]))

    async def image(self, interaction: discord.Interaction) -> ImageDetail:
        """The image this button stands for (a paged button names it by its number in the job)."""
        detail = await jobs_of(interaction.client).store.job(self.job_id)
        if self.image_id is not None:
            found = next((i for i in detail.images if i.id == self.image_id), None)
        else:
            found = detail.images[self.number - 1] if self.number and self.number <= len(detail.images) else None
        if found is None:
            raise NotFound(f"job {self.job_id} has no image {self.image_id or f'#{self.number}'} any more")
        return found

    def show(self, interaction: discord.Interaction) -> None:
        refresher(interaction.client).schedule(self.job_id, urgent=True, page=self.page)


class KeepImage(ImageAction, discord.ui.DynamicItem[Button], template=keys.image_template("keep")):
    action = "keep"

    async def act(self, interaction: discord.Interaction) -> str:
        image, (actor, moderator) = await self.image(interaction), _who(interaction)
        await jobs_of(interaction.client).curation.set_kept(actor, [image.id], True, moderator)
        self.show(interaction)
        return f"Kept `{image.id}`" + (f" (#{self.number})." if self.number else ".")


class DeleteImage(ImageAction, discord.ui.DynamicItem[Button], template=keys.image_template("del")):
    action = "del"

    async def act(self, interaction: discord.Interaction) -> str:
        image, (actor, moderator) = await self.image(interaction), _who(interaction)
        await jobs_of(interaction.client).curation.delete_image(actor, image.id, moderator)
        self.show(interaction)
        return f"Deleted `{image.id}`" + (f" (#{self.number})." if self.number else ".")


class UpscaleImage(ImageAction, discord.ui.DynamicItem[Button], template=keys.image_template("up")):
    action = "up"

    async def act(self, interaction: discord.Interaction) -> str:
        image, (actor, moderator) = await self.image(interaction), _who(interaction)
        record = await jobs_of(interaction.client).curation.upscale_image(
            actor, image.id, scale=keys.UPSCALE_SCALE, moderator=moderator)
        return await _post(interaction, record)


class VaryImage(ImageAction, discord.ui.DynamicItem[Button], template=keys.image_template("var")):
    action = "var"

    async def act(self, interaction: discord.Interaction) -> str:
        image, (actor, moderator) = await self.image(interaction), _who(interaction)
        record = await jobs_of(interaction.client).curation.vary_image(
            actor, image.id, denoise=keys.VARIATION_DENOISE, moderator=moderator)
        return await _post(interaction, record)


# --- the job's buttons ------------------------------------------------------------------------------------------

class JobAction(Acting):
    action: ClassVar[str]

    def __init__(self, job_id: str, *, label: str = "", row: int | None = None,
                 style: discord.ButtonStyle = discord.ButtonStyle.primary) -> None:
        super().__init__(Button(label=label or self.action, style=style, row=row,  # type: ignore[call-arg]
                                custom_id=keys.job_button(job_id, self.action)))
        self.job_id = job_id

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any],
                             match: re.Match[str]) -> Self:
        return cls(match["job_id"])


class Parameters(JobAction, discord.ui.DynamicItem[Button], template=keys.job_template("params")):
    """Anyone may read how the images were made."""

    action, owner_only = "params", False

    async def act(self, interaction: discord.Interaction) -> str:
        detail = await jobs_of(interaction.client).store.job(self.job_id)
        texts = [f"`{i.id}` seed {i.seed}\n```{i.infotext[:450]}```" for i in detail.images[:4]]
        return "\n".join(texts) or "No images yet."


class CancelJob(JobAction, discord.ui.DynamicItem[Button], template=keys.job_template("cancel")):
    action = "cancel"

    async def act(self, interaction: discord.Interaction) -> str:
        await jobs_of(interaction.client).client.cancel_job(self.job_id, by=interaction.user.display_name)
        return "Cancelling."


class DeleteNotKept(JobAction, discord.ui.DynamicItem[Button], template=keys.job_template("delunkept")):
    action = "delunkept"

    async def act(self, interaction: discord.Interaction) -> str:
        actor, moderator = _who(interaction)
        count = await jobs_of(interaction.client).curation.delete_not_kept(actor, self.job_id, moderator)
        refresher(interaction.client).schedule(self.job_id, urgent=True)
        return f"Deleted {count} image(s) not kept."


class UpscaleKept(JobAction, discord.ui.DynamicItem[Button], template=keys.job_template("upkept")):
    action = "upkept"

    async def act(self, interaction: discord.Interaction) -> str:
        actor, moderator = _who(interaction)
        record = await jobs_of(interaction.client).curation.upscale_kept(
            actor, self.job_id, scale=keys.UPSCALE_SCALE, moderator=moderator)
        return await _post(interaction, record)


class RetryFailed(JobAction, discord.ui.DynamicItem[Button], template=keys.job_template("retry")):
    action = "retry"

    async def act(self, interaction: discord.Interaction) -> str:
        actor, moderator = _who(interaction)
        return await _post(interaction, await jobs_of(interaction.client).curation.retry_failed(
            actor, self.job_id, moderator))


class Reroll(JobAction, discord.ui.DynamicItem[Button], template=keys.job_template("reroll")):
    action = "reroll"

    async def act(self, interaction: discord.Interaction) -> str:
        actor, moderator = _who(interaction)
        return await _post(interaction, await jobs_of(interaction.client).curation.rerun(
            actor, self.job_id, moderator))


# --- paging -----------------------------------------------------------------------------------------------------

class ShowPage(Acting, discord.ui.DynamicItem[Button], template=keys.PAGE_BUTTON):
    """Previous / next: the job's message shows another page (the owner's choice, as it changes the message)."""

    def __init__(self, job_id: str, page: int, direction: str, *, row: int | None = None,
                 disabled: bool = False) -> None:
        label = "◀ Previous" if direction == "prev" else "Next ▶"
        super().__init__(Button(label=label, row=row, disabled=disabled,
                                custom_id=keys.page_button(job_id, page, direction)))
        self.job_id, self.page = job_id, page

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Item[Any],
                             match: re.Match[str]) -> Self:
        return cls(match["job_id"], int(match["page"]), match["direction"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()  # the message itself is the answer
        try:
            await refresher(interaction.client).show_page(self.job_id, self.page)
        except Exception as exc:
            await interaction.followup.send(answers.failure_text(exc), ephemeral=True)


ITEMS: tuple[type[discord.ui.DynamicItem[Any]], ...] = (
    KeepImage, DeleteImage, UpscaleImage, VaryImage, Parameters, CancelJob, DeleteNotKept, UpscaleKept, RetryFailed,
    Reroll, ShowPage,
)
