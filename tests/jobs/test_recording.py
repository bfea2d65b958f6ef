"""Recording: jobs recorded before they are queued, results stored exactly once, what the queue lost put back."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import update

from common.errors import EaselError, InvalidRequest
from common.queue import CancelOutcome
from common.queue.keys import ARQ_JOB_PREFIX
from common.settings import Settings
from common.sweep import SweepSyntaxError
from jobs.models import JobStatus, TaskStatus
from jobs.service import JobService
from jobs.store.tables import TaskRow
from tests.conftest import StubServer
from tests.jobs.conftest import BASE, CLI, ME, image_rows, settled


async def test_a_sweep_runs_end_to_end_into_the_store(jobs: JobService, stub: StubServer, start_worker) -> None:  # type: ignore[no-untyped-def]
    await start_worker(stub.url)
    record = await jobs.recording.submit_sweep(ME, CLI, "a red fox | a snow leopard :: cfg=5,7 seed=1,2", BASE)
    detail = await settled(jobs, record.job_id)
    assert detail.status == JobStatus.DONE and len(detail.tasks) == 8
    assert {t.tries for t in detail.tasks} == {1} and {t.worker for t in detail.tasks} == {"test-gpu"}
    assert [t.label for t in detail.tasks][:2] == ["prompt 1 cfg=5 seed=1", "prompt 1 cfg=5 seed=2"]
    for image in detail.images:
        png = Path(image.file).read_bytes()
        assert png.startswith(b"\x89PNG") and image.infotext in png.decode("latin-1")
    assert sorted({i.seed for i in detail.images}) == [1, 2]


async def test_sweep_syntax_errors_and_caps_write_nothing(jobs: JobService) -> None:
    with pytest.raises(SweepSyntaxError, match="at column 4: a prompt between the"):
        await jobs.recording.submit_sweep(ME, CLI, "a | | b", BASE)
    with pytest.raises(InvalidRequest, match="makes 100 tasks; the limit is 64"):
        await jobs.recording.submit_sweep(ME, CLI, "a :: cfg=1,2,3,4,5,6,7,8,9,10 steps=1,2,3,4,5,6,7,8,9,10", BASE)
    assert await jobs.store.jobs() == []


async def test_a_full_disk_stores_nothing_half_and_the_next_sync_completes(
    jobs: JobService, stub: StubServer, start_worker, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    await start_worker(stub.url)
    record = await jobs.recording.submit_sweep(ME, CLI, "a | b", BASE)
    await asyncio.sleep(1)

    def full(relative: str, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(jobs.store.files, "write", full)
        with pytest.raises(EaselError, match=r"could not store the images of task .*: No space left on device"):
            await jobs.recording.sync(record.job_id)
    assert await image_rows(jobs) == 0
    assert (await settled(jobs, record.job_id)).status == JobStatus.DONE
    assert await image_rows(jobs) == 2


async def test_two_front_ends_syncing_store_each_image_once(
    jobs: JobService, make_settings: Callable[..., Settings], tmp_path: Path, stub: StubServer, start_worker  # type: ignore[no-untyped-def]
) -> None:
    await start_worker(stub.url)
    record = await jobs.recording.submit_sweep(ME, CLI, "a | b | c | d", BASE)
    await asyncio.sleep(1.5)
    async with JobService.open(make_settings(data_dir=str(tmp_path / "data"))) as second:
        await asyncio.gather(*(front.recording.sync() for front in (jobs, second, jobs, second)))
    assert (await settled(jobs, record.job_id)).status == JobStatus.DONE
    assert await image_rows(jobs) == 4


async def lose_the_queue(jobs: JobService, prefix: str, task_ids: list[str]) -> None:
    """As if Redis restarted empty: every key of this test's prefix, and the tasks' arq jobs, are gone."""
    redis = jobs.client.redis
    keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
    await redis.delete(*keys, *(ARQ_JOB_PREFIX + t for t in task_ids))
    assert await jobs.client.queue() == []


async def test_reconcile_after_redis_lost_the_queue(jobs: JobService, prefix: str, stub: StubServer,  # type: ignore[no-untyped-def]
                                                    start_worker) -> None:
    record = await jobs.recording.submit_sweep(ME, CLI, "a | b", BASE)  # no worker yet: both queued
    await lose_the_queue(jobs, prefix, record.task_ids)
    report = await jobs.recording.reconcile()
    assert report.requeued_tasks == 2
    assert len(await jobs.client.queue()) == 2
    await start_worker(stub.url)
    detail = await settled(jobs, record.job_id)
    assert detail.status == JobStatus.DONE and len(detail.images) == 2
    assert await jobs.recording.reconcile() == type(report)()  # nothing left to do


async def test_cancelling_a_recovered_job_reaches_every_task(jobs: JobService, prefix: str) -> None:
    """The recovery rebuilds the job's record from the store with all its tasks, not just the last one put back."""
    record = await jobs.recording.submit_sweep(ME, CLI, "a | b | c", BASE)  # no worker: all three wait
    await lose_the_queue(jobs, prefix, record.task_ids)
    assert (await jobs.recording.reconcile()).requeued_tasks == 3
    recovered = await jobs.client.job(record.job_id)
    assert recovered is not None and recovered.task_ids == record.task_ids
    assert recovered.labels == record.labels and recovered.owner == ME
    outcomes = await jobs.client.cancel_job(record.job_id, by=ME)
    assert outcomes == dict.fromkeys(record.task_ids, CancelOutcome.REMOVED)
    assert await jobs.client.queue() == []
    detail = await settled(jobs, record.job_id)
    assert detail.status == JobStatus.CANCELLED
    assert {t.status for t in detail.tasks} == {TaskStatus.CANCELLED}


