"""The other commands, the abuse controls and the platform limits, against the fake Discord."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from bot.app import EaselBot
from common.images import read_infotext
from tests.bot.conftest import eventually
from tests.bot.test_imagine import OTHER, USER, job_message, job_messages
from tests.conftest import StubServer, png_bytes
from tests.fake_discord import GUILD_ID, FakeDiscord, Interaction

Start = Callable[..., Awaitable[EaselBot]]


async def reply(interaction: Interaction) -> str:
    await eventually(lambda: interaction.followups or (interaction.original and interaction.original.content))
    if interaction.followups:
        return interaction.followups[-1].content
    assert interaction.original is not None
    return interaction.original.content


async def test_img2img_and_upscale_from_attachments(fake: FakeDiscord, start_bot: Start, stub: StubServer,
                                                    start_worker) -> None:  # type: ignore[no-untyped-def]
    await start_worker(stub.url)
    await start_bot()
    await fake.slash("img2img", {"image": png_bytes(96, 64), "prompt": "watercolor", "denoise": 0.4, "steps": 3},
                     user_id=USER)
    message = await eventually(lambda: job_message(fake))
    await eventually(lambda: "done" in message.content and message.files)
    bad = await fake.slash("img2img", {"image": b"not an image at all", "prompt": "x"}, user_id=USER)
    assert "init_image: the file is not an image" in await reply(bad)
    neither = await fake.slash("upscale", {}, user_id=USER)
    assert "give either an image to upload or an Easel image id" in await reply(neither)
    image_id = next(i for i in message.custom_ids if i.endswith(":keep")).split(":")[2]
    await fake.slash("upscale", {"image_id": image_id, "upscaler": "Lanczos", "scale": 2.0}, user_id=USER)
    upscaled = await eventually(lambda: [m for m in job_messages(fake) if m.id != message.id])
    await eventually(lambda: "done" in upscaled[0].content and upscaled[0].files)
    link = f"https://discord.com/channels/{GUILD_ID}/{message.channel_id}/{message.id}"
    await fake.slash("upscale", {"image_id": link, "upscaler": "Lanczos"}, user_id=USER)
    await eventually(lambda: len(job_messages(fake)) == 3)
    nothing = await fake.slash("upscale", {"image_id": "https://discord.com/channels/1/2/3"}, user_id=USER)
    assert "that message shows no Easel image" in await reply(nothing)


async def test_sweep_is_confirmed_before_it_is_queued(fake: FakeDiscord, start_bot: Start, stub: StubServer,
                                                      start_worker) -> None:  # type: ignore[no-untyped-def]
    await start_worker(stub.url)
    await start_bot()
    asked = await fake.slash("sweep", {"spec": "a fox | a wolf :: cfg=5,7", "steps": 3}, user_id=USER)
    await eventually(lambda: asked.original and "makes **4** task(s)" in asked.original.content)
    assert job_messages(fake) == []  # nothing queued yet
    assert asked.original is not None
    queue_button = asked.original.custom_ids[0]
    stranger = await fake.click(asked.original, queue_button, user_id=OTHER)
    await eventually(lambda: stranger.response is not None)
    assert "Only the person who asked" in (stranger.response or {}).get("content", "")
    await fake.click(asked.original, queue_button, user_id=USER)
    message = await eventually(lambda: job_message(fake))
    await eventually(lambda: "done" in message.content and len(message.files) == 4)
    syntax = await fake.slash("sweep", {"spec": "a fox :: colour=red"}, user_id=USER)
    assert "unknown parameter 'colour'" in await reply(syntax)


async def test_cancel_button_on_a_queued_job(fake: FakeDiscord, start_bot: Start) -> None:
    await start_bot()  # no worker: the job waits
    await fake.slash("imagine", {"prompt": "patience"}, user_id=USER)
    message = await eventually(lambda: job_message(fake))
    await eventually(lambda: "in line" in message.content or "queued" in message.content)
    cancel = next(i for i in message.custom_ids if i.endswith(":cancel"))
    refused = await fake.click(message, cancel, user_id=OTHER)
    assert "only its owner can change it" in await reply(refused)
    await fake.click(message, cancel, user_id=USER)
    await eventually(lambda: "cancelled" in message.content)


async def test_queue_jobs_workers_and_cancel_commands(fake: FakeDiscord, start_bot: Start) -> None:
    bot = await start_bot()
    await fake.slash("imagine", {"prompt": "one"}, user_id=USER)
    message = await eventually(lambda: job_message(fake))
    job_id = message.content.split("`")[1]
    queue = await fake.slash("queue", {}, user_id=USER)
    text = await reply(queue)
    assert "1 task(s) in the queue, 0 worker(s) online" in text and "no worker is online" in text
    jobs = await fake.slash("jobs", {}, user_id=USER)
    assert job_id in await reply(jobs)
    workers = await fake.slash("workers", {}, user_id=USER)
    assert "No worker is online" in await reply(workers)
    refused = await fake.slash("cancel", {"job": job_id}, user_id=OTHER)
    assert "only its owner can change it" in await reply(refused)
    done = await fake.slash("cancel", {"job": job_id}, user_id=USER)
    assert "1 removed" in await reply(done)
    await eventually(lambda: "cancelled" in message.content)
    assert bot.jobs is not None


async def test_cooldown_and_banned_words_are_answered(fake: FakeDiscord, start_bot: Start) -> None:
    await start_bot(discord_cooldown_s=60, discord_banned_words=["gore"])
    banned = await fake.slash("imagine", {"prompt": "lots of GORE"}, user_id=USER)
    assert "'gore' is not allowed on this server" in await reply(banned)
    await fake.slash("imagine", {"prompt": "a calm lake"}, user_id=USER)
    await eventually(lambda: job_message(fake))
    again = await fake.slash("imagine", {"prompt": "another"}, user_id=USER)
    assert "slow down: you can queue another job in" in await reply(again)


async def test_images_over_the_upload_limit_are_sent_as_smaller_copies(
    fake: FakeDiscord, start_bot: Start, stub: StubServer, start_worker, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    await start_worker(stub.url)
    bot = await start_bot()
    monkeypatch.setattr(bot.get_cog("Delivery"), "_upload_limit", lambda guild_id: 2000)
    await fake.slash("imagine", {"prompt": "a detailed city at night", "steps": 3, "size": "portrait"}, user_id=USER)
    message = await eventually(lambda: job_message(fake))
    await eventually(lambda: "done" in message.content and message.files)
    [(name, data)] = message.files.items()
    assert name.endswith(".jpg") and len(data) <= 2000


async def test_channel_settings_for_admins_defaults_limits_and_spoilers(
    fake: FakeDiscord, start_bot: Start, stub: StubServer, start_worker  # type: ignore[no-untyped-def]
) -> None:
    await start_worker(stub.url)
    bot = await start_bot()
    manage_guild = 1 << 5
    refused = await fake.slash("settings", {"spoilers": True}, user_id=USER)
    assert "You cannot use this command here" in await reply(refused)
    changed = await fake.slash("settings", {"spoilers": True, "default_steps": 3, "max_count": 2}, user_id=USER,
                               permissions=manage_guild)
    text = await reply(changed)
    assert "spoilers: True" in text and "default_steps: 3" in text and "max_count: 2" in text
    too_many = await fake.slash("imagine", {"prompt": "x", "count": 3}, user_id=USER)
    assert "count: this channel allows at most 2 image(s) per request" in await reply(too_many)
    await fake.slash("imagine", {"prompt": "a secret garden"}, user_id=USER)
    message = await eventually(lambda: job_message(fake))
    await eventually(lambda: "done" in message.content and message.files)
    [name] = message.files
    assert name.startswith("SPOILER_")
    [summary] = await bot.jobs.store.jobs(limit=1)
    assert "Steps: 3," in (await bot.jobs.store.job(summary.id)).images[0].infotext  # the channel's default


async def test_waiting_messages_follow_the_line_and_hires_works(
    fake: FakeDiscord, start_bot: Start, start_stub, start_worker  # type: ignore[no-untyped-def]
) -> None:
    stub = await start_stub(step_ms=40)
    await start_worker(stub.url)
    await start_bot()
    await fake.slash("imagine", {"prompt": "first", "steps": 20, "hires": True}, user_id=USER)
    first = await eventually(lambda: job_message(fake))
    await fake.slash("imagine", {"prompt": "second", "steps": 5}, user_id=USER)
    second = await eventually(lambda: len(job_messages(fake)) == 2 and job_messages(fake)[1])
    await eventually(lambda: "#1 in line" in second.content)
    await eventually(lambda: "done" in second.content and second.files, limit_s=30)
    await eventually(lambda: "done" in first.content)
    [png] = first.files.values()
    assert "Hires upscale: 2.0" in (read_infotext(png) or "")


async def test_admins_pause_and_resume_a_worker(fake: FakeDiscord, start_bot: Start, stub: StubServer,
                                                start_worker) -> None:  # type: ignore[no-untyped-def]
    await start_worker(stub.url)
    bot = await start_bot()
    manage_guild = 1 << 5
    refused = await fake.slash("worker", {"action": "pause", "name": "test-gpu"}, user_id=USER)
    assert "You cannot use this command here" in await reply(refused)
    paused = await fake.slash("worker", {"action": "pause", "name": "test-gpu"}, user_id=USER, permissions=manage_guild)
    assert "test-gpu`: paused" in await reply(paused)
    await eventually(lambda: _state(bot, "paused"))
    await fake.slash("imagine", {"prompt": "waits"}, user_id=USER)
    message = await eventually(lambda: job_message(fake))
    await eventually(lambda: "in line" in message.content)
    await fake.slash("worker", {"action": "resume", "name": "test-gpu"}, user_id=USER, permissions=manage_guild)
    await eventually(lambda: "done" in message.content and message.files)


async def _state(bot: EaselBot, state: str) -> bool:
    return any(w.state == state for w in await bot.jobs.client.registry.live())


async def test_control_characters_and_lone_surrogates_are_refused_with_an_answer(fake: FakeDiscord,
                                                                                  start_bot: Start) -> None:
    await start_bot()
    imagine = await fake.slash("imagine", {"prompt": "a fox\x00 in snow"}, user_id=USER)
    assert "prompt: contains a control character U+0000 at position 6; remove it" in await reply(imagine)
    negative = await fake.slash("imagine", {"prompt": "a fox", "negative": "blurry\udcff"}, user_id=USER)
    assert "negative_prompt: contains a lone surrogate U+DCFF at position 7" in await reply(negative)
    sweep = await fake.slash("sweep", {"spec": 'a fox :: sampler="Euler\x1b"'}, user_id=USER)
    assert "sweep: contains a control character U+001B at position 24; remove it" in await reply(sweep)
    assert not job_messages(fake)
