"""Submitting a job from Discord: the abuse checks (a per-user cooldown, banned words), the priority a member's roles
give, then the job service; the job gets its own message, which the command's answer links to.

A cog with no commands: the command cogs and the buttons reach it through :func:`bot.ports.submitter`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot import render
from bot.keys import owner_of
from bot.ports import SUBMISSION, refresher
from bot.views import cancel_view
from common.errors import InvalidRequest
from common.models import GenerationRequest
from common.settings import Settings
from common.tasks import JobRecord, Origin
from jobs.service import JobService

if TYPE_CHECKING:
    from bot.app import EaselBot


class Submission(commands.Cog, name=SUBMISSION):
    def __init__(self, bot: commands.Bot, jobs: JobService, settings: Settings) -> None:
        self.bot, self.jobs, self.settings = bot, jobs, settings
        # one job per user per discord_cooldown_s; a token is taken only once a job was really queued
        self.cooldown: commands.CooldownMapping[discord.Interaction] = commands.CooldownMapping.from_cooldown(
            1, settings.discord_cooldown_s, lambda interaction: interaction.user.id)

    async def submit(self, interaction: discord.Interaction, tasks: Sequence[tuple[str, GenerationRequest]], *,
                     spec: str) -> JobRecord:
        self._check_cooldown(interaction)
        self._check_words(tasks)
        origin = Origin(source="discord", guild_id=interaction.guild_id, channel_id=interaction.channel_id)
        record = await self.jobs.recording.submit(owner_of(interaction.user.id), origin, tasks, spec=spec,
                                                  priority=self._priority(interaction))
        if self.settings.discord_cooldown_s > 0:
            self.cooldown.update_rate_limit(interaction)
        message = await self.post_job(interaction, record)
        await interaction.edit_original_response(content=f"Queued as job `{record.job_id}`: {message.jump_url}")
        return record

    def _check_cooldown(self, interaction: discord.Interaction) -> None:
        bucket = self.cooldown.get_bucket(interaction)
        wait = bucket.get_retry_after() if bucket is not None and self.settings.discord_cooldown_s > 0 else 0.0
        if wait > 0:
            raise InvalidRequest([f"slow down: you can queue another job in {wait:.0f}s"])

    def _check_words(self, tasks: Sequence[tuple[str, GenerationRequest]]) -> None:
        banned = [w.lower() for w in self.settings.discord_banned_words]
        for _, request in tasks:
            text = f"{getattr(request, 'prompt', '')} {getattr(request, 'negative_prompt', '')}".lower()
            found = next((w for w in banned if w in text), None)
            if found:
                raise InvalidRequest([f"prompt: '{found}' is not allowed on this server"])

    def _priority(self, interaction: discord.Interaction) -> str:
        roles = getattr(interaction.user, "roles", [])
        classes = [self.settings.discord_role_priority.get(str(role.id)) for role in roles]
        boosts = self.settings.priority_classes
        known = [c for c in classes if c in boosts]
        return max(known, key=lambda c: boosts[c]) if known else "default"

    async def post_job(self, interaction: discord.Interaction, record: JobRecord) -> discord.Message:
        """Post the job's own message (with the bot token, so it can be completed whenever the job ends)."""
        channel = interaction.channel
        assert isinstance(channel, discord.abc.Messageable)
        detail = await self.jobs.store.job(record.job_id)
        view = cancel_view(record.job_id, gallery_url=self.settings.job_page_url(record.job_id))
        message = await channel.send(render.content(detail), view=view)
        origin = Origin(source="discord", guild_id=interaction.guild_id, channel_id=message.channel.id,
                        message_id=message.id)
        await self.jobs.store.set_origin(record.job_id, origin)
        refresher(self.bot).schedule(record.job_id)
        return message


async def setup(bot: EaselBot) -> None:
    await bot.add_cog(Submission(bot, bot.jobs, bot.settings))
