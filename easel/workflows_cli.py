"""``easel workflows add|ls|rm``: an admin registers custom ComfyUI workflows (API-format JSON) for users to run.

An input is declared as ``NAME:TYPE:NODE.INPUT[:MIN[:MAX[:DEFAULT]]]`` (``--input``, repeatable), e.g.
``steps:int:3.steps:1:50:20`` or ``prompt:str:6.text``, or as a JSON list of inputs (``--inputs FILE``:
``[{"name": "steps", "type": "int", "node": "3", "input": "steps", "min": 1, "max": 50, "default": 20}]``).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from common.connection import open_redis
from common.queue.keys import Keys
from common.registry import Registry
from common.settings import Settings
from common.workflows import WorkflowDef, WorkflowStore, build_definition, check_against_workers


def add_workflows_commands(commands: Any, add_redis_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    workflows = commands.add_parser("workflows", help="register, list and remove custom ComfyUI workflows (admins)")
    actions = workflows.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="register an API-format ComfyUI workflow under a name")
    add.add_argument("name")
    add.add_argument("file", type=Path, help="the workflow as ComfyUI's Workflow > Export (API) writes it")
    add.add_argument("--input", action="append", default=[], metavar="NAME:TYPE:NODE.INPUT[:MIN[:MAX[:DEFAULT]]]",
                     help="an input users may set; TYPE is int, float, str, seed, image or checkpoint")
    add.add_argument("--inputs", type=Path, metavar="FILE", help="the inputs as a JSON list instead")
    add.add_argument("--description", default="")
    add.add_argument("--work", type=float, help="GPU work units of one run (default 5, a 20-step 512x512 image)")
    add.add_argument("--force", action="store_true", help="add it although no ComfyUI worker is live to check it")
    listing = actions.add_parser("ls", help="the registered workflows and their inputs")
    listing.add_argument("--json", action="store_true")
    remove = actions.add_parser("rm", help="remove a workflow")
    remove.add_argument("name")
    for parser in (add, listing, remove):
        add_redis_flags(parser)


def definition(args: argparse.Namespace) -> WorkflowDef:
    """The workflow from the files and flags; ValueError naming what is wrong."""
    try:
        graph = args.file.read_text()
        inputs = args.inputs.read_text() if args.inputs else None
    except OSError as exc:
        raise ValueError(f"{exc.filename}: cannot read it ({exc.strerror})") from None
    return build_definition(args.name, graph, inputs, args.input, description=args.description,
                            added_by=f"cli:{getpass.getuser()}", work=args.work)


def run(args: argparse.Namespace, settings: Settings) -> int:
    console = Console()
    try:
        return asyncio.run(_run(args, settings, console))
    except ValueError as exc:
        Console(stderr=True).print(f"[red]refused:[/] {exc}", highlight=False)
        return 1


async def _run(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    redis = await open_redis(settings)
    try:
        keys = Keys(settings.redis_prefix)
        store = WorkflowStore(redis, keys)
        if args.action == "add":
            workflow = definition(args)
            workers = await Registry(redis, keys, ttl_s=settings.worker_ttl_s).live()
            for warning in check_against_workers(workflow, workers, force=args.force):
                console.print(f"[yellow]warning:[/] {warning}")
            await store.put(workflow)
            console.print(f"workflow [bold]{workflow.name}[/] registered: {len(workflow.graph)} nodes, "
                          f"inputs {', '.join(i.name for i in workflow.inputs) or 'none'}")
            return 0
        if args.action == "rm":
            if not await store.remove(args.name):
                raise ValueError(f"there is no workflow '{args.name}'")
            console.print(f"workflow {args.name} removed")
            return 0
        workflows = await store.all()
        if args.json:
            console.print_json(json.dumps([w.model_dump(exclude={"graph"}) for w in workflows]))
            return 0
        table = Table("name", "nodes", "inputs", "description")
        for w in workflows:
            table.add_row(w.name, str(len(w.graph)), ", ".join(
                f"{i.name} ({i.type.value} {i.range_text()}{'' if i.default is None else f' ={i.default}'})"
                for i in w.inputs), w.description)
        console.print(table)
        return 0
    finally:
        await redis.aclose(close_connection_pool=True)
