"""Chaos: the scenarios of ``bench/chaos.py`` (real worker processes, a real submitter, an embedded Valkey with an
append-only file), checked as an operator would: every task ends exactly once, no process exits on a connection
error, and where failing is right, the failure says why.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import chaos
from common.errors import FailureCode

pytestmark = pytest.mark.timeout(240)


def survived(report: chaos.Report) -> None:
    assert report.exits == [], f"processes exited: {report.exits}"
    assert report.lost == 0 and report.duplicated == 0, report
    assert report.finished == report.tasks, report


async def test_a_redis_restart_is_waited_out_by_workers_and_the_submitter(tmp_path: Path) -> None:
    report = await chaos.redis_restart(tmp_path)
    survived(report)
    assert report.tasks == 10 and report.images == 10  # the submitter followed through and wrote every image


@pytest.mark.parametrize("mode", ["refuse", "blackhole"])
async def test_a_cut_link_between_workers_and_redis_is_waited_out(mode: str) -> None:
    survived(await chaos.cut_link(mode))


async def test_a_webui_killed_mid_task_hands_the_task_back() -> None:
    report = await chaos.webui_killed()
    survived(report)
    assert report.messages and all("unreachable" in m for m in report.messages)


async def test_faulty_webuis_end_each_task_once_with_a_reason() -> None:
    report = await chaos.faulty_webuis()
    assert report.exits == [] and report.lost == 0 and report.duplicated == 0, report
    assert report.finished == 0 and sum(report.failed.values()) == report.tasks
    assert set(report.failed) <= {FailureCode.WEBUI_UNREACHABLE.value, FailureCode.WEBUI_ERROR.value}
    failures = [m for m in report.messages if "giving up" in m or "gave up" in m]
    assert len(failures) >= 1
    assert report.starts <= 5 * report.tasks  # bounded: at most 2 hand-backs and 2 retries before the last start
