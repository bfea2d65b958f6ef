"""``easel workers ban NAME --rerun SINCE``: the node is cut off, and what it made is queued again (same seeds) as
derived jobs of the same owners, found by the node's name on the stored results."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from common.nodes import NodeStore
from common.settings import Settings
from easel.cli import main
from jobs.service import JobService
from tests.conftest import StubServer
from tests.gateway.conftest import RunningGateway
from tests.jobs.conftest import BASE, CLI, settled
from tests.test_pool import eventually


async def test_ban_reruns_what_the_node_made(  # type: ignore[no-untyped-def]
    make_settings: Callable[..., Settings], tmp_path: Path, stub: StubServer, gateway: RunningGateway,
    nodes: NodeStore, start_node, start_worker, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(data_dir=str(tmp_path / "data"))
    await start_node(gateway.url, await nodes.invite("shady"), stub.url)
    async with JobService.open(settings) as jobs:
        record = await jobs.recording.submit_sweep("discord:7", CLI, "a fox :: seed=1,2", BASE)
        detail = await settled(jobs, record.job_id)
        assert {t.worker for t in detail.tasks} == {"shady"}  # each stored result names the node
    flags = ["--redis-url", settings.redis_url or "", "--prefix", settings.redis_prefix]
    monkeypatch.setenv("EASEL_DATA_DIR", settings.data_dir)
    assert await asyncio.to_thread(main, ["workers", "ban", "shady", "--rerun", "1h", *flags]) == 0
    assert "re-queued 2 task(s)" in capsys.readouterr().out
    assert (await nodes.get("shady")).status == "banned"  # type: ignore[union-attr]
    await start_worker(stub.url, worker_name="trusted")
    async with JobService.open(settings) as jobs:
        summaries = await eventually(lambda: _reruns(jobs))
        redo = await settled(jobs, summaries[0].id)
        assert {t.worker for t in redo.tasks} == {"trusted"}
        assert sorted(i.seed for i in redo.images) == [1, 2]  # the same images, made again


async def _reruns(jobs: JobService) -> list:  # type: ignore[type-arg]
    return [j for j in await jobs.store.jobs(owner="discord:7") if j.action == "rerun"]
