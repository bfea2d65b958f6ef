"""With the queue down, commands and buttons answer "the queue is unreachable" instead of "This interaction failed";
and the gallery link of a waiting job."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bot.app import EaselBot
from bot.keys import QUEUE_UNREACHABLE
from tests.bot.conftest import eventually
from tests.bot.test_commands import reply
from tests.bot.test_imagine import USER, job_message, job_messages
from tests.conftest import RestartableRedis
from tests.fake_discord import FakeDiscord

Start = Callable[..., Awaitable[EaselBot]]


async def test_commands_and_buttons_answer_while_the_queue_is_down(
    restartable_redis: RestartableRedis, fake: FakeDiscord, start_bot: Start
) -> None:
    await start_bot(redis_url=restartable_redis.url, web_url="http://127.0.0.1:8765")
    await fake.slash("imagine", {"prompt": "waits for a worker"}, user_id=USER)
    message = await eventually(lambda: job_message(fake))
    job_id = message.content.split("`")[1]
    [link] = [c for row in message.components for c in row["components"] if c.get("style") == 5]
    assert link["url"] == f"http://127.0.0.1:8765/jobs/{job_id}"  # on the waiting job's message too

    await asyncio.to_thread(restartable_redis.stop)
    for name, options in (("imagine", {"prompt": "during the outage"}), ("queue", {}), ("workers", {}),
                          ("cancel", {"job": job_id})):
        answer = await reply(await fake.slash(name, options, user_id=USER))
        assert answer == QUEUE_UNREACHABLE, (name, answer)
    cancel = next(i for i in message.custom_ids if i.endswith(":cancel"))
    assert await reply(await fake.click(message, cancel, user_id=USER)) == QUEUE_UNREACHABLE
    assert len(job_messages(fake)) == 1  # nothing half-queued

    await asyncio.to_thread(restartable_redis.start)
    assert (await reply(await fake.click(message, cancel, user_id=USER))) == "Cancelling."
    await eventually(lambda: "cancelled" in message.content)
