"""``easel submit``: build a request (or a sweep) from flags, queue it, follow it, save the images."""

from __future__ import annotations

import argparse
import asyncio
import base64
import getpass
from pathlib import Path
from typing import Any

from rich.console import Console

from common.errors import InvalidRequest
from common.models import GenerationRequest
from common.settings import Settings
from common.sweep import expand, parse_axes
from common.tasks import Origin
from common.workflows import WorkflowStore, parse_assignments, request_for
from easel.follow import follow, save_images, summary_table
from easel.logs import show_warnings
from jobs.models import JobStatus
from jobs.service import JobService


def add_request_flags(parser: argparse.ArgumentParser, *, sweep_spec: bool = False) -> None:
    """The request's settings as flags; with ``sweep_spec`` the prompts and lists come from the spec instead."""
    if not sweep_spec:
        parser.add_argument("prompt", nargs="?", help="what to draw (not needed with --upscale)")
        parser.add_argument("--also", action="append", default=[], metavar="PROMPT",
                            help="another prompt for the same settings (repeatable): a sweep over prompts")
        parser.add_argument("--sweep", default="", metavar="SPEC",
                            help='parameter lists, e.g. "cfg=5,7 steps=20,30 denoise=0.3,0.5"')
        parser.add_argument("--workflow", metavar="NAME", help="run a registered ComfyUI workflow (easel workflows ls)")
        parser.add_argument("--set", dest="values", action="append", default=[], metavar="KEY=VALUE",
                            help="a workflow input (repeatable); KEY=@FILE reads an image input from FILE")
    parser.add_argument("--negative", dest="negative_prompt", help="negative prompt")
    parser.add_argument("--checkpoint", help="checkpoint name, title or hash")
    parser.add_argument("--sampler", help='sampler, e.g. "DPM++ 2M"')
    parser.add_argument("--scheduler", help="schedule type, e.g. karras")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--cfg", dest="cfg_scale", type=float)
    parser.add_argument("--width", type=int)
    parser.add_argument("--height", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--count", dest="batch_size", type=int, help="images in the task")
    parser.add_argument("--hires", type=float, metavar="SCALE", help="hires fix at this scale")
    parser.add_argument("--init-image", type=Path, help="img2img: start from this image")
    parser.add_argument("--denoise", dest="denoising_strength", type=float, help="img2img denoising strength")
    parser.add_argument("--upscale", type=Path, metavar="IMAGE", help="upscale this image instead")
    parser.add_argument("--upscaler", help='upscaler name, e.g. "R-ESRGAN 4x+"')
    parser.add_argument("--scale", type=float, help="upscale factor")
    if not sweep_spec:
        parser.add_argument("--owner", default=f"cli:{getpass.getuser()}", help="who the job belongs to")
        parser.add_argument("--out", type=Path, help="where to write the PNGs (default $EASEL_OUTPUT_DIR)")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidRequest([f"{path}: cannot read it ({exc.strerror})"]) from exc


def request_data(args: argparse.Namespace) -> dict[str, Any]:
    """The base request as a dict, from the flags that were given (the model supplies the defaults)."""
    if args.upscale is not None:
        data: dict[str, Any] = {"kind": "upscale", "image": _read(args.upscale)}
        data.update({k: v for k, v in (("upscaler", args.upscaler), ("scale", args.scale)) if v is not None})
        return data
    if not args.prompt:
        raise InvalidRequest(["prompt: is required (or use --upscale IMAGE)"])
    data = {"kind": "txt2img", "prompt": args.prompt}
    for name in ("negative_prompt", "checkpoint", "sampler", "scheduler", "steps", "cfg_scale", "width", "height",
                 "seed", "batch_size"):
        value = getattr(args, name)
        if value is not None:
            data[name] = value
    if args.hires is not None:
        data["hires"] = {"scale": args.hires}
    if args.init_image is not None:
        data.update(kind="img2img", init_image=_read(args.init_image))
        if args.denoising_strength is not None:
            data["denoising_strength"] = args.denoising_strength
    return data


def submit(args: argparse.Namespace, settings: Settings) -> int:
    """``easel submit``: checked before anything is recorded or queued."""
    if getattr(args, "workflow", None):
        return asyncio.run(_submit_workflow(settings, args))
    data = request_data(args)
    prompts = [args.prompt, *args.also] if args.also else []
    tasks = expand(data, prompts, parse_axes(args.sweep), limits=settings.limits())
    out_dir = args.out or Path(settings.output_dir)
    return asyncio.run(_submit(settings, args.owner, tasks, out_dir))


async def _submit_workflow(settings: Settings, args: argparse.Namespace) -> int:
    """``--workflow NAME --set k=v``: only the workflow's declared inputs, checked against their bounds."""
    try:
        values: dict[str, Any] = parse_assignments(args.values)
    except ValueError as exc:
        raise InvalidRequest([f"--set: {exc}"]) from None
    if args.prompt:
        values.setdefault("prompt", args.prompt)
    for key, value in values.items():
        if isinstance(value, str) and value.startswith("@"):
            values[key] = base64.b64encode(_read(Path(value[1:]))).decode()
    async with JobService.open(settings) as jobs:
        client = jobs.client
        try:
            request = await request_for(WorkflowStore(client.redis, client.keys), args.workflow, values,
                                        client.limits)
        except ValueError as exc:
            raise InvalidRequest([str(exc)]) from None
    out_dir = args.out or Path(settings.output_dir)
    return await _submit(settings, args.owner, [(args.workflow, request)], out_dir)


async def _submit(settings: Settings, owner: str, tasks: list[tuple[str, GenerationRequest]], out_dir: Path) -> int:
    """Record the job in the store (``EASEL_DATA_DIR``), queue it, follow it, then copy its images to ``out_dir``."""
    console = Console()
    show_warnings(console)
    async with JobService.open(settings) as jobs:
        after = await jobs.client.events.last_id()
        record = await jobs.recording.submit(owner, Origin(source="cli"), tasks)
        console.print(f"job [bold]{record.job_id}[/]: {len(record.task_ids)} task(s) queued")
        detail = await follow(jobs, record, after, console)
    paths = save_images(detail, out_dir)
    console.print(summary_table([detail], out_dir))
    console.print(f"{len(paths)} image(s) written under {out_dir / record.job_id}")
    return 0 if detail.status == JobStatus.DONE else 1
