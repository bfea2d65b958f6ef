"""In a real browser: log in with the local link and with Discord, see a 64-image sweep in its grid, keep 3 by
clicking, delete the rest, upscale the kept (a linked job appears), watch a queued task's place move without a
reload, and another member refused on the first one's job."""

from __future__ import annotations

import asyncio
from typing import Any

from playwright.async_api import Browser, Page, expect

from common.tasks import Origin
from jobs.models import JobDetail
from jobs.service import JobService
from tests.web.browser.conftest import EaselWeb
from tests.web.conftest import BOB
from tests.web.fake_oauth import FakeDiscordOAuth
from web.server import local_owner

BASE: dict[str, Any] = {"kind": "txt2img", "prompt": "-", "steps": 2, "width": 64, "height": 64}
SWEEP_64 = "a fox | a cat | a heron | an owl :: cfg=3,4,5,6 seed=1,2,3,4"
CLI = Origin(source="cli")


async def stored(store: JobService, job_id: str) -> JobDetail:
    """The job once it ended and the web process stored its images (it syncs results into the shared store)."""
    async with asyncio.timeout(40):
        while True:
            detail = await store.store.job(job_id)
            if not detail.status.pending:
                return detail
            await asyncio.sleep(0.1)


async def logged_in(browser: Browser, easel_web: EaselWeb) -> Page:
    page = await (await browser.new_context()).new_page()
    await page.goto(easel_web.login_link)
    await expect(page.locator("h1")).to_contain_text("Your jobs")
    return page


async def test_curate_a_64_image_sweep_in_the_browser(browser: Browser, easel_web: EaselWeb, store: JobService,
                                                      discord_oauth: FakeDiscordOAuth) -> None:
    record = await store.recording.submit_sweep(local_owner(), CLI, SWEEP_64, BASE)
    page = await logged_in(browser, easel_web)
    job = await stored(store, record.job_id)
    assert len(job.images) == 64

    await page.goto(f"{easel_web.url}/jobs/{job.id}")
    figures = page.locator("figure.image")
    await expect(figures).to_have_count(64)
    await page.wait_for_function("[...document.querySelectorAll('figure.image img')]"
                                 ".every(i => i.complete && i.naturalWidth > 0)")
    await expect(page.locator("table.xy thead th")).to_have_count(17)  # a corner + cfg x seed columns

    for n in (0, 21, 63):  # keep 3 by clicking their stars
        await figures.nth(n).locator(".keep-toggle").click()
        await expect(figures.nth(n)).to_have_class("image kept")
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.click("#delete-not-kept")
    await expect(page.locator("#flash")).to_contain_text("deleted 61 image(s) not kept")
    await expect(figures).to_have_count(3)

    await page.click("#upscale-kept")  # the derived job's page, linked to its parent, fills in live
    await expect(page.locator("#parent-link")).to_have_text(job.id)
    derived_id = page.url.rsplit("/", 1)[1]
    await expect(page.locator("figure.image")).to_have_count(3, timeout=30_000)
    await page.goto(f"{easel_web.url}/jobs/{job.id}")
    await expect(page.locator(f'#derived a[href="/jobs/{derived_id}"]')).to_be_visible()

    other = await (await browser.new_context()).new_page()  # another member, logged in with Discord
    discord_oauth.signed_in = BOB
    await other.goto(f"{easel_web.url}/login")
    await other.click("#discord-login")
    await expect(other.locator("h1")).to_contain_text("Your jobs")
    refused = await other.goto(f"{easel_web.url}/jobs/{job.id}")
    assert refused is not None and refused.status == 403
    image = await other.goto(f"{easel_web.url}/images/{job.images[0].id}/thumb.webp")
    assert image is not None and image.status == 403


async def test_a_queued_place_moves_without_a_reload(browser: Browser, easel_web: EaselWeb,
                                                     store: JobService) -> None:
    page = await logged_in(browser, easel_web)
    ahead = [await store.recording.submit_sweep(f"discord:{n}", CLI, "a :: steps=60,61", BASE) for n in (1, 2, 3)]
    mine = await store.recording.submit_sweep(local_owner(), CLI, "b", BASE)  # fair order: after one task of each
    task = mine.task_ids[0]
    await page.goto(f"{easel_web.url}/queue")
    await page.evaluate("window.notReloaded = true")
    place = page.locator(f'tr[data-task="{task}"] td.place')
    first = int(await place.inner_text())
    assert first >= 2
    await page.wait_for_function(
        f"(() => {{ const c = document.querySelector('tr[data-task=\"{task}\"] td.place');"
        f" return c && c.textContent !== 'running' && +c.textContent < {first}; }})()", timeout=30_000)
    assert await page.evaluate("window.notReloaded") is True
    for record in [*ahead, mine]:
        await stored(store, record.job_id)
