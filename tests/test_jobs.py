"""The job service end to end: a real Redis, a worker, the stub, the SQLite store and the image files."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from common.errors import EaselError, InvalidRequest, NotFound, NotPermitted
from common.jobs.service import JobService
from common.jobs.views import JobDetail
from common.queue.keys import ARQ_JOB_PREFIX
from common.settings import Settings
from common.store.tables import ImageRow, TaskRow
from common.sweep import SweepSyntaxError
from common.tasks import Origin
from tests.conftest import StubServer

CLI = Origin(source="cli")
BASE: dict[str, Any] = {"kind": "txt2img", "prompt": "-", "steps": 3, "width": 64, "height": 64}
ME, OTHER = "cli:me", "cli:other"


@pytest.fixture
async def jobs(make_settings: Callable[..., Settings], tmp_path: Path) -> AsyncIterator[JobService]:
    async with JobService.open(make_settings(data_dir=str(tmp_path / "data"))) as service:
        yield service


async def settled(jobs: JobService, job_id: str, limit_s: float = 20) -> JobDetail:
    async with asyncio.timeout(limit_s):
        while True:
            await jobs.sync(job_id)
            detail = await jobs.job(job_id)
            if detail.status not in ("queued", "running"):
                return detail
            await asyncio.sleep(0.05)


async def image_rows(jobs: JobService) -> int:
    async with jobs.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(ImageRow)) or 0)


async def test_a_sweep_runs_end_to_end_into_the_store(jobs: JobService, stub: StubServer, start_worker) -> None:  # type: ignore[no-untyped-def]
    await start_worker(stub.url)
    record = await jobs.submit_sweep(ME, CLI, "a red fox | a snow leopard :: cfg=5,7 seed=1,2", BASE)
    detail = await settled(jobs, record.job_id)
    assert detail.status == "done" and len(detail.tasks) == 8
    assert {t.tries for t in detail.tasks} == {1} and {t.worker for t in detail.tasks} == {"test-gpu"}
    assert [t.label for t in detail.tasks][:2] == ["prompt 1 cfg=5 seed=1", "prompt 1 cfg=5 seed=2"]
    for image in detail.images:
        png = Path(image.file).read_bytes()
        assert png.startswith(b"\x89PNG") and image.infotext in png.decode("latin-1")
    assert sorted({i.seed for i in detail.images}) == [1, 2]


async def test_sweep_syntax_errors_and_caps_write_nothing(jobs: JobService) -> None:
    with pytest.raises(SweepSyntaxError, match="at column 4: a prompt between the"):
        await jobs.submit_sweep(ME, CLI, "a | | b", BASE)
    with pytest.raises(InvalidRequest, match="makes 100 tasks; the limit is 64"):
        await jobs.submit_sweep(ME, CLI, "a :: cfg=1,2,3,4,5,6,7,8,9,10 steps=1,2,3,4,5,6,7,8,9,10", BASE)
    assert await jobs.jobs() == []


async def test_curation_and_lineage(jobs: JobService, stub: StubServer, start_worker) -> None:  # type: ignore[no-untyped-def]
    await start_worker(stub.url)
    job = await settled(jobs, (await jobs.submit_sweep(ME, CLI, "a fox | a wolf", BASE)).job_id)
    fox, wolf = job.images
    await jobs.set_kept(ME, [fox.id], True)
    variations = await settled(jobs, (await jobs.img2img_kept(ME, job.id, denoise=[0.3, 0.6])).job_id)
    assert [t.parent_image_id for t in variations.tasks] == [fox.id, fox.id]
    assert variations.parent_job_id == job.id and variations.action == "img2img-kept"
    await jobs.set_kept(ME, [variations.images[1].id], True)
    upscaled = await settled(jobs, (await jobs.upscale_kept(ME, variations.id, scale=2, upscaler="Lanczos")).job_id)
    big = upscaled.images[0]
    assert (big.width, big.height) == (128, 128) and big.parent_image_id == variations.images[1].id
    assert [step["image"] for step in await jobs.lineage(big.id)] == [variations.images[1].id, fox.id]

    rerun = await settled(jobs, (await jobs.rerun(ME, job.id)).job_id)
    assert {i.seed for i in rerun.images}.isdisjoint({fox.seed, wolf.seed})

    assert await jobs.delete_not_kept(ME, job.id) == 1
    assert [(i.id, i.deleted) for i in (await jobs.job(job.id)).images] == [(fox.id, False), (wolf.id, True)]
    assert await jobs.keep_all(ME, job.id) == 1
    with pytest.raises(InvalidRequest, match="was deleted"):
        await jobs.set_kept(ME, [wolf.id], True)

    await jobs.delete_job(ME, upscaled.id)
    with pytest.raises(NotFound):
        await jobs.job(upscaled.id)
    assert not Path(big.file).exists()


async def test_only_the_owner_may_change_a_job(jobs: JobService, stub: StubServer, start_worker) -> None:  # type: ignore[no-untyped-def]
    await start_worker(stub.url)
    job = await settled(jobs, (await jobs.submit_sweep(ME, CLI, "a fox", BASE)).job_id)
    image = job.images[0]
    for attempt in (jobs.set_kept(OTHER, [image.id], True), jobs.delete_job(OTHER, job.id),
                    jobs.upscale_kept(OTHER, job.id), jobs.delete_image(OTHER, image.id)):
        with pytest.raises(NotPermitted, match=f"job {job.id} belongs to cli:me; only its owner can change it"):
            await attempt
    await jobs.set_kept(OTHER, [image.id], True, moderator=True)  # e.g. Discord's Manage Messages
    with pytest.raises(NotFound, match=re.escape("there is no image 'nope.0.0'")):
        await jobs.set_kept(ME, ["nope.0.0"], True)
    with pytest.raises(InvalidRequest, match="has no kept images"):
        await jobs.upscale_kept(ME, (await jobs.submit_sweep(ME, CLI, "x", BASE)).job_id)


async def test_export_manifest_matches_the_store(jobs: JobService, stub: StubServer, start_worker,  # type: ignore[no-untyped-def]
                                                 tmp_path: Path) -> None:
    await start_worker(stub.url)
    job = await settled(jobs, (await jobs.submit_sweep(ME, CLI, "a | b | c", BASE)).job_id)
    await jobs.set_kept(ME, [job.images[0].id, job.images[2].id], True)
    out = await jobs.export(job.id, tmp_path / "job.zip")
    with zipfile.ZipFile(out) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        names = set(archive.namelist())
        for entry in manifest["images"]:
            stored = next(i for i in (await jobs.job(job.id)).images if i.id == entry["id"])
            assert archive.read(entry["file"]) == Path(stored.file).read_bytes()
            assert (entry["seed"], entry["infotext"], entry["kept"]) == (stored.seed, stored.infotext, True)
    assert [e["id"] for e in manifest["images"]] == [job.images[0].id, job.images[2].id]
    assert names == {"manifest.json", *(e["file"] for e in manifest["images"])}
    assert manifest["job"]["id"] == job.id and len(manifest["tasks"]) == 3
    with pytest.raises(InvalidRequest, match="exists already"):
        await jobs.export(job.id, out)
    everything = await jobs.export(job.id, tmp_path / "all.zip", include_all=True)
    with zipfile.ZipFile(everything) as archive:
        assert len(json.loads(archive.read("manifest.json"))["images"]) == 3


async def test_a_full_disk_stores_nothing_half_and_the_next_sync_completes(
    jobs: JobService, stub: StubServer, start_worker, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    await start_worker(stub.url)
    record = await jobs.submit_sweep(ME, CLI, "a | b", BASE)
    await asyncio.sleep(1)

    def full(relative: str, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(jobs.files, "write", full)
        with pytest.raises(EaselError, match=r"could not store the images of task .*: No space left on device"):
            await jobs.sync(record.job_id)
    assert await image_rows(jobs) == 0
    assert (await settled(jobs, record.job_id)).status == "done"
    assert await image_rows(jobs) == 2


async def test_two_front_ends_syncing_store_each_image_once(
    jobs: JobService, make_settings: Callable[..., Settings], tmp_path: Path, stub: StubServer, start_worker  # type: ignore[no-untyped-def]
) -> None:
    await start_worker(stub.url)
    record = await jobs.submit_sweep(ME, CLI, "a | b | c | d", BASE)
    await asyncio.sleep(1.5)
    async with JobService.open(make_settings(data_dir=str(tmp_path / "data"))) as second:
        await asyncio.gather(jobs.sync(), second.sync(), jobs.sync(), second.sync())
    assert (await settled(jobs, record.job_id)).status == "done"
    assert await image_rows(jobs) == 4


async def test_reconcile_after_redis_lost_the_queue(jobs: JobService, prefix: str, stub: StubServer,  # type: ignore[no-untyped-def]
                                                    start_worker) -> None:
    record = await jobs.submit_sweep(ME, CLI, "a | b", BASE)  # no worker yet: both queued
    redis = jobs.client.redis
    keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
    await redis.delete(*keys, *(ARQ_JOB_PREFIX + t for t in record.task_ids))  # as if Redis restarted empty
    assert await jobs.client.queue_depth() == 0
    report = await jobs.reconcile()
    assert report.requeued_tasks == 2
    assert await jobs.client.queue_depth() == 2
    await start_worker(stub.url)
    detail = await settled(jobs, record.job_id)
    assert detail.status == "done" and len(detail.images) == 2
    assert await jobs.reconcile() == type(report)()  # nothing left to do


async def test_reconcile_fails_what_cannot_be_rebuilt(jobs: JobService, prefix: str) -> None:
    record = await jobs.submit_sweep(ME, CLI, "a", BASE)
    redis = jobs.client.redis
    await redis.delete(*[k async for k in redis.scan_iter(match=f"{prefix}*")], ARQ_JOB_PREFIX + record.task_ids[0])
    async with jobs.sessions.begin() as session:  # a request the store can no longer read back
        await session.execute(update(TaskRow).values(request='{"kind": "img2img", "init_image": "sha256:00"}'))
    report = await jobs.reconcile()
    assert report.lost_tasks == 1
    detail = await jobs.job(record.job_id)
    assert detail.status == "failed" and "lost from the queue and cannot be rebuilt" in (detail.tasks[0].error or "")


async def test_retention_purges_only_what_it_should(
    make_settings: Callable[..., Settings], tmp_path: Path, stub: StubServer, start_worker  # type: ignore[no-untyped-def]
) -> None:
    settings = make_settings(data_dir=str(tmp_path / "data"), retention_unkept_days=30, retention_deleted_days=1)
    async with JobService.open(settings) as jobs:
        await start_worker(stub.url)
        job = await settled(jobs, (await jobs.submit_sweep(ME, CLI, "a | b | c | d", BASE)).job_id)
        old_kept, old_unkept, fresh_deleted, old_deleted = job.images
        await jobs.set_kept(ME, [old_kept.id], True)
        await jobs.delete_image(ME, fresh_deleted.id)
        await jobs.delete_image(ME, old_deleted.id)
        day = 24 * 3600 * 1000
        async with jobs.sessions.begin() as session:
            await session.execute(update(ImageRow).where(ImageRow.id.in_([old_kept.id, old_unkept.id]))
                                  .values(created_ms=ImageRow.created_ms - 31 * day))
            await session.execute(update(ImageRow).where(ImageRow.id == old_deleted.id)
                                  .values(deleted_ms=ImageRow.deleted_ms - 2 * day))
        preview = await jobs.purge(dry_run=True)
        assert sorted(preview.images) == sorted([old_unkept.id, old_deleted.id]) and preview.bytes > 0
        assert Path(old_unkept.file).exists()
        report = await jobs.purge()
        assert sorted(report.images) == sorted(preview.images)
        remaining = {i.id for i in (await jobs.job(job.id)).images}
        assert remaining == {old_kept.id, fresh_deleted.id}
        assert not Path(old_unkept.file).exists() and not Path(old_deleted.file).exists()
        assert Path(old_kept.file).exists()


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
                while not (summaries := await jobs.jobs(limit=1)) or summaries[0].images == 0:
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
