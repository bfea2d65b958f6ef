"""``/settings``: a channel's defaults and limits (admins only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.imagine import SIZES

if TYPE_CHECKING:
    from bot.app import EaselBot


def describe(settings: object) -> str:
    fields = ("spoilers", "default_steps", "default_size", "max_count")
    return "\n".join(f"{name}: {getattr(settings, name) if getattr(settings, name) is not None else '—'}"
                     for name in fields)


class Settings(commands.Cog):
    def __init__(self, bot: EaselBot) -> None:
        self.bot = bot

    @app_commands.command(name="settings", description="Admins: this channel's defaults and limits")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    @app_commands.describe(spoilers="Send images as spoilers (not in age-restricted channels)",
                           default_steps="Steps when a request gives none", default_size="Size when none is given",
                           max_count="Most images per request")
    @app_commands.choices(default_size=[app_commands.Choice(name=name, value=name) for name in SIZES])
    async def settings(
        self,
        interaction: discord.Interaction,
        spoilers: bool | None = None,
        default_steps: app_commands.Range[int, 1, 150] | None = None,
        default_size: str | None = None,
        max_count: app_commands.Range[int, 1, 16] | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        assert interaction.channel_id is not None
        current = await self.bot.jobs.store.channel_settings(interaction.channel_id)
        changes = {"spoilers": spoilers, "default_steps": default_steps, "default_size": default_size,
                   "max_count": max_count}
        changes = {k: v for k, v in changes.items() if v is not None}
        if changes:
            current = current.model_copy(update={**changes, "guild_id": interaction.guild_id})
            await self.bot.jobs.store.set_channel_settings(current)
        await interaction.followup.send(f"Settings of <#{interaction.channel_id}>:\n{describe(current)}",
                                        ephemeral=True)


async def setup(bot: EaselBot) -> None:
    await bot.add_cog(Settings(bot))
