"""``easel workers acl NAME`` prints an ACL line that is enough for a trusted direct worker and no more: checked on
the real Redis-protocol server (Redis 7 when REDIS_URL is set)."""

from __future__ import annotations

import secrets
import shlex
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError, ResponseError

from common.queue import EaselClient
from easel.nodes_cli import acl_line
from tests.conftest import StubServer
from tests.test_pool import CLI, result_of, small


@pytest.fixture
async def acl_user(redis_url: str, prefix: str) -> AsyncIterator[str]:
    """An ACL user made from the printed line; its URL is returned; deleted after the test."""
    name, password = f"t{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    line = acl_line(name, prefix, password)
    admin = aioredis.Redis.from_url(redis_url)
    await admin.execute_command(*shlex.split(line))
    parts = urlsplit(redis_url)
    yield urlunsplit(parts._replace(netloc=f"easel-worker-{name}:{password}@{parts.hostname}:{parts.port}"))
    await admin.execute_command("ACL", "DELUSER", f"easel-worker-{name}")
    await admin.aclose()


async def test_a_worker_with_its_acl_user_runs_tasks_and_nothing_else(  # type: ignore[no-untyped-def]
    acl_user: str, client: EaselClient, stub: StubServer, start_worker, redis_url: str
) -> None:
    await start_worker(stub.url, redis_url=acl_user)
    record = await client.submit("u:a", CLI, [small()])
    assert (await result_of(client, record.task_ids[0])).worker == "test-gpu"
    limited = aioredis.Redis.from_url(acl_user)
    admin = aioredis.Redis.from_url(redis_url)
    await admin.set("someone-else:secret", "x", ex=30)
    try:
        for command in (("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "SET", "maxmemory", "1"), ("CONFIG", "GET", "*"),
                        ("ACL", "SETUSER", "evil", "on"), ("GET", "someone-else:secret"), ("KEYS", "*"),
                        ("DEL", "someone-else:secret"), ("SHUTDOWN",)):
            with pytest.raises((NoPermissionError, ResponseError), match=r"(?i)permission"):
                await limited.execute_command(*command)
        assert await admin.get("someone-else:secret") == b"x"
    finally:
        await admin.delete("someone-else:secret")
        await admin.aclose()
        await limited.aclose()
