"""``/queue``, ``/jobs``, ``/cancel``, ``/workers`` and ``/worker``: looking at and steering one's work and the pool."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.answers import is_moderator
from bot.keys import owner_of
from common.queue import messages
from jobs.models import JobSummary

if TYPE_CHECKING:
    from bot.app import EaselBot

PAGE = 10


class Pages(discord.ui.View):
    """Older / Newer through a user's jobs (private to them, so it may lapse)."""

    def __init__(self, jobs: list[JobSummary]) -> None:
        super().__init__(timeout=600)
        self.jobs, self.page = jobs, 0

    def render(self) -> str:
        shown = self.jobs[self.page * PAGE:(self.page + 1) * PAGE]
        lines = [f"`{j.id}` {j.action} · {j.status} · {j.images} image(s), {j.kept} kept · <t:{j.created_ms // 1000}:R>"
                 for j in shown]
        pages = max(1, -(-len(self.jobs) // PAGE))
        return "\n".join(lines or ["No jobs yet: try /imagine."]) + f"\npage {self.page + 1}/{pages}"

    @discord.ui.button(label="◀ Newer")
    async def newer(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        self.page = max(0, self.page - 1)
        await interaction.response.edit_message(content=self.render(), view=self)

    @discord.ui.button(label="Older ▶")
    async def older(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        self.page = min(max(0, (len(self.jobs) - 1) // PAGE), self.page + 1)
        await interaction.response.edit_message(content=self.render(), view=self)


class Queue(commands.Cog):
    def __init__(self, bot: EaselBot) -> None:
        self.bot = bot

    @app_commands.command(name="queue", description="Your tasks with their place in line, and the pool")
    async def queue(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        client = self.bot.jobs.client
        tasks, estimates, workers = await client.queue(), await client.estimates(), await client.registry.live()
        mine = [t for t in tasks if t.meta.owner == owner_of(interaction.user.id)]
        lines = []
        for task in mine[:15]:
            estimate = estimates.get(task.meta.task_id)
            if task.running:
                where = "running"
            elif estimate is None or estimate.start_ms is None:
                where = f"#{estimate.position if estimate else '?'}, {estimate.reason if estimate else 'waiting'}"
            else:
                where = f"#{estimate.position}, starts <t:{estimate.start_ms // 1000}:R>"
            lines.append(f"`{task.meta.task_id}` {where}")
        head = f"{len(tasks)} task(s) in the queue, {len(workers)} worker(s) online."
        await interaction.followup.send("\n".join([head, *(lines or ["You have nothing queued."])]), ephemeral=True)

    @app_commands.command(name="jobs", description="Your recent jobs")
    async def jobs(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        pages = Pages(await self.bot.jobs.store.jobs(owner_of(interaction.user.id), limit=100))
        await interaction.followup.send(pages.render(), view=pages, ephemeral=True)

    @app_commands.command(name="cancel", description="Cancel a job of yours (queued tasks never run)")
    @app_commands.describe(job="The job id, as shown on its message")
    async def cancel(self, interaction: discord.Interaction, job: app_commands.Range[str, 16, 16]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        self.bot.jobs.store.check_owner(await self.bot.jobs.store.job(job), owner_of(interaction.user.id),
                                  is_moderator(interaction))
        outcomes = await self.bot.jobs.client.cancel_job(job, by=interaction.user.display_name)
        counts = {o.value: sum(1 for v in outcomes.values() if v == o) for o in set(outcomes.values())}
        await interaction.followup.send(f"Job `{job}`: " + ", ".join(f"{n} {what}" for what, n in counts.items()),
                                        ephemeral=True)

    @app_commands.command(name="workers", description="The GPUs serving this community")
    async def workers(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        now = time.time()
        lines = []
        for w in await self.bot.jobs.client.registry.live():
            loaded = next((c.model_name for c in w.checkpoints if c.title == w.loaded_checkpoint), "?")
            lines.append(f"**{w.name}** {w.state.value} · {loaded} · {w.tasks_done} done · "
                         f"seen {max(0, now - w.heartbeat_ms / 1000):.0f}s ago")
        await interaction.followup.send("\n".join(lines) or "No worker is online.", ephemeral=True)

    @app_commands.command(name="worker", description="Admins: pause, resume or drain (finish, then stop) a worker")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    @app_commands.choices(action=[app_commands.Choice(name=a, value=a) for a in ("pause", "resume", "drain")])
    async def worker(self, interaction: discord.Interaction, action: str, name: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        client = self.bot.jobs.client
        names = [w.name for w in await client.registry.live()]
        if name not in names:
            await interaction.followup.send(f"No live worker is named `{name}`; live: {', '.join(names) or 'none'}",
                                            ephemeral=True)
            return
        orders: dict[str, messages.ControlMessage] = {
            "pause": messages.Pause(), "resume": messages.Resume(), "drain": messages.Drain(),
        }
        await client.tell(name, orders[action])
        done = {"pause": "paused (it finishes its task)", "resume": "taking tasks again",
                "drain": "draining (it finishes its task, then stops)"}[action]
        await interaction.followup.send(f"`{name}`: {done}.", ephemeral=True)


async def setup(bot: EaselBot) -> None:
    await bot.add_cog(Queue(bot))
