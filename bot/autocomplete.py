"""Autocomplete from what the live workers offer (checkpoints, samplers, schedulers, upscalers)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from discord import app_commands

from common.registry import WorkerInfo

if TYPE_CHECKING:
    from bot.app import EaselBot

LIMIT = 25  # Discord shows at most 25 choices


async def from_workers(bot: EaselBot, names: Callable[[WorkerInfo], Iterable[str]],
                       current: str) -> list[app_commands.Choice[str]]:
    found = sorted({name for worker in await bot.jobs.client.registry.live() for name in names(worker)})
    return [app_commands.Choice(name=n, value=n) for n in found if current.lower() in n.lower()][:LIMIT]


def checkpoints(worker: WorkerInfo) -> Iterable[str]:
    return (c.model_name for c in worker.checkpoints)


def samplers(worker: WorkerInfo) -> Iterable[str]:
    return (s for s in worker.samplers if not s.startswith("k_"))  # names, not A1111's k_ aliases


def schedulers(worker: WorkerInfo) -> Iterable[str]:
    return worker.schedulers


def upscalers(worker: WorkerInfo) -> Iterable[str]:
    return worker.upscalers
