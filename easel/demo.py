"""``easel demo``: the whole path on this machine, with no configuration.

Starts a Redis-protocol server (embedded Valkey unless ``REDIS_URL`` is set), the stub WebUI and one worker
process; submits a sweep (3 prompts x 2 cfg values) through the job service, as ``easel sweep`` does, then an
upscale of the first image; shows positions and progress live; records both jobs in the job store
(``EASEL_DATA_DIR``), writes the PNGs, prints a summary and the commands that curate what it made.
"""

from __future__ import annotations

import asyncio
import getpass
import signal
import time
from pathlib import Path
from types import FrameType

from rich.console import Console

from common.settings import Settings
from common.tasks import Origin
from common.workflows import WorkflowStore, build_definition, check_against_workers, request_for
from easel.follow import follow, save_images, summary_table
from easel.logs import show_warnings
from easel.stack import LocalStack
from jobs.models import JobDetail, TaskStatus
from jobs.service import JobService

PROMPTS = [
    "a lighthouse on a cliff at dusk, oil painting",
    "a red fox in fresh snow, photograph <lora:add_detail:0.6>",
    "a bowl of ramen, studio lighting",
]
SWEEP = "cfg=5,9"
SPEC = f"{' | '.join(PROMPTS)} :: {SWEEP}"
BASE = {"kind": "txt2img", "prompt": PROMPTS[0], "steps": 12, "width": 384, "height": 384, "sampler": "DPM++ 2M"}
DEMO = Origin(source="demo")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "workflows"


def _interrupt_on_term() -> None:
    """Ctrl-C and SIGTERM both unwind through ``LocalStack.__exit__``, which stops every process it started."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if a parent shell ignored SIGINT
    signal.signal(signal.SIGTERM, stop)


def demo(out: str | None, step_ms: float, backend: str = "a1111", serve_web: bool = False) -> int:
    _interrupt_on_term()
    console = Console()
    show_warnings(console)
    settings = Settings()
    out_dir = Path(out or settings.output_dir)
    started = time.monotonic()
    server = "the ComfyUI stub" if backend == "comfyui" else "the stub WebUI"
    console.print(f"[bold]Easel demo[/]: starting Redis, {server} and one worker...")
    with LocalStack(step_ms=step_ms, load_ms=300, flavor=backend) as stack:
        where = "embedded Valkey" if stack._own_redis else "REDIS_URL"
        console.print(f"  redis   {stack.redis_url} ({where}, prefix {stack.prefix})")
        console.print(f"  webui   {stack.webui_urls[0]} (stub, {backend})")
        console.print(f"  worker  {stack.worker_names[0]}")
        console.print(f"  store   {Path(settings.data_dir).absolute()} (the job store)")
        stacked = settings.model_copy(update={"redis_url": stack.redis_url, "redis_prefix": stack.prefix})
        details = asyncio.run(_run(stacked, console, comfyui=backend == "comfyui"))
        for detail in details:
            save_images(detail, out_dir)
        console.print(summary_table(details, out_dir))
        tasks = [t for d in details for t in d.tasks]
        failed = sum(t.status != TaskStatus.DONE for t in tasks)
        console.print(
            f"{'[red]' if failed else '[green]'}{len(tasks) - failed} task(s) done, "
            f"{failed} failed[/] in {time.monotonic() - started:.1f}s; images under {out_dir}"
        )
        _next_steps(console, details, serve_web)
        if serve_web:  # the gallery over the same store, with the demo's queue and worker still up (Ctrl-C stops all)
            from web.server import serve

            serve(stacked, local=True, say=lambda line: console.print(line, highlight=False))
    return 1 if failed else 0


async def _run(settings: Settings, console: Console, *, comfyui: bool = False) -> list[JobDetail]:
    owner = f"cli:{getpass.getuser()}"  # the `--as` default of `easel jobs`: the demo's jobs are yours to curate
    async with JobService.open(settings) as jobs:
        console.print(f"\n[bold]1. Sweep[/]: {len(PROMPTS)} prompts x {SWEEP}")
        after = await jobs.client.events.last_id()
        record = await jobs.recording.submit_sweep(owner, DEMO, SPEC, BASE)
        console.print(f"job [bold]{record.job_id}[/]: {len(record.task_ids)} task(s) queued")
        sweep = await follow(jobs, record, after, console)
        first = next(iter(sweep.images), None)
        if first is None:
            return [sweep]
        console.print(f"\n[bold]2. Upscale[/] x2 of image {first.id} (seed {first.seed})")
        after = await jobs.client.events.last_id()
        upscaler = "RealESRGAN_x2plus" if comfyui else "R-ESRGAN 4x+"
        record = await jobs.curation.upscale_image(owner, first.id, scale=2.0, upscaler=upscaler)
        console.print(f"job [bold]{record.job_id}[/] queued")
        details = [sweep, await follow(jobs, record, after, console)]
        if comfyui:
            details.append(await _custom_workflow(jobs, owner, console))
        return details


async def _custom_workflow(jobs: JobService, owner: str, console: Console) -> JobDetail:
    """Register the example workflow as an admin would (``easel workflows add``), then run it as a user."""
    graph, inputs = (EXAMPLES / name for name in ("sd15_txt2img.json", "sd15_txt2img.inputs.json"))
    workflow = build_definition("sd15-demo", graph.read_text(), inputs.read_text(), [],
                                description="the example SD1.5 txt2img workflow", added_by="demo")
    store = WorkflowStore(jobs.client.redis, jobs.client.keys)
    check_against_workers(workflow, await jobs.client.live_workers())
    await store.put(workflow)
    values = {"prompt": PROMPTS[0], "steps": "12", "width": "384", "height": "384", "cfg": "6"}
    console.print(f"\n[bold]3. Custom workflow[/] {workflow.name} ({len(workflow.graph)} nodes) with "
                  + " ".join(f"{k}={v}" for k, v in values.items() if k != "prompt"))
    request = await request_for(store, workflow.name, values, jobs.client.limits)
    after = await jobs.client.events.last_id()
    record = await jobs.recording.submit(owner, DEMO, [(workflow.name, request)])
    console.print(f"job [bold]{record.job_id}[/] queued")
    return await follow(jobs, record, after, console)


def _next_steps(console: Console, details: list[JobDetail], web: bool) -> None:
    sweep = details[0].id
    console.print("\n[bold]Next[/]: curate what you made (the jobs are recorded in the job store):")
    for command, what in (("easel jobs ls", "your jobs"),
                          (f"easel jobs show {sweep}", "the sweep's images, with their ids"),
                          (f"easel jobs keep {sweep}.0.0", "keep an image (then: upscale-kept, export)"),
                          ("easel web --local", "the gallery, in your browser")):
        console.print(f"  {command:<40} {what}", highlight=False)
    if web:
        console.print("\n[bold]Web gallery[/]: starting `easel web --local` with the demo's queue and worker "
                      "(Ctrl-C stops it and the demo stack)...")
