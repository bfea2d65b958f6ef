"""Curation: keep and delete, derived jobs and their lineage, ownership, export."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest

from common.errors import InvalidRequest, NotFound, NotPermitted
from common.tasks import Origin
from jobs.service import JobService
from tests.conftest import StubServer
from tests.jobs.conftest import BASE, CLI, ME, OTHER, settled


async def test_curation_and_lineage(jobs: JobService, stub: StubServer, start_worker) -> None:  # type: ignore[no-untyped-def]
    await start_worker(stub.url)
    job = await settled(jobs, (await jobs.recording.submit_sweep(ME, CLI, "a fox | a wolf", BASE)).job_id)
    fox, wolf = job.images
    await jobs.curation.set_kept(ME, [fox.id], True)
    variations = await settled(jobs, (await jobs.curation.img2img_kept(ME, job.id, denoise=[0.3, 0.6])).job_id)
    assert [t.parent_image_id for t in variations.tasks] == [fox.id, fox.id]
    assert variations.parent_job_id == job.id and variations.action == "img2img-kept"
    await jobs.curation.set_kept(ME, [variations.images[1].id], True)
    derived = await jobs.curation.upscale_kept(ME, variations.id, scale=2, upscaler="Lanczos")
    upscaled = await settled(jobs, derived.job_id)
    big = upscaled.images[0]
    assert (big.width, big.height) == (128, 128) and big.parent_image_id == variations.images[1].id
    assert [step["image"] for step in await jobs.curation.lineage(big.id)] == [variations.images[1].id, fox.id]

    shown = Origin(source="discord", guild_id=1, channel_id=2, message_id=3)  # the job has a message of its own
    await jobs.store.set_origin(job.id, shown)
    rerun = await settled(jobs, (await jobs.curation.rerun(ME, job.id)).job_id)
    assert {i.seed for i in rerun.images}.isdisjoint({fox.seed, wolf.seed})
    assert await jobs.store.origin(rerun.id) == shown.model_copy(update={"message_id": None})  # not its parent's

    assert await jobs.curation.delete_not_kept(ME, job.id) == 1
    assert [(i.id, i.deleted) for i in (await jobs.store.job(job.id)).images] == [(fox.id, False), (wolf.id, True)]
    assert await jobs.curation.keep_all(ME, job.id) == 1
    with pytest.raises(InvalidRequest, match="was deleted"):
        await jobs.curation.set_kept(ME, [wolf.id], True)

    await jobs.curation.delete_job(ME, upscaled.id)
    with pytest.raises(NotFound):
        await jobs.store.job(upscaled.id)
    assert not Path(big.file).exists()


async def test_only_the_owner_may_change_a_job(jobs: JobService, stub: StubServer, start_worker) -> None:  # type: ignore[no-untyped-def]
    await start_worker(stub.url)
    job = await settled(jobs, (await jobs.recording.submit_sweep(ME, CLI, "a fox", BASE)).job_id)
    image = job.images[0]
    for attempt in (jobs.curation.set_kept(OTHER, [image.id], True), jobs.curation.delete_job(OTHER, job.id),
                    jobs.curation.upscale_kept(OTHER, job.id), jobs.curation.delete_image(OTHER, image.id)):
        with pytest.raises(NotPermitted, match=f"job {job.id} belongs to cli:me; only its owner can change it"):
            await attempt
    await jobs.curation.set_kept(OTHER, [image.id], True, moderator=True)  # e.g. Discord's Manage Messages
    with pytest.raises(NotFound, match=re.escape("there is no image 'nope.0.0'")):
        await jobs.curation.set_kept(ME, ["nope.0.0"], True)
    with pytest.raises(InvalidRequest, match="has no kept images"):
        await jobs.curation.upscale_kept(ME, (await jobs.recording.submit_sweep(ME, CLI, "x", BASE)).job_id)


async def test_export_manifest_matches_the_store(jobs: JobService, stub: StubServer, start_worker,  # type: ignore[no-untyped-def]
                                                 tmp_path: Path) -> None:
    await start_worker(stub.url)
    job = await settled(jobs, (await jobs.recording.submit_sweep(ME, CLI, "a | b | c", BASE)).job_id)
    await jobs.curation.set_kept(ME, [job.images[0].id, job.images[2].id], True)
    out = await jobs.curation.export(job.id, tmp_path / "job.zip")
    with zipfile.ZipFile(out) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        names = set(archive.namelist())
        for entry in manifest["images"]:
            stored = next(i for i in (await jobs.store.job(job.id)).images if i.id == entry["id"])
            assert archive.read(entry["file"]) == Path(stored.file).read_bytes()
            assert (entry["seed"], entry["infotext"], entry["kept"]) == (stored.seed, stored.infotext, True)
    assert [e["id"] for e in manifest["images"]] == [job.images[0].id, job.images[2].id]
    assert names == {"manifest.json", *(e["file"] for e in manifest["images"])}
    assert manifest["job"]["id"] == job.id and len(manifest["tasks"]) == 3
    with pytest.raises(InvalidRequest, match="exists already"):
        await jobs.curation.export(job.id, out)
    everything = await jobs.curation.export(job.id, tmp_path / "all.zip", include_all=True)
    with zipfile.ZipFile(everything) as archive:
        assert len(json.loads(archive.read("manifest.json"))["images"]) == 3
