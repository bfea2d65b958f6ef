"""``/sweep``: prompts x parameter lists (the job service's syntax), confirmed before anything is queued."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import answers
from bot.ports import submitter
from common.models import GenerationRequest
from common.sweep import expand, parse_spec

if TYPE_CHECKING:
    from bot.app import EaselBot

CONFIRM_S = 600


class Confirm(discord.ui.View):
    """Queue / Never mind, for the user who asked; it lapses after ten minutes."""

    def __init__(self, bot: EaselBot, owner_id: int, tasks: list[tuple[str, GenerationRequest]], spec: str) -> None:
        super().__init__(timeout=CONFIRM_S)
        self.bot, self.owner_id, self.tasks, self.spec = bot, owner_id, tasks, spec

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id != self.owner_id:
            await interaction.response.send_message("🚫 Only the person who asked can confirm this sweep.",
                                                    ephemeral=True)
            return False
        return True

    @discord.ui.button(label="Queue them", style=discord.ButtonStyle.success)
    async def queue(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        await interaction.response.defer()
        self.stop()
        await interaction.edit_original_response(view=None)
        try:
            await submitter(self.bot).submit(interaction, self.tasks, spec=self.spec)
        except Exception as exc:  # refused (cooldown, banned word, queue full) or the queue unreachable
            await answers.answer(interaction, answers.failure_text(exc))

    @discord.ui.button(label="Never mind", style=discord.ButtonStyle.secondary)
    async def never_mind(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        self.stop()
        await interaction.response.edit_message(content="Sweep dropped; nothing was queued.", view=None)


class Sweep(commands.Cog):
    def __init__(self, bot: EaselBot) -> None:
        self.bot = bot

    @app_commands.command(name="sweep", description="Prompts x parameter lists, e.g. a fox | a wolf :: cfg=5,7")
    @app_commands.describe(spec='"prompt | prompt :: name=v1,v2 ..." (names: cfg, steps, seed, sampler, ...)',
                           steps="Steps for every task (unless the spec sweeps them)")
    async def sweep(self, interaction: discord.Interaction, spec: app_commands.Range[str, 1, 2000],
                    steps: app_commands.Range[int, 1, 150] | None = None) -> None:
        await interaction.response.defer(thinking=True)
        prompts, axes = parse_spec(spec)
        base: dict[str, Any] = {"kind": "txt2img", "prompt": prompts[0] if prompts else ""}
        if steps is not None:
            base["steps"] = steps
        tasks = expand(base, prompts, axes, limits=self.bot.jobs.client.limits)
        view = Confirm(self.bot, interaction.user.id, tasks, spec)
        await interaction.edit_original_response(content=f"This sweep makes **{len(tasks)}** task(s). Queue them?",
                                                 view=view)


async def setup(bot: EaselBot) -> None:
    await bot.add_cog(Sweep(bot))
