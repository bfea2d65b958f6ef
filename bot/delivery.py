"""Keep every job's Discord message in step with the job, through the bot token (works after the 15-minute
interaction token is gone, and after a restart: the message ids live in the job store).

Events come from the stream through the ``bot`` consumer group, so a bot that was down catches up on start.
Edits are coalesced per message and sent at most once every ``discord_edit_interval_s``; an edit that would
not change the message is not sent.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from typing import TYPE_CHECKING, Any

import discord
from PIL import Image

from bot import render
from bot.keys import MAX_FILES
from bot.views import job_view
from common.events import TERMINAL, EventConsumer, EventType, TaskEvent
from common.jobs.service import JobService
from common.jobs.views import JobDetail

if TYPE_CHECKING:
    from bot.app import EaselBot

log = logging.getLogger(__name__)


class Delivery:
    """One per bot: the background task that renders job messages."""

    def __init__(self, bot: EaselBot, jobs: JobService, *, interval_s: float) -> None:
        self.bot = bot
        self.jobs = jobs
        self.interval_s = interval_s
        self.live: dict[str, render.LiveState] = {}
        self._last: dict[str, tuple[float, str]] = {}  # job id -> (when, what) of the last edit
        self._flushing: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()
        self.consumer = EventConsumer(jobs.client.redis, jobs.client.keys, group="bot")

    async def run(self) -> None:
        await self.consumer.ensure_group(from_start=False)
        await self.jobs.reconcile()
        while True:
            try:
                for entry_id, event in await self.consumer.read(block_ms=1000):
                    await self.handle(event)
                    await self.consumer.ack(entry_id)
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad event or a Discord hiccup must not stop delivery
                log.exception("delivery step failed")
                await asyncio.sleep(1)

    async def handle(self, event: TaskEvent) -> None:
        state = self.live.setdefault(event.job_id, render.LiveState())
        if event.type == EventType.PROGRESS and event.step is not None:
            state.steps[event.task_id] = (event.step, event.steps or 0)
            if event.has_preview:
                state.preview = await self.jobs.client.events.preview(event.task_id) or state.preview
        elif event.type in (EventType.STARTED, EventType.SWITCHING):
            state.running.add(event.task_id)
        elif event.type == EventType.QUEUED:
            state.positions[event.task_id] = event.position
        if event.type in TERMINAL:
            state.steps.pop(event.task_id, None)
            state.running.discard(event.task_id)
            await self.jobs.sync(event.job_id)
        self.schedule(event.job_id, urgent=event.type in TERMINAL)
        if event.type in (EventType.STARTED, *TERMINAL):  # the line moved: waiting jobs show their new place
            for job_id, other in list(self.live.items()):
                if job_id != event.job_id and not other.running and not other.steps:
                    self.schedule(job_id)

    def schedule(self, job_id: str, *, urgent: bool = False) -> None:
        """Render the job's message soon, coalescing whatever else happens meanwhile (one flusher per job)."""
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

    async def refresh(self, job_id: str) -> None:
        """Edit the job's message to show where the job is now."""
        origin = await self.jobs.origin(job_id)
        if origin.channel_id is None or origin.message_id is None:
            return  # not a Discord job, or its message is not posted yet
        detail = await self.jobs.job(job_id)
        state = self.live.setdefault(job_id, render.LiveState())
        if detail.status in ("queued", "running"):
            await self._estimate(detail, state)
        text = render.content(detail, state)
        finished = detail.status not in ("queued", "running")
        new_preview = not finished and state.preview is not None and state.preview is not state.preview_sent
        if self._last.get(job_id, (0.0, ""))[1] == text and not finished and not new_preview:
            return
        message = self.bot.get_partial_messageable(origin.channel_id).get_partial_message(origin.message_id)
        kwargs: dict[str, Any] = {"content": text}
        if new_preview and state.preview is not None:  # watch it render: the sampler's picture so far
            kwargs["attachments"] = [discord.File(io.BytesIO(state.preview), filename="preview.jpg")]
            state.preview_sent = state.preview
        if finished:
            kwargs["attachments"] = await self._files(detail, origin.guild_id, origin.channel_id)
            kwargs["view"] = job_view(detail)
        await message.edit(**kwargs)
        self._last[job_id] = (time.monotonic(), text)
        if finished:
            self.live.pop(job_id, None)

    async def _estimate(self, detail: JobDetail, state: render.LiveState) -> None:
        pending = [t.id for t in detail.tasks if t.status in ("queued", "running")]
        estimates = await self.jobs.client.estimates()
        starts = [start for t in pending if t in estimates and (start := estimates[t].start_ms) is not None]
        state.positions.update({t: estimates[t].position for t in pending if t in estimates})
        state.eta_ms = min(starts) if starts else None

    async def _files(self, detail: JobDetail, guild_id: int | None, channel_id: int) -> list[discord.File]:
        limit = self._upload_limit(guild_id)
        spoiler = await self._spoilers(channel_id)
        files = []
        for image in [i for i in detail.images if not i.deleted][:MAX_FILES]:
            data = await self.jobs.image_bytes(image.id)
            name = f"{image.id.replace('.', '_')}.png"
            if len(data) > limit:
                data, name = await asyncio.to_thread(shrink, data, limit), name.replace(".png", ".jpg")
            files.append(discord.File(io.BytesIO(data), filename=name, spoiler=spoiler))
        return files

    async def _spoilers(self, channel_id: int) -> bool:
        """The channel asked for spoilers, and is not age-restricted (where they would only get in the way)."""
        if not (await self.jobs.channel_settings(channel_id)).spoilers:
            return False
        channel = self.bot.get_channel(channel_id)
        return not (isinstance(channel, discord.TextChannel) and channel.is_nsfw())

    def _upload_limit(self, guild_id: int | None) -> int:
        guild = self.bot.get_guild(guild_id) if guild_id else None
        return guild.filesize_limit if guild is not None else 10 * 1024 * 1024


def shrink(png: bytes, limit: int) -> bytes:
    """A JPEG copy under ``limit`` bytes (the full PNG stays in the store); smaller each try."""
    with Image.open(io.BytesIO(png)) as img:
        image = img.convert("RGB")
    quality, scale = 90, 1.0
    while True:
        out = io.BytesIO()
        size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
        image.resize(size).save(out, format="JPEG", quality=quality)
        if out.tell() <= limit or (quality <= 40 and scale <= 0.1):
            return out.getvalue()
        quality, scale = max(40, quality - 15), scale * (0.85 if quality <= 40 else 1.0)

