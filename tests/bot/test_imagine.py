"""/imagine end to end: deferred answer, the job's own message going queued -> done with images and buttons."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tests.bot.conftest import eventually
from tests.conftest import StubServer
from tests.fake_discord import FakeDiscord, Message

USER = 900_000_000_000_000_010
OTHER = 900_000_000_000_000_011


def job_messages(fake: FakeDiscord) -> list[Message]:
    return [m for m in fake.channel_messages() if m.via_token is None]


def job_message(fake: FakeDiscord) -> Message | None:
    return next((m for m in fake.channel_messages() if m.via_token is None), None)


async def test_imagine_posts_a_job_message_that_ends_with_images_and_buttons(
    fake: FakeDiscord, start_bot: Callable[..., Awaitable[object]], stub: StubServer, start_worker  # type: ignore[no-untyped-def]
) -> None:
    await start_worker(stub.url)
    await start_bot()
    interaction = await fake.slash("imagine", {"prompt": "a red fox in snow", "steps": 4, "count": 2},
                                   user_id=USER)
    await eventually(lambda: interaction.response_type == 5)  # deferred within the 3 s
    await eventually(lambda: interaction.original is not None and "Queued as job" in interaction.original.content)
    message = await eventually(lambda: job_message(fake))
    assert "a red fox in snow" in message.content
    await eventually(lambda: "done" in message.content and len(message.files) == 2)
    assert all(name.endswith(".png") for name in message.files)
    ids = message.custom_ids
    assert any(i.endswith(":keep") for i in ids) and any(i.endswith(":reroll") for i in ids)


async def finished(fake: FakeDiscord, *, count: int = 1) -> Message:
    message = await eventually(lambda: job_message(fake))
    await eventually(lambda: "done" in message.content and len(message.files) == count)
    return message


async def test_buttons_work_for_the_owner_and_refuse_others(
    fake: FakeDiscord, start_bot: Callable[..., Awaitable[object]], stub: StubServer, start_worker  # type: ignore[no-untyped-def]
) -> None:
    await start_worker(stub.url)
    await start_bot()
    await fake.slash("imagine", {"prompt": "a lighthouse", "steps": 3}, user_id=USER)
    message = await finished(fake)
    keep = next(i for i in message.custom_ids if i.endswith(":keep"))
    refused = await fake.click(message, keep, user_id=OTHER)
    await eventually(lambda: refused.original)  # answered at once, privately, by the button's interaction_check
    assert refused.original is not None and "only its owner can change it" in refused.original.content
    assert (refused.response or {}).get("flags") == 64  # ephemeral
    kept = await fake.click(message, keep, user_id=USER)
    await eventually(lambda: kept.followups)
    assert kept.followups[0].content.startswith("Kept")
    params = await fake.click(message, next(i for i in message.custom_ids if i.endswith(":params")), user_id=OTHER)
    await eventually(lambda: params.followups)
    assert "Steps: 3" in params.followups[0].content  # anyone may read the parameters

    upscale = next(i for i in message.custom_ids if i.endswith(":up"))
    clicked = await fake.click(message, upscale, user_id=USER)
    await eventually(lambda: clicked.followups)
    derived = await eventually(lambda: [m for m in fake.channel_messages()
                                        if m.via_token is None and m.id != message.id])
    await eventually(lambda: "done" in derived[0].content and derived[0].files)
    assert "from job" in derived[0].content  # links to its parent


async def test_bad_options_are_answered_not_dropped(
    fake: FakeDiscord, start_bot: Callable[..., Awaitable[object]], stub: StubServer, start_worker  # type: ignore[no-untyped-def]
) -> None:
    await start_worker(stub.url)
    await start_bot()
    too_many = await fake.slash("imagine", {"prompt": "x", "steps": 140}, user_id=USER)
    await eventually(lambda: too_many.followups)
    assert "steps: must be between 1 and 100, got 140" in too_many.followups[0].content
    unknown = await fake.slash("imagine", {"prompt": "x", "checkpoint": "nope"}, user_id=USER)
    await eventually(lambda: unknown.followups)
    assert "checkpoint: no worker has 'nope'" in unknown.followups[0].content
    assert job_message(fake) is None


async def test_delivery_survives_an_expired_token_a_429_and_a_restart_mid_job(
    fake: FakeDiscord, start_bot: Callable[..., Awaitable[object]], start_stub, start_worker  # type: ignore[no-untyped-def]
) -> None:
    stub = await start_stub(step_ms=60)
    await start_worker(stub.url)
    first = await start_bot()
    interaction = await fake.slash("imagine", {"prompt": "a slow one", "steps": 40}, user_id=USER)
    message = await eventually(lambda: job_message(fake))
    await eventually(lambda: "rendering" in message.content)
    await first.close()  # the bot goes down while the job runs ...
    fake.expire(interaction)  # ... for longer than the interaction token lives: only the bot token works now
    fake.rate_limit_next_edits = 1
    await asyncio.sleep(3)  # the job finishes while no bot is connected
    assert "done" not in message.content
    await start_bot()
    await eventually(lambda: "done" in message.content and message.files, limit_s=30)
    assert len(message.files) == 1 and len(job_messages(fake)) == 1  # completed once, nothing posted twice
    app = fake.commands[0]["application_id"]
    assert ("PATCH", f"/api/v10/webhooks/{app}/{interaction.token}/messages/@original") in fake.requests
