"""Outage: waits out an unreachable Redis with one log line, resumes when it answers, gives up after its limit."""

from __future__ import annotations

import logging

import pytest
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from common.errors import QueueUnreachable
from common.outage import Outage, is_outage
from easel.stack import free_port


async def test_gives_up_after_the_limit_with_one_line(caplog: pytest.LogCaptureFixture) -> None:
    redis = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there: connection refused
    outage = Outage("test part", limit_s=0.5)
    with caplog.at_level(logging.WARNING), pytest.raises(QueueUnreachable, match="EASEL_REDIS_OUTAGE_S"):
        await outage.call(redis.ping)
    assert len([r for r in caplog.records if "does not answer" in r.message]) == 1
    await redis.aclose()


async def test_resumes_when_redis_answers(redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    redis = Redis.from_url(redis_url)
    calls = 0

    async def flaky() -> bool:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise redis_errors.ConnectionError("Connection refused")
        return bool(await redis.ping())

    outage = Outage("test part", limit_s=30)
    with caplog.at_level(logging.WARNING):
        assert await outage.call(flaky) is True
    assert calls == 3 and not outage.down and outage.outages == 1
    assert any("answers again" in r.message for r in caplog.records)
    await redis.aclose()


def test_misconfiguration_is_not_an_outage() -> None:
    assert not is_outage(redis_errors.AuthenticationError("invalid username-password pair"))
    assert not is_outage(redis_errors.ConnectionError("Error 1 connecting: [SSL: CERTIFICATE_VERIFY_FAILED]"))
    assert is_outage(redis_errors.BusyLoadingError("Redis is loading the dataset in memory"))
    assert is_outage(redis_errors.TimeoutError("Timeout reading from socket"))
    assert not is_outage(ValueError("not a connection problem"))
