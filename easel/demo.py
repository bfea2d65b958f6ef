"""``easel demo``: the whole path on this machine, with no configuration.

Starts a Redis-protocol server (embedded Valkey unless ``REDIS_URL`` is set), the stub WebUI and one worker
process; submits a sweep (3 prompts x 2 cfg values) through the same :class:`~common.queue.EaselClient` the bot
uses, then an upscale of the first image; shows positions and progress live; writes the PNGs; prints a summary.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from types import FrameType

from rich.console import Console

from common.models import UpscaleRequest
from common.queue import EaselClient
from common.settings import Settings
from common.sweep import expand, parse_axes
from common.tasks import Origin
from easel.follow import follow, save_images, summary_table
from easel.stack import LocalStack
from jobs.tracker import JobView

PROMPTS = [
    "a lighthouse on a cliff at dusk, oil painting",
    "a red fox in fresh snow, photograph <lora:add_detail:0.6>",
    "a bowl of ramen, studio lighting",
]
SWEEP = "cfg=5,9"
BASE = {"kind": "txt2img", "prompt": PROMPTS[0], "steps": 12, "width": 384, "height": 384, "sampler": "DPM++ 2M"}


def _interrupt_on_term() -> None:
    """Ctrl-C and SIGTERM both unwind through ``LocalStack.__exit__``, which stops every process it started."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if a parent shell ignored SIGINT
    signal.signal(signal.SIGTERM, stop)


def demo(out: str | None, step_ms: float) -> int:
    _interrupt_on_term()
    console = Console()
    out_dir = Path(out or Settings().output_dir)
    started = time.monotonic()
    console.print("[bold]Easel demo[/]: starting Redis, the stub WebUI and one worker...")
    with LocalStack(step_ms=step_ms, load_ms=300) as stack:
        where = "embedded Valkey" if stack._own_redis else "REDIS_URL"
        console.print(f"  redis   {stack.redis_url} ({where}, prefix {stack.prefix})")
        console.print(f"  webui   {stack.webui_urls[0]} (stub)")
        console.print(f"  worker  {stack.worker_names[0]}")
        views = asyncio.run(_run(stack.settings, console))
    for view in views:
        save_images(view, out_dir)
    console.print(summary_table(views, out_dir))
    failed = sum(t.result is None for v in views for t in v.tasks.values())
    console.print(
        f"{'[red]' if failed else '[green]'}{sum(len(v.tasks) for v in views) - failed} task(s) done, "
        f"{failed} failed[/] in {time.monotonic() - started:.1f}s; images under {out_dir}"
    )
    return 1 if failed else 0


async def _run(settings: Settings, console: Console) -> list[JobView]:
    async with EaselClient.connect(settings) as client:
        tasks = expand(BASE, PROMPTS, parse_axes(SWEEP), limits=client.limits)
        console.print(f"\n[bold]1. Sweep[/]: {len(PROMPTS)} prompts x {SWEEP} = {len(tasks)} tasks")
        sweep = await _submit_and_follow(client, console, [r for _, r in tasks], [label for label, _ in tasks])
        first = next((t.result for t in sweep.tasks.values() if t.result), None)
        if first is None:
            return [sweep]
        console.print(f"\n[bold]2. Upscale[/] x2 of {first.task_id} (seed {first.images[0].seed})")
        upscale = UpscaleRequest(image=first.images[0].png, upscaler="R-ESRGAN 4x+", scale=2.0)
        upscaled = await _submit_and_follow(client, console, [upscale], [f"x2 of {first.task_id}"])
        return [sweep, upscaled]


async def _submit_and_follow(client: EaselClient, console: Console, requests: list, labels: list[str]) -> JobView:
    after = await client.events.last_id()
    record = await client.submit("cli:demo", Origin(source="demo"), requests, labels)
    console.print(f"job [bold]{record.job_id}[/] queued")
    return await follow(client, record, after, console)
