"""Riding out a Redis outage: retry with back-off and jitter, and say once what is being waited for.

Every long-running part that talks to Redis (a worker's loop, the bot's delivery, a CLI following its job) wraps its
Redis work in one :class:`Outage`. While Redis does not answer it logs one line when the outage begins and one when
it ends (never a line per try), sleeps between tries with exponential back-off and full jitter (capped at
``MAX_DELAY_S``, so work resumes within a couple of seconds of Redis answering again), and gives up with
:class:`~common.errors.QueueUnreachable` once the outage has lasted ``limit_s`` (``EASEL_REDIS_OUTAGE_S``).

Only transport trouble counts as an outage: refused or dropped connections, timeouts, and a server still loading its
data after a restart. A wrong password or a TLS failure is a configuration error and is raised at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis import exceptions as redis_errors

from common.errors import QueueUnreachable

T = TypeVar("T")

FIRST_DELAY_S = 0.1
MAX_DELAY_S = 2.0
TRY_TIMEOUT_S = 5.0  # a call that takes this long is a dead path (no call of Easel blocks in Redis for longer)

log = logging.getLogger(__name__)


def is_outage(exc: BaseException) -> bool:
    """True for errors that mean "Redis is not answering right now" (worth waiting out), not misconfiguration."""
    if isinstance(exc, redis_errors.AuthenticationError | redis_errors.AuthorizationError):
        return False  # AuthenticationError subclasses ConnectionError, but no amount of waiting fixes a password
    if isinstance(exc, redis_errors.ConnectionError | redis_errors.TimeoutError):
        return "SSL" not in str(exc) and "certificate" not in str(exc).lower()
    # redis-py lets a few raw socket errors through (e.g. a reset while reading a reply); OSError covers them
    return isinstance(exc, ConnectionError | TimeoutError | asyncio.IncompleteReadError)


async def bounded(work: Awaitable[T], timeout_s: float = TRY_TIMEOUT_S) -> T:
    """One Redis call that may not take longer than ``timeout_s`` (TimeoutError, an outage, if it does).

    ``asyncio.timeout``, not ``wait_for``: on Python 3.11 ``wait_for`` swallows a cancellation that arrives as the
    awaited call completes, which left a worker's progress watcher running after its generation had ended.
    """
    async with asyncio.timeout(timeout_s):
        return await work


class Outage:
    """Retries Redis work for one long-running part of a process; see the module docstring."""

    def __init__(self, what: str, *, limit_s: float, logger: logging.Logger | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self.limit_s = limit_s
        self._log = logger or log
        self._clock = clock
        self.since: float | None = None  # when the current outage began (None: Redis answers)
        self.outages = 0  # how many outages this part has ridden out (tests and metrics read it)

    @property
    def down(self) -> bool:
        return self.since is not None

    async def call(self, work: Callable[[], Awaitable[T]], *, timeout_s: float = TRY_TIMEOUT_S) -> T:
        """``await work()``, retried while Redis is unreachable; raises QueueUnreachable after ``limit_s``.

        Each try is bounded by ``timeout_s``: a link that swallows packets is an outage too.
        """
        delay = FIRST_DELAY_S
        while True:
            try:
                result = await bounded(work(), timeout_s)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                self.failed(exc)
                await asyncio.sleep(random.uniform(delay / 2, delay))
                delay = min(MAX_DELAY_S, delay * 2)
                continue
            self.succeeded()
            return result

    def failed(self, exc: BaseException) -> None:
        """Note one failed try (for loops that retry on their own); raises once the outage lasted too long."""
        now = self._clock()
        if self.since is None:
            self.since = now
            self.outages += 1
            self._log.warning("%s: Redis does not answer (%s); waiting up to %.0fs for it to come back",
                              self.what, _reason(exc), self.limit_s)
        elif now - self.since > self.limit_s:
            lasted = now - self.since
            raise QueueUnreachable(
                f"{self.what}: Redis has not answered for {lasted:.0f}s (EASEL_REDIS_OUTAGE_S={self.limit_s:g}); "
                "check that it is running and reachable, then start again"
            ) from exc

    def succeeded(self) -> None:
        if self.since is not None:
            self._log.warning("%s: Redis answers again after %.1fs", self.what, self._clock() - self.since)
            self.since = None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
