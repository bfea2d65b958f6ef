"""Admins invite a volunteer node from Discord: manage_guild only, the token answered ephemerally, only its hash
kept in Redis."""

from __future__ import annotations

from common.nodes import TOKEN_PREFIX, NodeStore, token_hash
from tests.bot.conftest import eventually
from tests.bot.test_commands import Start, reply
from tests.bot.test_imagine import USER
from tests.fake_discord import FakeDiscord

EPHEMERAL = 1 << 6
MANAGE_GUILD = 1 << 5


async def test_node_invite_from_discord_is_for_admins_and_ephemeral(
    fake: FakeDiscord, start_bot: Start
) -> None:
    bot = await start_bot()
    nodes = NodeStore(bot.jobs.client.redis, bot.jobs.client.keys)
    refused = await fake.slash("node-invite", {"name": "dana-gpu"}, user_id=USER)
    assert "You cannot use this command here" in await reply(refused)
    invited = await fake.slash("node-invite", {"name": "dana-gpu", "max_pixels": 262144}, user_id=USER,
                               permissions=MANAGE_GUILD)
    text = await reply(invited)
    token = text.split("||")[1]
    assert token.startswith(TOKEN_PREFIX)
    await eventually(lambda: invited.followups)
    assert invited.followups[-1].flags & EPHEMERAL
    record = await nodes.authenticate(token)
    assert record is not None and record.name == "dana-gpu" and record.max_pixels == 262144
    raw = await nodes.redis.hgetall(nodes.records_key)  # type: ignore[misc]
    assert token.encode() not in b"".join(raw.values()) and token_hash(token).encode() in b"".join(raw.values())
