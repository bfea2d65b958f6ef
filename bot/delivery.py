"""Keep every job's Discord message in step with the job, through the bot token (works after the 15-minute
interaction token is gone, and after a restart: the message ids live in the job store).

Events come from the stream through the ``bot`` consumer group, so a bot that was down catches up on start; the live
state of each job (places in line, ETAs, progress, previews) is kept by the job layer's tracker. Edits are coalesced
per message and sent at most once every ``discord_edit_interval_s``; an edit that would not change the message is not
sent. Redis outages are waited out; afterwards delivery catches up (stores what arrived, puts back what was lost).

A finished job of more than four images shows one page of them at a time, as a 2x2 grid (:mod:`bot.imaging`); the
page a message shows is remembered here, and every paged button carries its page, so a restart loses nothing.

Delivery is a cog that owns its background task: started in ``cog_load``, cancelled (with its pending edits) in
``cog_unload``, which the bot runs as it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from bot import imaging, render
from bot.keys import MAX_FILES
from bot.ports import DELIVERY
from bot.views import job_view
from common.errors import EaselError, NotFound, QueueUnreachable
from common.events import TERMINAL, EventConsumer, EventType, TaskEvent
from jobs.models import JobDetail, TaskStatus
from jobs.service import JobService
from jobs.tracker import JobTracker

if TYPE_CHECKING:
    from bot.app import EaselBot

log = logging.getLogger(__name__)


class Delivery(commands.Cog, name=DELIVERY):
    """One per bot: the background task that renders job messages."""

    def __init__(self, bot: commands.Bot, jobs: JobService, *, interval_s: float,
                 gallery: Callable[[str], str | None] = lambda job_id: None) -> None:
        self.bot = bot
        self.jobs = jobs
        self.interval_s = interval_s
        self.gallery = gallery  # job id -> its page in the web gallery, if there is one
        self.pages: dict[str, int] = {}  # job id -> the page its message shows (paged jobs)
        self._serving: asyncio.Task[None] | None = None
        self.trackers: dict[str, JobTracker] = {}  # jobs with a message, while they run
        self._preview_sent: dict[str, bytes] = {}  # job id -> the preview its message shows
        self._last: dict[str, tuple[float, str]] = {}  # job id -> (when, what) of the last edit
        self._flushing: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()
        self.consumer = EventConsumer(jobs.client.redis, jobs.client.keys, group="bot")
        self.outage = jobs.outage("bot delivery")
        self._caught_up_after = -1  # the outage count when delivery last caught up

    async def cog_load(self) -> None:
        self._serving = asyncio.create_task(self._serve(), name="delivery")

    async def cog_unload(self) -> None:
        if self._serving is not None:
            self._serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._serving
        await self.close()

    async def _serve(self) -> None:
        await self.bot.wait_until_ready()
        await self.run()

    async def run(self) -> None:
        while True:
            try:
                if self._caught_up_after != self.outage.outages:
                    await self._catch_up()
                for entry_id, event in await self.outage.call(partial(self.consumer.read, block_ms=1000)):
                    await self.handle(event)
                    await self.outage.call(partial(self.consumer.ack, entry_id))
            except asyncio.CancelledError:
                raise
            except QueueUnreachable as exc:  # the bot stays up: keep waiting, with a fresh limit
                log.error("%s; delivery keeps waiting for it", exc)
                self.outage, self.trackers = self.jobs.outage("bot delivery"), {}
            except Exception:  # one bad event or a Discord hiccup must not stop delivery
                log.exception("delivery step failed")
                await asyncio.sleep(1)

    async def _catch_up(self) -> None:
        """At start and after an outage: the consumer group exists (Redis may have come back empty), results that
        arrived meanwhile are stored, and tasks the queue lost are put back."""
        await self.outage.call(partial(self.consumer.ensure_group, from_start=False))
        await self.outage.call(self.jobs.recording.reconcile)
        self._caught_up_after = self.outage.outages

    async def handle(self, event: TaskEvent) -> None:
        tracker = self.trackers.get(event.job_id)
        if tracker is not None:
            await tracker.apply(event)
        if event.type in TERMINAL:
            await self.outage.call(partial(self.jobs.recording.sync, event.job_id))
        self.schedule(event.job_id, urgent=event.type in TERMINAL)
        if event.type in (EventType.STARTED, *TERMINAL):  # the line moved: waiting jobs show their new place
            for job_id, other in list(self.trackers.items()):
                if job_id != event.job_id and all(t.status != TaskStatus.RUNNING for t in other.view.tasks.values()):
                    self.schedule(job_id)

    async def close(self) -> None:
        """Stop the pending edits (they may be waiting out an outage): nothing of delivery outlives the bot."""
        flushing = [task for task in self._flushing.values() if not task.done()]
        for task in flushing:
            task.cancel()
        await asyncio.gather(*flushing, return_exceptions=True)
        self._flushing.clear()

    def schedule(self, job_id: str, *, urgent: bool = False, page: int | None = None) -> None:
        """Render the job's message soon (at ``page``, if given), coalescing whatever else happens meanwhile (one
        flusher per job)."""
        if page is not None:
            self.pages[job_id] = page
        self._dirty.add(job_id)
        if job_id not in self._flushing or self._flushing[job_id].done():
            self._flushing[job_id] = asyncio.create_task(self._flush(job_id, urgent))

    async def _flush(self, job_id: str, urgent: bool) -> None:
        while job_id in self._dirty:  # news that arrives during an edit (or a 429 wait) gets its own edit
            last_at, _ = self._last.get(job_id, (0.0, ""))
            wait = 0.0 if urgent and not last_at else max(0.0, last_at + self.interval_s - time.monotonic())
            await asyncio.sleep(wait)
            self._dirty.discard(job_id)
            try:
                await self.refresh(job_id)
            except discord.HTTPException as exc:
                log.warning("could not update the message of job %s: %s", job_id, exc)
            except EaselError as exc:  # e.g. the job was deleted, or Redis stayed away too long
                log.warning("could not follow job %s: %s", job_id, exc)
                self.trackers.pop(job_id, None)

    async def show_page(self, job_id: str, page: int) -> None:
        """Show another page of a finished job, now (the owner clicked previous or next)."""
        self.pages[job_id] = page
        self._dirty.discard(job_id)
        await self.refresh(job_id)

    async def refresh(self, job_id: str) -> None:
        """Edit the job's message to show where the job is now."""
        try:
            origin = await self.jobs.store.origin(job_id)
        except NotFound:
            return  # a job of another front end's store
        if origin.channel_id is None or origin.message_id is None:
            return  # not a Discord job, or its message is not posted yet
        detail = await self._current(job_id)
        live = self.trackers[job_id].view if job_id in self.trackers else None
        page = render.clamp_page(detail, self.pages.get(job_id, 1))
        text = render.content(detail, live, page)
        finished = not detail.status.pending
        preview = live.preview if live is not None else None
        new_preview = not finished and preview is not None and preview is not self._preview_sent.get(job_id)
        if self._last.get(job_id, (0.0, ""))[1] == text and not finished and not new_preview:
            return
        message = self.bot.get_partial_messageable(origin.channel_id).get_partial_message(origin.message_id)
        kwargs: dict[str, Any] = {"content": text}
        if new_preview and preview is not None:  # watch it render: the sampler's picture so far
            kwargs["attachments"] = [discord.File(io.BytesIO(preview), filename="preview.jpg")]
            self._preview_sent[job_id] = preview
        if finished:
            kwargs["attachments"] = await self._files(detail, page, origin.guild_id, origin.channel_id)
            kwargs["view"] = job_view(detail, page=page, gallery_url=self.gallery(job_id))
        await message.edit(**kwargs)
        self._last[job_id] = (time.monotonic(), text)
        if finished:
            self.trackers.pop(job_id, None)
            self._preview_sent.pop(job_id, None)

    async def _current(self, job_id: str) -> JobDetail:
        """The job as stored, its tracker refreshed while it runs; an ending the tracker found (an event we missed)
        is stored first, so the message completes."""
        detail = await self.jobs.store.job(job_id)
        if not detail.status.pending:
            return detail
        tracker = self.trackers.get(job_id)
        if tracker is None:
            tracker = self.trackers[job_id] = self.jobs.track(detail, outage=self.outage)
        await tracker.refresh()
        if any(tracker.view.tasks[t.id].done for t in detail.tasks if t.status.pending):
            await self.outage.call(partial(self.jobs.recording.sync, job_id))
            detail = await self.jobs.store.job(job_id)
        return detail

    async def _files(self, detail: JobDetail, page: int, guild_id: int | None, channel_id: int) -> list[discord.File]:
        limit = self._upload_limit(guild_id)
        spoiler = await self._spoilers(channel_id)
        if render.is_paged(detail):
            grid = await self._grid(detail, page, limit)
            return [discord.File(io.BytesIO(grid), filename=f"page-{page}.jpg", spoiler=spoiler)]
        files = []
        for image in [i for i in detail.images if not i.deleted][:MAX_FILES]:
            data = await self.jobs.store.image_bytes(image.id)
            name = f"{image.id.replace('.', '_')}.png"
            if len(data) > limit:
                data, name = await asyncio.to_thread(imaging.shrink, data, limit), name.replace(".png", ".jpg")
            files.append(discord.File(io.BytesIO(data), filename=name, spoiler=spoiler))
        return files

    async def _grid(self, detail: JobDetail, page: int, limit: int) -> bytes:
        cells = [imaging.Cell(number, None if image.deleted else await self._png(image.id), kept=image.kept,
                              deleted=image.deleted) for number, image in render.on_page(detail, page)]
        return await asyncio.to_thread(imaging.fit, cells, limit)

    async def _png(self, image_id: str) -> bytes | None:
        """The image's PNG; None (an empty cell) once retention purged it, so the rest of the page still shows."""
        try:
            return await self.jobs.store.image_bytes(image_id)
        except (NotFound, FileNotFoundError):
            return None

    async def _spoilers(self, channel_id: int) -> bool:
        """The channel asked for spoilers, and is not age-restricted (where they would only get in the way)."""
        if not (await self.jobs.store.channel_settings(channel_id)).spoilers:
            return False
        channel = self.bot.get_channel(channel_id)
        return not (isinstance(channel, discord.TextChannel) and channel.is_nsfw())

    def _upload_limit(self, guild_id: int | None) -> int:
        guild = self.bot.get_guild(guild_id) if guild_id else None
        return guild.filesize_limit if guild is not None else 10 * 1024 * 1024



async def setup(bot: EaselBot) -> None:
    await bot.add_cog(Delivery(bot, bot.jobs, interval_s=bot.settings.discord_edit_interval_s,
                               gallery=bot.settings.job_page_url))