async def test_reconcile_fails_what_cannot_be_rebuilt(jobs: JobService, prefix: str) -> None:
    record = await jobs.recording.submit_sweep(ME, CLI, "a", BASE)
    redis = jobs.client.redis
    await redis.delete(*[k async for k in redis.scan_iter(match=f"{prefix}*")], ARQ_JOB_PREFIX + record.task_ids[0])
    async with jobs.store.sessions.begin() as session:  # a request the store can no longer read back
        await session.execute(update(TaskRow).values(request='{"kind": "img2img", "init_image": "sha256:00"}'))
    report = await jobs.recording.reconcile()
    assert report.lost_tasks == 1
    detail = await jobs.store.job(record.job_id)
    assert detail.status == JobStatus.FAILED
    assert "lost from the queue and cannot be rebuilt" in (detail.tasks[0].error or "")


async def test_a_front_end_killed_mid_job_stores_every_result_once_after_restart(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    from easel.stack import LocalStack

    env = {**os.environ, "REDIS_URL": redis_url, "EASEL_REDIS_PREFIX": prefix, "EASEL_DATA_DIR": str(tmp_path)}
    with LocalStack(redis_url=redis_url, prefix=prefix, step_ms=30, load_ms=10):
        cli = subprocess.Popen([sys.executable, "-m", "easel", "sweep", "a | b | c :: seed=1,2", "--steps", "10",
                                "--width", "64", "--height", "64"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        settings = Settings(redis_url=redis_url, redis_prefix=prefix, data_dir=str(tmp_path))
        async with JobService.open(settings) as jobs:
            async with asyncio.timeout(20):  # the job is recorded and a first result has been stored
                while not (summaries := await jobs.store.jobs(limit=1)) or summaries[0].images == 0:
                    await asyncio.sleep(0.05)
            cli.kill()
            cli.wait()
            job_id = summaries[0].id
            record = await jobs.client.job(job_id)
            assert record is not None
            async with asyncio.timeout(30):  # the worker carries on while no front end runs
                for task_id in record.task_ids:
                    while await jobs.client.result(task_id) is None:
                        await asyncio.sleep(0.05)
        for _ in range(2):  # the front end comes back (twice): everything is stored, once
            shown = subprocess.run([sys.executable, "-m", "easel", "jobs", "show", job_id, "--json"], env=env,
                                   capture_output=True, text=True, timeout=60)
            assert shown.returncode == 0, shown.stderr
            detail = json.loads(shown.stdout)
            assert detail["status"] == "done"
            assert len([i for t in detail["tasks"] for i in t["images"]]) == 6
        async with JobService.open(settings) as jobs:
            assert await image_rows(jobs) == 6
            assert len(list((tmp_path / "images" / job_id).glob("*.png"))) == 6
