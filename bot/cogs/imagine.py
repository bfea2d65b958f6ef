"""``/imagine``: draw from a prompt."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands
from pydantic import ValidationError

from bot import autocomplete
from bot.ports import submitter
from common.errors import InvalidRequest
from common.limits import SEED_MAX
from common.models import Txt2ImgRequest

if TYPE_CHECKING:
    from bot.app import EaselBot

SIZES = {"square": (512, 512), "portrait": (512, 768), "landscape": (768, 512), "square-large": (1024, 1024)}


class Imagine(commands.Cog):
    def __init__(self, bot: EaselBot) -> None:
        self.bot = bot

    @app_commands.command(name="imagine", description="Draw an image from a prompt")
    @app_commands.describe(
        prompt="What to draw; <lora:name:weight> tags work", negative="What to avoid",
        checkpoint="Model (start typing to see those the workers have)", size="Shape of the image",
        steps="Sampling steps", cfg="How closely to follow the prompt", sampler="Sampler",
        seed="Seed (-1: random)", count="How many images", scheduler="Schedule type",
        hires="Hires fix: draw small, then refine at twice the size",
    )
    @app_commands.choices(size=[app_commands.Choice(name=name, value=name) for name in SIZES])
    async def imagine(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, 1500],
        negative: app_commands.Range[str, 0, 1500] | None = None,
        checkpoint: str | None = None,
        size: str | None = None,
        steps: app_commands.Range[int, 1, 150] | None = None,
        cfg: app_commands.Range[float, 1.0, 30.0] | None = None,
        sampler: str | None = None,
        seed: app_commands.Range[int, -1, SEED_MAX] = -1,
        count: app_commands.Range[int, 1, 16] = 1,
        scheduler: str | None = None,
        hires: bool = False,
    ) -> None:
        await interaction.response.defer(thinking=True)
        channel = await self.bot.jobs.store.channel_settings(interaction.channel_id or 0)
        if channel.max_count is not None and count > channel.max_count:
            raise InvalidRequest([f"count: this channel allows at most {channel.max_count} image(s) per request"])
        steps = steps if steps is not None else channel.default_steps
        width, height = SIZES.get(size or channel.default_size or "square", SIZES["square"])
        data: dict[str, Any] = {"prompt": prompt, "width": width, "height": height, "seed": seed,
                                "batch_size": count}
        optional = {"negative_prompt": negative, "checkpoint": checkpoint, "steps": steps, "cfg_scale": cfg,
                    "sampler": sampler, "scheduler": scheduler, "hires": {"scale": 2.0} if hires else None}
        data.update({k: v for k, v in optional.items() if v is not None})
        try:
            request = Txt2ImgRequest.model_validate(data, context={"limits": self.bot.jobs.client.limits})
        except ValidationError as exc:
            raise InvalidRequest.from_validation(exc) from None
        await submitter(self.bot).submit(interaction, [(prompt[:80], request)], spec=prompt)

    @imagine.autocomplete("checkpoint")
    async def _checkpoints(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await autocomplete.from_workers(self.bot, autocomplete.checkpoints, current)

    @imagine.autocomplete("sampler")
    async def _samplers(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await autocomplete.from_workers(self.bot, autocomplete.samplers, current)

    @imagine.autocomplete("scheduler")
    async def _schedulers(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await autocomplete.from_workers(self.bot, autocomplete.schedulers, current)


async def setup(bot: EaselBot) -> None:
    await bot.add_cog(Imagine(bot))
