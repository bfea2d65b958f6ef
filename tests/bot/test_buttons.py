"""Every button of a job message, cancel while running, Retry after a failure, and a 429 on an edit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

from bot.app import EaselBot
from tests.bot.conftest import eventually
from tests.bot.test_commands import reply
from tests.bot.test_imagine import USER, job_message, job_messages
from tests.conftest import StubServer
from tests.fake_discord import FakeDiscord, Message

Start = Callable[..., Awaitable[EaselBot]]


def button(message: Message, suffix: str, n: int = 0) -> str:
    return [i for i in message.custom_ids if i.endswith(suffix)][n]


async def done_message(fake: FakeDiscord, count: int) -> Message:
    message = await eventually(lambda: job_message(fake))
    await eventually(lambda: "done" in message.content and len(message.files) == count)
    return message


async def test_each_button_of_a_finished_job(fake: FakeDiscord, start_bot: Start, stub: StubServer,
                                             start_worker) -> None:  # type: ignore[no-untyped-def]
    await start_worker(stub.url)
    bot = await start_bot()
    await fake.slash("imagine", {"prompt": "three foxes", "steps": 3, "count": 3}, user_id=USER)
    message = await done_message(fake, 3)
    job_id = message.content.split("`")[1]

    assert (await reply(await fake.click(message, button(message, ":keep", 0), user_id=USER))).startswith("Kept")
    assert (await reply(await fake.click(message, button(message, ":del", 2), user_id=USER))).startswith("Deleted")
    await eventually(lambda: len(message.files) == 2)  # the deleted image leaves the message
    assert "Deleted 1 image(s) not kept" in await reply(await fake.click(message, button(message, ":delunkept"),
                                                                         user_id=USER))
    detail = await bot.jobs.store.job(job_id)
    assert [(i.kept, i.deleted) for i in detail.images] == [(True, False), (False, True), (False, True)]

    for suffix in (":var", ":upkept", ":reroll"):
        answer = await reply(await fake.click(message, button(message, suffix), user_id=USER))
        assert answer.startswith("Queued job"), (suffix, answer)
    derived = await eventually(lambda: len(job_messages(fake)) == 4 and job_messages(fake))
    for other in derived[1:]:
        await eventually(lambda other=other: "done" in other.content, limit_s=20)
        assert f"from job `{job_id}`" in other.content
    actions = sorted(j.action for j in await bot.jobs.store.jobs(limit=10))
    assert actions == ["generate", "rerun", "upscale-kept", "variation"]


async def test_cancel_a_running_job_from_its_message(fake: FakeDiscord, start_bot: Start, start_stub,
                                                     start_worker) -> None:  # type: ignore[no-untyped-def]
    stub = await start_stub(step_ms=100)
    await start_worker(stub.url)
    await start_bot()
    await fake.slash("imagine", {"prompt": "a long one", "steps": 80}, user_id=USER)
    message = await eventually(lambda: job_message(fake))
    await eventually(lambda: "rendering" in message.content)
    await fake.click(message, button(message, ":cancel"), user_id=USER)
    await eventually(lambda: "cancelled" in message.content)
    assert stub.engine.stats.busy_s < 7  # interrupted, not run to the end (80 steps x 0.1 s)


async def test_a_failed_job_says_why_and_offers_retry(fake: FakeDiscord, start_bot: Start, stub: StubServer,
                                                      start_worker) -> None:  # type: ignore[no-untyped-def]
    await start_worker(stub.url)
    await start_bot()
    async with httpx.AsyncClient() as http:
        await http.post(f"{stub.url}/stub/faults", json={"mode": "oom", "count": 1})
    fake.rate_limit_next_edits = 1  # and Discord answers one edit with a 429 on the way
    await fake.slash("imagine", {"prompt": "too big", "steps": 3}, user_id=USER)
    message = await eventually(lambda: job_message(fake))
    await eventually(lambda: "failed" in message.content)
    assert "the GPU ran out of memory" in message.content
    assert fake.rate_limit_next_edits == 0  # the 429 happened, and the edit went through after it
    answer = await reply(await fake.click(message, button(message, ":retry"), user_id=USER))
    assert answer.startswith("Queued job")
    retried = await eventually(lambda: len(job_messages(fake)) == 2 and job_messages(fake)[1])
    await eventually(lambda: "done" in retried.content and retried.files)


async def test_progress_edits_are_coalesced_and_throttled(fake: FakeDiscord, start_bot: Start, start_stub,
                                                          start_worker) -> None:  # type: ignore[no-untyped-def]
    stub = await start_stub(step_ms=50)
    await start_worker(stub.url)  # progress events every 0.05 s: about 40 of them
    await start_bot(discord_edit_interval_s=1.0)
    await fake.slash("imagine", {"prompt": "a busy queue", "steps": 40}, user_id=USER)
    message = await eventually(lambda: job_message(fake))
    await eventually(lambda: "done" in message.content and message.files)
    assert 2 <= message.edits <= 6  # some progress shown, far fewer edits than events


async def test_the_message_shows_a_preview_while_rendering(fake: FakeDiscord, start_bot: Start, start_stub,
                                                           start_worker) -> None:  # type: ignore[no-untyped-def]
    stub = await start_stub(step_ms=50, preview_every=5)
    await start_worker(stub.url)
    await start_bot(discord_edit_interval_s=0.3)
    await fake.slash("imagine", {"prompt": "watch me", "steps": 40}, user_id=USER)
    message = await eventually(lambda: job_message(fake))
    await eventually(lambda: "preview.jpg" in message.files)
    await eventually(lambda: "done" in message.content and message.files)
    assert list(message.files) != ["preview.jpg"] and all(n.endswith(".png") for n in message.files)
