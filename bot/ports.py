"""What buttons and cogs need from the bot's parts, as protocols: they reach the parts through the client they are
given (``interaction.client``) and never import the bot, its delivery or its submission module, so those can import
the views without an import circle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, cast

import discord

from common.models import GenerationRequest
from common.settings import Settings
from common.tasks import JobRecord
from jobs.service import JobService

SUBMISSION = "Submission"  # cog names
DELIVERY = "Delivery"


class Submitter(Protocol):
    async def submit(self, interaction: discord.Interaction, tasks: Sequence[tuple[str, GenerationRequest]], *,
                     spec: str) -> JobRecord: ...

    async def post_job(self, interaction: discord.Interaction, record: JobRecord) -> discord.Message: ...


class Refresher(Protocol):
    def schedule(self, job_id: str, *, urgent: bool = False, page: int | None = None) -> None: ...

    async def show_page(self, job_id: str, page: int) -> None: ...


class HasJobs(Protocol):
    jobs: JobService
    settings: Settings

    def get_cog(self, name: str, /) -> Any: ...


def bot_of(client: discord.Client) -> HasJobs:
    return cast(HasJobs, client)


def jobs_of(client: discord.Client) -> JobService:
    return bot_of(client).jobs


def _cog(client: discord.Client, name: str) -> Any:
    cog = bot_of(client).get_cog(name)
    if cog is None:
        raise RuntimeError(f"the {name} cog is not loaded; EaselBot.setup_hook loads it")
    return cog


def submitter(client: discord.Client) -> Submitter:
    return cast(Submitter, _cog(client, SUBMISSION))


def refresher(client: discord.Client) -> Refresher:
    return cast(Refresher, _cog(client, DELIVERY))
