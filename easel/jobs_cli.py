"""``easel sweep`` and ``easel jobs ...``: the job service from the command line (the durable store in
``EASEL_DATA_DIR``).

With Redis configured, every command first stores results that arrived while no front end was running. Commands that
only work on the store (ls, show, keep, unkeep, deleting images, export, purge) also run without Redis; those that
queue or cancel work say that they need it.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from common.errors import InvalidRequest
from common.settings import SettingMissing, Settings
from common.sweep import parse_spec
from common.tasks import JobRecord, Origin
from easel.follow import follow
from easel.logs import show_warnings
from easel.submit import add_request_flags, request_data
from jobs.models import JobDetail, JobStatus, JobSummary
from jobs.service import JobService

CLI = Origin(source="cli")


def add_jobs_commands(commands: Any, add_redis_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    jobs = commands.add_parser("jobs", help="list, curate, derive from and export stored jobs")
    actions = jobs.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help_: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(name, help=help_)
        add_redis_flags(parser)
        parser.add_argument("--as", dest="actor", default=f"cli:{getpass.getuser()}", help="acting user")
        return parser

    listing = action("ls", "your recent jobs")
    listing.add_argument("--all", action="store_true", help="everyone's jobs")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--json", action="store_true")
    show = action("show", "a job with its tasks and images")
    show.add_argument("job")
    show.add_argument("--json", action="store_true")
    for name, help_ in (("keep", "keep images (or every image of a job)"), ("unkeep", "stop keeping images")):
        action(name, help_).add_argument("ids", nargs="+", metavar="ID")
    remove = action("delete", "delete an image, a job's images not kept (--not-kept), or a whole job")
    remove.add_argument("id")
    remove.add_argument("--not-kept", action="store_true")
    upscale = action("upscale-kept", "upscale every kept image of a job")
    upscale.add_argument("job")
    upscale.add_argument("--scale", type=float, default=2.0)
    upscale.add_argument("--upscaler", default="R-ESRGAN 4x+")
    img2img = action("img2img-kept", "img2img every kept image at each denoising strength")
    img2img.add_argument("job")
    img2img.add_argument("--denoise", required=True, help="strengths, e.g. 0.3,0.5,0.7")
    img2img.add_argument("--prompt", help="a new prompt (default: each image's own)")
    rerun = action("rerun", "the same tasks with new seeds")
    rerun.add_argument("job")
    for parser in (upscale, img2img, rerun):
        parser.add_argument("--no-wait", action="store_true", help="queue and return")
    export = action("export", "a zip of the kept (or --all) PNGs and a JSON manifest")
    export.add_argument("job")
    export.add_argument("out", type=Path)
    export.add_argument("--all", action="store_true")
    purge = action("purge", "remove deleted and old not-kept images (kept ones stay)")
    purge.add_argument("--dry-run", action="store_true")


def add_sweep_command(commands: Any, add_redis_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    sweep = commands.add_parser("sweep", help='submit "prompt | prompt :: name=v1,v2 ..." as one stored job')
    add_redis_flags(sweep)
    sweep.add_argument("spec", help='e.g. "a fox | a wolf :: cfg=5,7 steps=20,30"')
    add_request_flags(sweep, sweep_spec=True)
    sweep.add_argument("--as", dest="actor", default=f"cli:{getpass.getuser()}", help="acting user")
    sweep.add_argument("--no-wait", action="store_true", help="queue and return")


def run_sweep(args: argparse.Namespace, settings: Settings) -> int:
    prompts, _ = parse_spec(args.spec)
    if not prompts and args.upscale is None:
        raise InvalidRequest(['sweep: the spec has no prompt; start it with one, e.g. "a fox | a wolf :: cfg=5,7"'])
    args.prompt = prompts[0] if prompts else None  # the spec's prompts replace it in every task
    base = request_data(args)
    _require_redis(settings, "`easel sweep` queues a job")
    return asyncio.run(_with_service(settings, lambda jobs: _sweep(jobs, args, base)))


async def _sweep(jobs: JobService, args: argparse.Namespace, base: dict[str, Any]) -> int:
    after = await jobs.client.events.last_id()
    record = await jobs.recording.submit_sweep(args.actor, CLI, args.spec, base)
    return await _finish(jobs, record, after, wait=not args.no_wait)


def run_jobs(args: argparse.Namespace, settings: Settings) -> int:
    why = _why_redis(args)
    if why:
        _require_redis(settings, why)
    return asyncio.run(_with_service(settings, lambda jobs: _dispatch(jobs, args)))


def _why_redis(args: argparse.Namespace) -> str | None:
    """Why the command needs Redis (it queues or cancels work), or None when the store is enough."""
    if args.action in ("upscale-kept", "img2img-kept", "rerun"):
        return f"`easel jobs {args.action}` queues a job"
    if args.action == "delete" and "." not in args.id and not args.not_kept:
        return "`easel jobs delete JOB` cancels what still runs"
    return None


def _require_redis(settings: Settings, why: str) -> None:
    try:
        settings.require_redis_url()
    except SettingMissing as exc:
        raise SettingMissing(f"{why}, so it needs Redis: {exc}") from None


async def _with_service(settings: Settings, work: Callable[[JobService], Awaitable[int]]) -> int:
    """The job service on the store, with the queue when Redis is configured (results waiting there are stored
    first); without Redis, on the store alone."""
    async with JobService.open(settings, queue=bool(settings.redis_url)) as jobs:
        if jobs.recording.has_queue:
            await jobs.recording.reconcile()
        return await work(jobs)


async def _list(jobs: JobService, args: argparse.Namespace, console: Console) -> int:
    summaries = await jobs.store.jobs(None if args.all else args.actor, args.limit)
    if args.json:
        print(json.dumps([s.model_dump(mode="json") for s in summaries], indent=2))
    else:
        _print_jobs(console, summaries)
    return 0


async def _show(jobs: JobService, args: argparse.Namespace, console: Console) -> int:
    detail = await jobs.store.job(args.job)
    if args.json:
        print(detail.model_dump_json(indent=2))
    else:
        _print_job(console, detail)
    return 0


async def _keep(jobs: JobService, args: argparse.Namespace, console: Console) -> int:
    keep = args.action == "keep"
    for ident in args.ids:
        if keep and "." not in ident:  # a job id: keep all its images
            console.print(f"{ident}: kept {await jobs.curation.keep_all(args.actor, ident)} image(s)")
        else:
            await jobs.curation.set_kept(args.actor, [ident], keep)
            console.print(f"{ident}: {'kept' if keep else 'no longer kept'}")
    return 0


async def _delete(jobs: JobService, args: argparse.Namespace, console: Console) -> int:
    if "." in args.id:
        await jobs.curation.delete_image(args.actor, args.id)
        console.print(f"{args.id}: deleted (its file goes at the next purge)")
    elif args.not_kept:
        count = await jobs.curation.delete_not_kept(args.actor, args.id)
        console.print(f"{args.id}: deleted {count} image(s) not kept")
    else:
        await jobs.curation.delete_job(args.actor, args.id)
        console.print(f"{args.id}: job and files deleted")
    return 0


async def _derived(jobs: JobService, args: argparse.Namespace, console: Console) -> int:
    after = await jobs.client.events.last_id()
    record = await _derive(jobs, args)
    return await _finish(jobs, record, after, wait=not args.no_wait)


async def _export(jobs: JobService, args: argparse.Namespace, console: Console) -> int:
    out = await jobs.curation.export(args.job, args.out, include_all=args.all)
    console.print(f"{args.job}: exported to {out}")
    return 0


async def _purge(jobs: JobService, args: argparse.Namespace, console: Console) -> int:
    report = await jobs.retention.purge(dry_run=args.dry_run)
    verb = "would purge" if report.dry_run else "purged"
    console.print(f"{verb} {len(report.images)} image(s), {report.bytes / 2**20:.1f} MiB")
    for image_id in report.images:
        console.print(f"  {image_id}")
    return 0


ACTIONS: dict[str, Callable[[JobService, argparse.Namespace, Console], Awaitable[int]]] = {
    "ls": _list, "show": _show, "keep": _keep, "unkeep": _keep, "delete": _delete, "upscale-kept": _derived,
    "img2img-kept": _derived, "rerun": _derived, "export": _export, "purge": _purge,
}


async def _dispatch(jobs: JobService, args: argparse.Namespace) -> int:
    return await ACTIONS[args.action](jobs, args, Console())


async def _derive(jobs: JobService, args: argparse.Namespace) -> JobRecord:
    if args.action == "upscale-kept":
        return await jobs.curation.upscale_kept(args.actor, args.job, scale=args.scale, upscaler=args.upscaler)
    if args.action == "img2img-kept":
        try:
            strengths = [float(v) for v in args.denoise.split(",") if v.strip()]
        except ValueError:
            raise InvalidRequest([f"denoise: '{args.denoise}' should be numbers like 0.3,0.5,0.7"]) from None
        return await jobs.curation.img2img_kept(args.actor, args.job, denoise=strengths, prompt=args.prompt)
    return await jobs.curation.rerun(args.actor, args.job)


async def _finish(jobs: JobService, record: JobRecord, after: str, *, wait: bool) -> int:
    console = Console()
    console.print(f"job [bold]{record.job_id}[/]: {len(record.task_ids)} task(s) queued")
    if not wait:
        return 0
    show_warnings(console)
    detail = await follow(jobs, record, after, console)
    _print_job(console, detail)
    return 0 if detail.status == JobStatus.DONE else 1


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M")


def _print_jobs(console: Console, summaries: list[JobSummary]) -> None:
    table = Table(title="jobs")
    for column in ("job", "when", "owner", "action", "status", "tasks", "images", "kept"):
        table.add_column(column)
    for s in summaries:
        table.add_row(s.id, _when(s.created_ms), s.owner, s.action, s.status, str(s.tasks), str(s.images),
                      str(s.kept))
    console.print(table)


def _print_job(console: Console, detail: JobDetail) -> None:
    parent = f" (from {detail.parent_job_id})" if detail.parent_job_id else ""
    table = Table(title=f"job {detail.id}: {detail.action}{parent}, {detail.status}")
    for column in ("image", "variant", "status", "seed", "size", "kept", "file"):
        table.add_column(column, overflow="fold")
    for task in detail.tasks:
        if not task.images:
            table.add_row(task.id, task.label, task.status, "", "", "", task.error or "")
        for image in task.images:
            state = "deleted" if image.deleted else ("yes" if image.kept else "")
            table.add_row(image.id, task.label, task.status, str(image.seed), f"{image.width}x{image.height}",
                          state, image.file)
    console.print(table)
