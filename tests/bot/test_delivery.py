"""Delivery of job messages through trouble: a Redis restart mid-job."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bot.app import EaselBot
from easel.stack import LocalStack
from tests.bot.conftest import eventually
from tests.bot.test_imagine import USER, job_message
from tests.conftest import RestartableRedis
from tests.fake_discord import FakeDiscord


async def test_delivery_waits_out_a_redis_restart_and_catches_up(
    restartable_redis: RestartableRedis, fake: FakeDiscord, start_bot: Callable[..., Awaitable[EaselBot]], prefix: str
) -> None:
    url = restartable_redis.url
    with LocalStack(redis_url=url, prefix=prefix, step_ms=60, load_ms=10) as stack:  # worker processes
        bot = await start_bot(redis_url=url)
        delivery = bot.get_cog("Delivery")
        await fake.slash("imagine", {"prompt": "through a restart", "steps": 30}, user_id=USER)
        message = await eventually(lambda: job_message(fake))
        await eventually(lambda: "rendering" in message.content)
        await asyncio.to_thread(restartable_redis.stop)
        await eventually(lambda: delivery.outage.down)  # delivery noticed, and waits
        await asyncio.to_thread(restartable_redis.start)
        await asyncio.to_thread(stack.start_worker, "gpu-after", stack.webui_urls[0])
        await eventually(lambda: "done" in message.content and message.files, limit_s=40)
        assert not delivery.outage.down and delivery.outage.outages == 1
