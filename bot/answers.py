"""What the user reads when something fails: one wording per kind of failure, for commands and buttons alike.

Discord shows "This interaction failed" (or "did not respond") for anything left unanswered, so every failure path
ends in :func:`failure_text` and an answer.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from bot.keys import QUEUE_UNREACHABLE
from common.errors import EaselError, QueueUnreachable
from common.outage import is_outage

log = logging.getLogger(__name__)


def failure_text(exc: BaseException) -> str:
    """A message for ``exc`` that says what to do; unexpected errors are logged and worded as ours."""
    if isinstance(exc, app_commands.CommandInvokeError):
        exc = exc.original
    if isinstance(exc, QueueUnreachable) or is_outage(exc):
        return QUEUE_UNREACHABLE
    if isinstance(exc, EaselError):
        return f"⚠️ {exc}"
    if isinstance(exc, app_commands.CommandOnCooldown):
        return f"⏱️ Slow down: try again in {exc.retry_after:.0f}s."
    if isinstance(exc, app_commands.CheckFailure):
        return "🚫 You cannot use this command here."
    log.error("an interaction failed", exc_info=exc)
    return "💥 Something went wrong on Easel's side; the error was logged."


async def answer(interaction: discord.Interaction, text: str) -> None:
    """A private answer, whether or not the interaction was answered (deferred) already."""
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True)
    else:
        await interaction.response.send_message(text, ephemeral=True)


def is_moderator(interaction: discord.Interaction) -> bool:
    """Members with Manage Messages (in this channel, as Discord resolved them) may act on anyone's jobs."""
    return interaction.guild_id is not None and interaction.permissions.manage_messages
