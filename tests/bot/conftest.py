"""The real discord.py client against the local fake Discord, with a real Redis, worker and stub WebUI."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import discord
import pytest
from discord.gateway import DiscordWebSocket

from bot.app import EaselBot
from bot.main import point_at
from common.settings import Settings
from jobs.service import JobService
from tests.fake_discord import GUILD_ID, FakeDiscord


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    server = FakeDiscord()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def start_bot(fake: FakeDiscord, make_settings: Callable[..., Settings],
                    tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[EaselBot]]]:
    """Start (and, for restart tests, start again) the bot against the fake; everything is closed after."""
    saved = (discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
    running: list[tuple[EaselBot, asyncio.Task[None], contextlib.AsyncExitStack]] = []

    async def start(**overrides: Any) -> EaselBot:
        settings = make_settings(**{
            "discord_token": "fake-token", "discord_api_url": f"{fake.url}/api/v10",
            "discord_gateway_url": f"{fake.url.replace('http', 'ws')}/gateway", "discord_guild_ids": [GUILD_ID],
            "discord_edit_interval_s": 0.1, "discord_cooldown_s": 0, "data_dir": str(tmp_path / "bot-data"),
            **overrides,
        })
        point_at(settings)
        stack = contextlib.AsyncExitStack()
        jobs = await stack.enter_async_context(JobService.open(settings))
        bot = EaselBot(settings, jobs)
        fake.ready.clear()
        task = asyncio.create_task(bot.start("fake-token"))
        running.append((bot, task, stack))
        async with asyncio.timeout(15):
            while not (fake.ready.is_set() and bot.is_ready() and fake.commands):
                if task.done():
                    task.result()  # the bot could not start: show why
                await asyncio.sleep(0.02)
        return bot

    yield start
    for bot, task, stack in running:
        await bot.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await stack.aclose()
    discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved


async def eventually(check: Callable[[], Any], limit_s: float = 15) -> Any:
    async with asyncio.timeout(limit_s):
        while True:
            value = check()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            await asyncio.sleep(0.05)
