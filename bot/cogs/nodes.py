"""``/node-invite``: admins issue a volunteer GPU's node token (answered only to them; Redis keeps its hash)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from common.nodes import NodeStore

if TYPE_CHECKING:
    from bot.app import EaselBot


class Nodes(commands.Cog):
    def __init__(self, bot: EaselBot) -> None:
        self.bot = bot

    @app_commands.command(name="node-invite", description="Admins: a token for a volunteer GPU (shown once, to you)")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    @app_commands.describe(name="the node's name in the pool", max_pixels="largest width x height it is given",
                           checkpoints="comma-separated checkpoints it may run (default: any)")
    async def invite(self, interaction: discord.Interaction, name: str, max_pixels: int | None = None,
                     checkpoints: str | None = None) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        client = self.bot.jobs.client
        store = NodeStore(client.redis, client.keys)
        try:
            token = await store.invite(name, max_pixels=max_pixels,
                                       checkpoints=checkpoints.split(",") if checkpoints else None)
        except ValueError as exc:
            await interaction.followup.send(str(exc), ephemeral=True)
            return
        await interaction.followup.send(
            f"Node `{name}` invited. Its token (shown once; send it privately):\n||{token}||\n"
            f"On the node: `easel worker --gateway https://YOUR-GATEWAY --token <token> "
            "--webui-url http://127.0.0.1:7860`", ephemeral=True)


async def setup(bot: EaselBot) -> None:
    await bot.add_cog(Nodes(bot))
