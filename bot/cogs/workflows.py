"""``/workflow``: admins register, list and remove custom ComfyUI workflows; ``/imagine workflow:`` runs one.

An admin attaches the API-format JSON (ComfyUI: Workflow > Export (API)) and declares the inputs users may set,
as a JSON list attachment or as ``NAME:TYPE:NODE.INPUT[:MIN[:MAX[:DEFAULT]]]`` specs. Users never send a graph:
``/imagine`` takes the workflow's name and ``key=value`` text for its declared inputs only.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import autocomplete
from common.errors import InvalidRequest
from common.models import WorkflowRequest
from common.workflow_models import InputType
from common.workflows import WorkflowStore, build_definition, check_against_workers, parse_assignments, request_for

if TYPE_CHECKING:
    from bot.app import EaselBot

_MAX_GRAPH_BYTES = 2 * 2**20


def store_of(bot: EaselBot) -> WorkflowStore:
    client = bot.jobs.client
    return WorkflowStore(client.redis, client.keys)


async def workflow_request(bot: EaselBot, name: str, inputs: str | None, **options: Any) -> WorkflowRequest:
    """``/imagine workflow:NAME inputs:"k=v ..."``: the command's own options (prompt, steps, seed...) fill the
    workflow's inputs of those names; ``inputs`` sets any declared input and wins."""
    store = store_of(bot)
    workflow = await store.get(name)
    declared = {i.name: i for i in workflow.inputs} if workflow is not None else {}
    values: dict[str, Any] = {}
    for key, value in options.items():
        if value is None:
            continue
        target = next((i.name for i in declared.values() if i.type == InputType(key)), None) \
            if key in ("seed", "checkpoint") else key if key in declared else None
        if target is not None:
            values[target] = value
    try:
        values.update(parse_assignments(shlex.split(inputs or "")))
        return await request_for(store, name, values, bot.jobs.client.limits)
    except ValueError as exc:
        raise InvalidRequest([str(exc)]) from None


class Workflows(commands.Cog):
    def __init__(self, bot: EaselBot) -> None:
        self.bot = bot

    @app_commands.command(name="workflow", description="Admins: register, list or remove custom ComfyUI workflows")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    @app_commands.describe(
        action="add, ls or rm", name="The workflow's name (lower-case, digits, - and _)",
        graph="add: the workflow as ComfyUI's Workflow > Export (API) saves it",
        inputs="add: the declared inputs as a JSON list",
        specs="add: or inputs as NAME:TYPE:NODE.INPUT[:MIN[:MAX[:DEFAULT]]], separated by spaces",
        description="add: what it makes", force="add: even when no ComfyUI worker is live to check it",
    )
    @app_commands.choices(action=[app_commands.Choice(name=a, value=a) for a in ("add", "ls", "rm")])
    async def workflow(
        self,
        interaction: discord.Interaction,
        action: str,
        name: str | None = None,
        graph: discord.Attachment | None = None,
        inputs: discord.Attachment | None = None,
        specs: str | None = None,
        description: app_commands.Range[str, 0, 200] | None = None,
        force: bool = False,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        store = store_of(self.bot)
        if action == "ls":
            text = "\n".join(
                f"**{w.name}** ({len(w.graph)} nodes){': ' + w.description if w.description else ''}\n  inputs: "
                + (", ".join(f"{i.name} ({i.type.value} {i.range_text()})" for i in w.inputs) or "none")
                for w in await store.all()
            )
            await interaction.followup.send(text[:1900] or "No workflows yet: `/workflow action:add`.",
                                            ephemeral=True)
            return
        if not name:
            raise InvalidRequest([f"name: /workflow {action} needs the workflow's name"])
        if action == "rm":
            removed = await store.remove(name)
            await interaction.followup.send(f"Workflow {name} removed." if removed else f"There is no workflow {name}.",
                                            ephemeral=True)
            return
        await self._add(interaction, store, name, graph, inputs, specs, description or "", force)

    async def _add(self, interaction: discord.Interaction, store: WorkflowStore, name: str,
                   graph: discord.Attachment | None, inputs: discord.Attachment | None, specs: str | None,
                   description: str, force: bool) -> None:
        if graph is None:
            raise InvalidRequest(["graph: attach the workflow's API-format JSON"])
        if graph.size > _MAX_GRAPH_BYTES or (inputs is not None and inputs.size > _MAX_GRAPH_BYTES):
            raise InvalidRequest([f"graph: the files may be at most {_MAX_GRAPH_BYTES // 2**20} MiB"])
        try:
            workflow = build_definition(
                name, (await graph.read()).decode(), (await inputs.read()).decode() if inputs else None,
                shlex.split(specs or ""), description=description, added_by=f"discord:{interaction.user.id}",
            )
            warnings = check_against_workers(workflow, await self.bot.jobs.client.registry.live(), force=force)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidRequest([str(exc)]) from None
        await store.put(workflow)
        lines = [f"Workflow **{workflow.name}** registered ({len(workflow.graph)} nodes); inputs: "
                 + (", ".join(i.name for i in workflow.inputs) or "none"), *(f"warning: {w}" for w in warnings)]
        await interaction.followup.send("\n".join(lines), ephemeral=True)


async def workflow_names(bot: EaselBot, current: str) -> list[app_commands.Choice[str]]:
    """Autocomplete for ``/imagine workflow:``."""
    names = await store_of(bot).names()
    return [app_commands.Choice(name=n, value=n) for n in names if current.lower() in n][:autocomplete.LIMIT]


async def setup(bot: EaselBot) -> None:
    await bot.add_cog(Workflows(bot))
