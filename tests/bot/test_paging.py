"""A job of more than four images pages through them in its message: a 64-image sweep, page by page, curated on
page 3, after a restart of the bot too; every action checks its owner; the gallery link; Discord's limits."""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable

from PIL import Image, ImageStat

from bot.app import EaselBot
from tests.bot.conftest import eventually
from tests.bot.test_commands import reply
from tests.bot.test_imagine import OTHER, USER, job_message
from tests.conftest import StubServer
from tests.fake_discord import FakeDiscord, Message

Start = Callable[..., Awaitable[EaselBot]]
WEB = "https://easel.example/gallery"
SWEEP = "a fox | a wolf | a bear | a hare :: seed=" + ",".join(str(n) for n in range(1, 17))


def custom_id(message: Message, prefix: str) -> str:
    return next(i for i in message.custom_ids if i.startswith(prefix))


def buttons(message: Message) -> list[dict[str, object]]:
    return [c for row in message.components for c in row["components"]]


def check_limits(message: Message) -> None:
    """What Discord would refuse: more than 5 rows of 5, a custom_id over 100 characters, twice the same id."""
    assert len(message.components) <= 5 and all(len(row["components"]) <= 5 for row in message.components)
    assert all(len(i) <= 100 for i in message.custom_ids) and len(set(message.custom_ids)) == len(message.custom_ids)
    assert len(message.files) <= 10 and all(len(data) <= 10 * 1024 * 1024 for data in message.files.values())


async def sweep_of_64(fake: FakeDiscord) -> Message:
    asked = await fake.slash("sweep", {"spec": SWEEP, "steps": 1}, user_id=USER)
    await eventually(lambda: asked.original is not None and "makes **64** task(s)" in asked.original.content)
    assert asked.original is not None
    await fake.click(asked.original, asked.original.custom_ids[0], user_id=USER)
    message = await eventually(lambda: job_message(fake))
    await eventually(lambda: "done: 64 image(s)" in message.content, limit_s=50)
    return message


async def click(fake: FakeDiscord, message: Message, custom: str, user_id: int = USER) -> str:
    return await reply(await fake.click(message, custom, user_id=user_id))


async def test_a_64_image_sweep_pages_and_is_curated_page_by_page(
    fake: FakeDiscord, start_bot: Start, stub: StubServer, start_worker  # type: ignore[no-untyped-def]
) -> None:
    await start_worker(stub.url)
    bot = await start_bot(web_url=WEB)
    message = await sweep_of_64(fake)
    job_id = message.content.split("`")[1]
    await eventually(lambda: "page 1 of 16" in message.content)
    assert "images 1–4 of 64" in message.content and list(message.files) == ["page-1.jpg"]
    check_limits(message)
    link = next(b for b in buttons(message) if b.get("style") == 5)
    assert link["url"] == f"{WEB}/jobs/{job_id}" and link["label"] == "Open in gallery"
    with Image.open(io.BytesIO(message.files["page-1.jpg"])) as grid:
        assert grid.format == "JPEG" and grid.width == grid.height > 1000  # 2x2 cells of 512

    for page in (2, 3):  # next, next
        await fake.click(message, custom_id(message, f"easel:page:{job_id}:{page}:next"), user_id=USER)
        await eventually(lambda page=page: f"page {page} of 16" in message.content)
    assert "images 9–12 of 64" in message.content and list(message.files) == ["page-3.jpg"]
    keeps = [f"easel:pimg:{job_id}:3:{n}:keep" for n in (9, 10, 11, 12)]
    assert [i for i in message.custom_ids if ":keep" in i] == keeps
    check_limits(message)

    assert (await click(fake, message, f"easel:pimg:{job_id}:3:10:keep")).startswith("Kept")
    await eventually(lambda: "#10 kept" in message.content and "page 3 of 16" in message.content)
    assert (await click(fake, message, f"easel:pimg:{job_id}:3:11:del")).startswith("Deleted")
    await eventually(lambda: "#11 deleted" in message.content)
    detail = await bot.jobs.store.job(job_id)
    assert [n for n, i in enumerate(detail.images, start=1) if i.kept] == [10]
    assert [n for n, i in enumerate(detail.images, start=1) if i.deleted] == [11]
    keep10 = next(b for b in buttons(message) if b.get("custom_id") == f"easel:pimg:{job_id}:3:10:keep")
    assert keep10["style"] == 3  # green: kept
    assert all(b.get("disabled") for b in buttons(message) if ":3:11:" in str(b.get("custom_id")))
    with Image.open(io.BytesIO(message.files["page-3.jpg"])) as grid:  # the deleted image's cell is left dark
        cell = grid.width // 2
        deleted = ImageStat.Stat(grid.crop((0, cell + 40, cell - 8, grid.height - 40)).convert("L")).mean[0]
        shown = ImageStat.Stat(grid.crop((0, 60, cell - 8, cell - 60)).convert("L")).mean[0]
        assert deleted < 60 < shown

    await fake.click(message, custom_id(message, f"easel:page:{job_id}:2:prev"), user_id=USER)
    await eventually(lambda: "page 2 of 16" in message.content and list(message.files) == ["page-2.jpg"])
    for _ in range(14):  # to the last page, where next is off
        nxt = next(i for i in message.custom_ids if i.endswith(":next"))
        page = int(nxt.split(":")[3])
        await fake.click(message, nxt, user_id=USER)
        await eventually(lambda page=page: f"page {page} of 16" in message.content)
        if page == 16:
            break
    assert "images 61–64 of 64" in message.content
    assert next(b for b in buttons(message) if str(b.get("custom_id")).endswith(":next")).get("disabled")


