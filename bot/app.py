"""The Discord bot: slash commands in cogs, persistent buttons, and the delivery of job messages.

``EaselBot`` only holds what every part shares (the settings and the job service, both passed in) and wires the
parts up: each feature is an extension with its own cog — the commands, :mod:`bot.submission` (the abuse checks and
the job's own message), :mod:`bot.delivery` (keeps job messages in step, owning its background task) — and the
buttons are ``DynamicItem``s (:mod:`bot.buttons`) that reach those parts through the client (:mod:`bot.ports`).
The bot adds no scheduling or WebUI logic: commands become request models handed to the job service.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot import answers
from bot.buttons import ITEMS
from common.settings import Settings
from jobs.service import JobService

log = logging.getLogger(__name__)

EXTENSIONS = ("bot.submission", "bot.delivery", "bot.cogs.imagine", "bot.cogs.edit", "bot.cogs.sweep",
              "bot.cogs.queue", "bot.cogs.settings", "bot.cogs.nodes")


class EaselBot(commands.Bot):
    def __init__(self, settings: Settings, jobs: JobService) -> None:
        intents = discord.Intents.default()  # slash commands and buttons need no privileged intent
        super().__init__(command_prefix=commands.when_mentioned, intents=intents, help_command=None)
        self.settings = settings
        self.jobs = jobs

    async def setup_hook(self) -> None:
        self.add_dynamic_items(*ITEMS)
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        self.tree.error(self.on_app_command_error)
        await self.sync_commands()  # login fetched the application id that syncing needs

    async def sync_commands(self) -> None:
        """Dev guilds get the commands at once; without any, sync globally (Discord propagates it lazily)."""
        for guild_id in self.settings.discord_guild_ids:
            guild = discord.Object(guild_id)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)
        if not self.settings.discord_guild_ids:
            await self.tree.sync()

    async def on_app_command_error(self, interaction: discord.Interaction,
                                   error: app_commands.AppCommandError) -> None:
        """Every failure answers the user: checks, cooldowns, validation, queue refusals, outages, bugs."""
        await answers.answer(interaction, answers.failure_text(error))
