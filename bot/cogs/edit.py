"""``/img2img`` and ``/upscale``: start from an uploaded image (or, for upscale, an Easel image id)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands
from pydantic import TypeAdapter, ValidationError

from bot import autocomplete
from bot.ports import submitter
from common.errors import InvalidRequest
from common.limits import SEED_MAX
from common.models import GenerationRequest

if TYPE_CHECKING:
    from bot.app import EaselBot

_REQUEST: TypeAdapter[GenerationRequest] = TypeAdapter(GenerationRequest)
MESSAGE_LINK = re.compile(r"discord(?:app)?\.com/channels/\d+/\d+/(\d+)")


async def read_attachment(bot: EaselBot, attachment: discord.Attachment) -> bytes:
    limit = bot.jobs.client.limits.max_image_bytes
    if attachment.size > limit:
        raise InvalidRequest([f"image: the file is {attachment.size / 2**20:.1f} MiB; the limit is "
                              f"{limit / 2**20:.1f} MiB"])
    return await attachment.read()


def validated(bot: EaselBot, data: dict[str, Any]) -> GenerationRequest:
    try:
        return _REQUEST.validate_python(data, context={"limits": bot.jobs.client.limits})
    except ValidationError as exc:
        raise InvalidRequest.from_validation(exc) from None


class Edit(commands.Cog):
    def __init__(self, bot: EaselBot) -> None:
        self.bot = bot

    @app_commands.command(name="img2img", description="Redraw an image guided by a prompt")
    @app_commands.describe(image="The image to start from", prompt="What it should become",
                           denoise="How much may change: 0 keeps it, 1 ignores it", steps="Sampling steps",
                           cfg="How closely to follow the prompt", seed="Seed (-1: random)", count="How many")
    async def img2img(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment,
        prompt: app_commands.Range[str, 1, 1500],
        denoise: app_commands.Range[float, 0.0, 1.0] = 0.6,
        negative: app_commands.Range[str, 0, 1500] | None = None,
        steps: app_commands.Range[int, 1, 150] | None = None,
        cfg: app_commands.Range[float, 1.0, 30.0] | None = None,
        seed: app_commands.Range[int, -1, SEED_MAX] = -1,
        count: app_commands.Range[int, 1, 16] = 1,
    ) -> None:
        await interaction.response.defer(thinking=True)
        init_image = await read_attachment(self.bot, image)
        data: dict[str, Any] = {"kind": "img2img", "prompt": prompt, "init_image": init_image,
                                "denoising_strength": denoise, "seed": seed, "batch_size": count}
        optional = {"negative_prompt": negative, "steps": steps, "cfg_scale": cfg}
        data.update({k: v for k, v in optional.items() if v is not None})
        await submitter(self.bot).submit(interaction, [(prompt[:80], validated(self.bot, data))], spec=prompt)

    @app_commands.command(name="upscale", description="Enlarge an uploaded image or an Easel image")
    @app_commands.describe(image="An image to upload",
                           image_id="Or an Easel image id (JOB.TASK.N), or a link to an Easel job message",
                           upscaler="Upscaler (start typing to see the workers')", scale="Enlargement factor")
    async def upscale(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment | None = None,
        image_id: str | None = None,
        upscaler: str = "R-ESRGAN 4x+",
        scale: app_commands.Range[float, 1.0, 8.0] = 2.0,
    ) -> None:
        await interaction.response.defer(thinking=True)
        if (image is None) == (image_id is None):
            raise InvalidRequest(["give either an image to upload or an Easel image id, not both or neither"])
        if image is not None:
            data = await read_attachment(self.bot, image)
        else:
            image_id = await self._image_id(image_id or "")
            data = await self.bot.jobs.store.image_bytes(image_id)
        request = validated(self.bot, {"kind": "upscale", "image": data, "upscaler": upscaler, "scale": scale})
        label = f"x{scale:g}" + (f" of {image_id}" if image_id else "")
        await submitter(self.bot).submit(interaction, [(label, request)], spec=label)

    async def _image_id(self, given: str) -> str:
        """An image id as given, or the first image of the job whose message a link points at."""
        link = MESSAGE_LINK.search(given)
        if link is None:
            return given.strip()
        job_id = await self.bot.jobs.store.job_for_message(int(link.group(1)))
        images = [i for i in (await self.bot.jobs.store.job(job_id)).images if not i.deleted] if job_id else []
        if not images:
            raise InvalidRequest(["image_id: that message shows no Easel image"])
        return images[0].id

    @upscale.autocomplete("upscaler")
    async def _upscalers(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await autocomplete.from_workers(self.bot, autocomplete.upscalers, current)


async def setup(bot: EaselBot) -> None:
    await bot.add_cog(Edit(bot))
