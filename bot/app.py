"""The Discord bot: slash commands in cogs, persistent buttons, and the delivery of job messages.

The bot adds no scheduling or WebUI logic: commands become request models handed to the job service, and job
messages follow the job through the event stream (:mod:`bot.delivery`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import discord
from discord import app_commands
from discord.ext import commands

from bot import render
from bot.delivery import Delivery
from bot.keys import owner_of
from bot.views import ImageButton, JobButton, cancel_view
from common.errors import EaselError, InvalidRequest
from common.models import GenerationRequest
from common.settings import Settings
from common.tasks import JobRecord, Origin
from jobs.service import JobService

log = logging.getLogger(__name__)

COGS = ("bot.cogs.imagine", "bot.cogs.edit", "bot.cogs.sweep", "bot.cogs.queue", "bot.cogs.settings",
        "bot.cogs.workflows")

Action = Callable[["EaselBot", discord.Interaction], Awaitable[str | None]]


class EaselBot(commands.Bot):
    def __init__(self, settings: Settings, jobs: JobService) -> None:
        intents = discord.Intents.default()  # slash commands and buttons need no privileged intent
        super().__init__(command_prefix=commands.when_mentioned, intents=intents, help_command=None)
        self.settings = settings
        self.jobs = jobs
        self.delivery = Delivery(self, jobs, interval_s=settings.discord_edit_interval_s)
        self._delivering: asyncio.Task[None] | None = None
        self._last_job: dict[int, float] = {}  # user id -> when they last queued a job (cooldown)

    async def setup_hook(self) -> None:
        self.add_dynamic_items(ImageButton, JobButton)
        for cog in COGS:
            await self.load_extension(cog)
        self.tree.error(self.on_app_command_error)
        self._delivering = asyncio.create_task(self._serve(), name="delivery")

    async def _serve(self) -> None:
        await self.wait_until_ready()  # READY carries the application id that syncing needs
        await self.sync_commands()
        await self.delivery.run()

    async def sync_commands(self) -> None:
        """Dev guilds get the commands at once; without any, sync globally (Discord propagates it lazily)."""
        for guild_id in self.settings.discord_guild_ids:
            guild = discord.Object(guild_id)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)
        if not self.settings.discord_guild_ids:
            await self.tree.sync()

    async def close(self) -> None:
        if self._delivering is not None:
            self._delivering.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._delivering
        await self.delivery.close()
        await super().close()

    # --- shared by cogs and buttons -------------------------------------------------------------------------

    async def submit(self, interaction: discord.Interaction, tasks: Sequence[tuple[str, GenerationRequest]], *,
                     spec: str) -> JobRecord:
        """The abuse checks, then the job service; the job gets its own message; the command's answer links it."""
        self._check_cooldown(interaction.user.id)
        self._check_words(tasks)
        origin = Origin(source="discord", guild_id=interaction.guild_id, channel_id=interaction.channel_id)
        record = await self.jobs.recording.submit(owner_of(interaction.user.id), origin, tasks, spec=spec,
                                        priority=self._priority(interaction))
        self._last_job[interaction.user.id] = time.monotonic()
        message = await self.post_job(interaction, record)
        await interaction.edit_original_response(content=f"Queued as job `{record.job_id}`: {message.jump_url}")
        return record

    def _check_cooldown(self, user_id: int) -> None:
        wait = self._last_job.get(user_id, -1e9) + self.settings.discord_cooldown_s - time.monotonic()
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
        message = await channel.send(render.content(detail), view=cancel_view(record.job_id))
        origin = Origin(source="discord", guild_id=interaction.guild_id, channel_id=message.channel.id,
                        message_id=message.id)
        await self.jobs.store.set_origin(record.job_id, origin)
        self.delivery.schedule(record.job_id)
        return message

    async def run_action(self, interaction: discord.Interaction, action: Action) -> None:
        """Answer a button at once (privately), do the work, then say how it went — or why not."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            reply = await action(self, interaction)
        except EaselError as exc:
            reply = f"⚠️ {exc}"
        await interaction.followup.send(reply or "Done.", ephemeral=True)

    async def run_guarded(self, interaction: discord.Interaction, work: Awaitable[object]) -> None:
        """For component callbacks that already answered: any refusal becomes a private follow-up."""
        try:
            await work
        except EaselError as exc:
            await interaction.followup.send(f"⚠️ {exc}", ephemeral=True)

    async def on_app_command_error(self, interaction: discord.Interaction,
                                   error: app_commands.AppCommandError) -> None:
        """Every failure answers the user: checks, cooldowns, validation, queue refusals, bugs."""
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        if isinstance(cause, EaselError):
            text = f"⚠️ {cause}"
        elif isinstance(cause, app_commands.CommandOnCooldown):
            text = f"⏱️ Slow down: try again in {cause.retry_after:.0f}s."
        elif isinstance(cause, app_commands.CheckFailure):
            text = "🚫 You cannot use this command here."
        else:
            log.exception("command failed", exc_info=cause)
            text = "💥 Something went wrong on Easel's side; the error was logged."
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)
