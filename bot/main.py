"""``easel bot``: connect to Discord (or a compatible server) and serve until stopped."""

from __future__ import annotations

import asyncio
import logging

import discord
import yarl
from discord.gateway import DiscordWebSocket

from bot import metrics as bot_metrics
from bot.app import EaselBot
from common.settings import Settings
from jobs.service import JobService


def point_at(settings: Settings) -> None:
    """Use the configured API and gateway (discord.py builds every URL from these two)."""
    discord.http.Route.BASE = settings.discord_api_url.rstrip("/")
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


async def serve(settings: Settings) -> None:
    token = settings.require_discord_token()
    point_at(settings)
    async with JobService.open(settings) as jobs, EaselBot(settings, jobs) as bot:
        await bot.start(token)


def run(settings: Settings) -> None:
    discord.utils.setup_logging(level=getattr(logging, settings.log_level))
    bot_metrics.install(settings)
    asyncio.run(serve(settings))