async def test_paged_buttons_work_after_a_restart_and_refuse_other_members(
    fake: FakeDiscord, start_bot: Start, stub: StubServer, start_worker  # type: ignore[no-untyped-def]
) -> None:
    await start_worker(stub.url)
    first = await start_bot()
    message = await sweep_of_64(fake)
    job_id = message.content.split("`")[1]
    await eventually(lambda: "page 1 of 16" in message.content)
    assert not any(b.get("style") == 5 for b in buttons(message))  # no EASEL_WEB_URL: no gallery link
    page_one = list(message.custom_ids)

    for custom in page_one:  # every action but Parameters is the owner's (or a moderator's)
        answer = await click(fake, message, custom, user_id=OTHER)
        if custom.endswith(":params"):
            assert "Steps: 1" in answer
        else:
            assert "only its owner can change it" in answer, custom
    assert "page 1 of 16" in message.content
    detail = await first.jobs.store.job(job_id)
    assert not any(i.kept or i.deleted for i in detail.images) and len(detail.images) == 64

    await first.close()
    bot = await start_bot()  # nothing cached: the ids in the buttons are all it has
    for page in (2, 3):
        await fake.click(message, f"easel:page:{job_id}:{page}:next", user_id=USER)
        await eventually(lambda page=page: f"page {page} of 16" in message.content)
    assert (await click(fake, message, f"easel:pimg:{job_id}:3:12:keep")).startswith("Kept")
    await eventually(lambda: "#12 kept" in message.content)
    assert "only its owner" in await click(fake, message, f"easel:pimg:{job_id}:3:9:del", user_id=OTHER)
    manage_messages = 1 << 13  # a moderator may
    assert (await reply(await fake.click(message, f"easel:pimg:{job_id}:3:9:del", user_id=OTHER,
                                         permissions=manage_messages))).startswith("Deleted")
    await eventually(lambda: "#9 deleted" in message.content)
    detail = await bot.jobs.store.job(job_id)
    assert [(n, i.kept, i.deleted) for n, i in enumerate(detail.images, start=1) if i.kept or i.deleted] == [
        (9, False, True), (12, True, False)]
    upscaled = await click(fake, message, f"easel:pimg:{job_id}:3:12:up")
    assert upscaled.startswith("Queued job")
