"""The pick policy's knobs, from the settings (shared by workers, the gateway and the enqueue side)."""

from __future__ import annotations

from common.queue.scripts import PickPolicy
from common.settings import Settings

SWITCH_MARGIN = 2.0  # another lane's demand per worker must be this many times the warm lane's to switch
FRESH_MS = 1000  # a task that just arrived still counts as this much waiting
RETRY_ELSEWHERE_MS = 1000  # how long a worker leaves a task that just failed on it to the others


def idle_stale_ms(settings: Settings) -> int:
    """An idle worker re-registers at every poll; a registration older than a few polls is a worker gone."""
    return int(max(3 * settings.worker_poll_s, 2.0) * 1000)


def pick_policy(settings: Settings) -> PickPolicy:
    return PickPolicy(
        affinity=settings.affinity, switch_margin=SWITCH_MARGIN,
        max_pass_over_ms=int(settings.max_pass_over_s * 1000), fresh_ms=FRESH_MS,
        warm_stale_ms=int(3 * settings.lease_s * 1000), idle_stale_ms=idle_stale_ms(settings),
    )
