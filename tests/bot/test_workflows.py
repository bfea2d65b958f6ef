"""/workflow (admins) and /imagine workflow: against the fake Discord, a real Redis and a worker on the ComfyUI stub."""

from __future__ import annotations

import json

from tests.bot.conftest import eventually
from tests.bot.test_commands import Start, reply
from tests.bot.test_imagine import USER, job_message
from tests.conftest import ComfyStub
from tests.fake_discord import FakeDiscord
from tests.workflows.conftest import GRAPH, INPUTS

MANAGE_GUILD = 1 << 5


async def choices(fake: FakeDiscord, command: str, option: str, current: str) -> list[str]:
    """What the bot suggests while a user types ``current`` into ``option``."""
    spec = next(c for c in fake.commands if c["name"] == command)
    interaction = await fake._send_interaction(  # an autocomplete interaction (type 4), as Discord sends it
        {"id": spec["id"], "name": command, "type": 1,
         "options": [{"name": option, "type": 3, "value": current, "focused": True}]},
        kind=4, user_id=USER,
    )
    await eventually(lambda: interaction.response_type == 8)
    return [c["value"] for c in interaction.response["choices"]]


async def test_admins_register_workflows_and_users_run_them(
    fake: FakeDiscord, start_bot: Start, comfy: ComfyStub, start_worker  # type: ignore[no-untyped-def]
) -> None:
    await start_worker(comfy.url)
    await start_bot()
    graph, inputs = GRAPH.read_bytes(), INPUTS.read_bytes()
    refused = await fake.slash("workflow", {"action": "add", "name": "sd15", "graph": graph}, user_id=USER)
    assert "You cannot use this command here" in await reply(refused)
    added = await fake.slash("workflow", {"action": "add", "name": "sd15", "graph": graph, "inputs": inputs},
                             user_id=USER, permissions=MANAGE_GUILD)
    assert "Workflow **sd15** registered (7 nodes)" in await reply(added)
    fancy = json.loads(graph)
    fancy["10"] = {"class_type": "FancyCustomNode", "inputs": {"images": ["8", 0]}}
    bad = await fake.slash("workflow", {"action": "add", "name": "fancy", "graph": json.dumps(fancy).encode(),
                                        "specs": "steps:int:3.steps:1:50"}, user_id=USER, permissions=MANAGE_GUILD)
    assert "class 'FancyCustomNode' is not installed on any live ComfyUI worker" in await reply(bad)
    assert await choices(fake, "imagine", "workflow", "sd") == ["sd15"]

    too_many = await fake.slash("imagine", {"prompt": "a fox", "workflow": "sd15", "inputs": "steps=99"},
                                user_id=USER)
    assert "steps: must be in 1..50, got 99" in await reply(too_many)
    unknown = await fake.slash("imagine", {"prompt": "a fox", "workflow": "sd15", "inputs": "graph={}"},
                               user_id=USER)
    assert "workflow 'sd15' has no input 'graph'" in await reply(unknown)
    await fake.slash("imagine", {"prompt": "a fox", "workflow": "sd15", "seed": 11,
                                 "inputs": "steps=3 width=64 height=64 cfg=5.5"}, user_id=USER)
    message = await eventually(lambda: job_message(fake))
    await eventually(lambda: "done" in message.content and message.files)
    [png] = message.files.values()
    assert b"Workflow: sd15" in png and b"Seed: 11" in png and b"CFG scale: 5.5" in png

    listed = await fake.slash("workflow", {"action": "ls"}, user_id=USER, permissions=MANAGE_GUILD)
    assert "**sd15** (7 nodes)" in await reply(listed) and "steps (int 1..50)" in await reply(listed)
    removed = await fake.slash("workflow", {"action": "rm", "name": "sd15"}, user_id=USER, permissions=MANAGE_GUILD)
    assert "Workflow sd15 removed." in await reply(removed)
    assert await choices(fake, "imagine", "workflow", "") == []
