"""Curation: what users do with whole jobs once they have images — keep and delete them, derive new jobs from
the kept ones (upscale, img2img at several strengths, rerun, retry), follow an image's lineage, export a zip.

Derived jobs are ordinary jobs whose tasks name their parent image, so lineage reads "upscale of a variation of image X
of job Y". Only a job's owner (or a moderator) may change it. Keeping, deleting images, lineage and export work on the
store alone; derived jobs and deleting a whole job need the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import selectinload

from common.errors import EaselError, InvalidRequest
from common.infotext import parse_infotext
from common.models import GenerationRequest, Img2ImgRequest, UpscaleRequest, fit_size
from common.tasks import JobRecord, Origin, now_ms
from jobs.models import ImageDetail, TaskStatus
from jobs.recording import Recording
from jobs.store.job_store import JobStore
from jobs.store.tables import ImageRow, JobRow, TaskRow


class Curation:
    """Keep, delete, derive, trace and export; changes are checked against the job's owner."""

    def __init__(self, store: JobStore, recording: Recording) -> None:
        self.store = store
        self.recording = recording

    # --- keep and delete -----------------------------------------------------------------------------------

    async def set_kept(self, actor: str, image_ids: Sequence[str], kept: bool,
                       moderator: bool = False) -> None:
        async with self.store.sessions.begin() as session:
            for image_id in image_ids:
                image = await self.store.owned_image(session, image_id, actor, moderator)
                if image.deleted:
                    raise InvalidRequest([f"image {image_id} was deleted; it can no longer be kept"])
                image.kept = kept

    async def delete_image(self, actor: str, image_id: str, moderator: bool = False) -> None:
        """Mark an image deleted (its file goes at the next purge); a kept image is un-kept."""
        async with self.store.sessions.begin() as session:
            image = await self.store.owned_image(session, image_id, actor, moderator)
            image.deleted, image.kept, image.deleted_ms = True, False, now_ms()

    async def keep_all(self, actor: str, job_id: str, moderator: bool = False) -> int:
        async with self.store.sessions.begin() as session:
            job = await self.store.owned_job(session, job_id, actor, moderator)
            images = [i for t in job.tasks for i in t.images if not i.deleted]
            for image in images:
                image.kept = True
            return len(images)

    async def delete_not_kept(self, actor: str, job_id: str, moderator: bool = False) -> int:
        async with self.store.sessions.begin() as session:
            job = await self.store.owned_job(session, job_id, actor, moderator)
            images = [i for t in job.tasks for i in t.images if not i.kept and not i.deleted]
            for image in images:
                image.deleted, image.deleted_ms = True, now_ms()
            return len(images)

    async def delete_job(self, actor: str, job_id: str, moderator: bool = False) -> None:
        """Cancel what still runs, then remove the job's records and files."""
        async with self.store.sessions() as session:
            job = await self.store.owned_job(session, job_id, actor, moderator)
        with contextlib.suppress(InvalidRequest):  # already gone from Redis: nothing to cancel
            await self.recording.client.cancel_job(job_id, by=actor)
        async with self.store.sessions.begin() as session:
            await session.execute(delete(JobRow).where(JobRow.id == job.id))
        await asyncio.to_thread(self.store.files.remove_job, job_id)

    # --- derived jobs --------------------------------------------------------------------------------------

    async def upscale_kept(self, actor: str, job_id: str, *, scale: float = 2.0,
                           upscaler: str = "R-ESRGAN 4x+", moderator: bool = False) -> JobRecord:
        kept = await self._kept_images(job_id, actor, moderator)
        tasks: list[tuple[str, GenerationRequest]] = [
            (f"x{scale:g} of {image.id}",
             UpscaleRequest.model_validate({"image": self.store.files.read(image.path), "upscaler": upscaler,
                                            "scale": scale}, context={"limits": self.recording.client.limits}))
            for image in kept
        ]
        return await self._derive(actor, job_id, "upscale-kept", f"upscale x{scale:g} with {upscaler}", tasks,
                                  [image.id for image in kept])

    async def img2img_kept(self, actor: str, job_id: str, *, denoise: Sequence[float],
                           prompt: str | None = None, moderator: bool = False) -> JobRecord:
        """Each kept image redrawn at each denoising strength, with its own prompt and settings (or ``prompt``)."""
        if not denoise:
            raise InvalidRequest(["denoise: give at least one strength, e.g. 0.3,0.5,0.7"])
        kept = await self._kept_images(job_id, actor, moderator)
        tasks: list[tuple[str, GenerationRequest]] = []
        parents = []
        for image in kept:
            for strength in denoise:
                tasks.append((f"denoise={strength:g} of {image.id}", self._variation(image, strength, prompt)))
                parents.append(image.id)
        return await self._derive(actor, job_id, "img2img-kept", f"img2img denoise {list(denoise)}", tasks, parents)

    def _variation(self, image: ImageRow, strength: float, prompt: str | None) -> Img2ImgRequest:
        info = parse_infotext(image.infotext)
        width, height = fit_size(image.width, image.height, self.recording.client.limits.max_pixels)
        data: dict[str, Any] = {
            "prompt": prompt or info.prompt or "a picture", "negative_prompt": info.negative_prompt,
            "init_image": self.store.files.read(image.path), "denoising_strength": strength,
            "width": width, "height": height, "seed": image.seed,
        }
        for field, key, convert in (("steps", "Steps", int), ("cfg_scale", "CFG scale", float),
                                    ("sampler", "Sampler", str)):
            if key in info.params:
                with contextlib.suppress(ValueError):
                    data[field] = convert(info.params[key])
        return Img2ImgRequest.model_validate(data, context={"limits": self.recording.client.limits})

    async def upscale_image(self, actor: str, image_id: str, *, scale: float = 2.0,
                            upscaler: str = "R-ESRGAN 4x+", moderator: bool = False) -> JobRecord:
        """One image, upscaled, as a job of its own."""
        image = await self._image_of(image_id, actor, moderator)
        request = UpscaleRequest.model_validate(
            {"image": self.store.files.read(image.path), "upscaler": upscaler, "scale": scale},
            context={"limits": self.recording.client.limits},
        )
        return await self._derive(actor, image.job_id, "upscale", f"x{scale:g} of {image.id}",
                                  [(f"x{scale:g} of {image.id}", request)], [image.id])

    async def vary_image(self, actor: str, image_id: str, *, denoise: float = 0.35,
                         moderator: bool = False) -> JobRecord:
        """A variation of one image (img2img at a low denoising strength), as a job of its own."""
        image = await self._image_of(image_id, actor, moderator)
        label = f"variation of {image.id}"
        return await self._derive(actor, image.job_id, "variation", label,
                                  [(label, self._variation(image, denoise, None))], [image.id])

    async def _image_of(self, image_id: str, actor: str, moderator: bool) -> ImageRow:
        async with self.store.sessions() as session:
            return await self.store.owned_image(session, image_id, actor, moderator)

    async def rerun(self, actor: str, job_id: str, moderator: bool = False) -> JobRecord:
        """The same tasks with new seeds."""
        async with self.store.sessions() as session:
            job = await self.store.owned_job(session, job_id, actor, moderator)
            rows = list(job.tasks)
        tasks = []
        for row in rows:
            request = self.recording.loaded_request(row.request)
            if not isinstance(request, UpscaleRequest):
                request = request.model_copy(update={"seed": -1})
            tasks.append((row.label, request))
        return await self._derive(actor, job_id, "rerun", f"rerun of {job_id}", tasks,
                                  [row.parent_image_id for row in rows])

    async def retry_failed(self, actor: str, job_id: str, moderator: bool = False) -> JobRecord:
        """The job's failed or cancelled tasks again, with the same seeds."""
        async with self.store.sessions() as session:
            job = await self.store.owned_job(session, job_id, actor, moderator)
            rows = [t for t in job.tasks if t.status in (TaskStatus.FAILED, TaskStatus.CANCELLED)]
        if not rows:
            raise InvalidRequest([f"job {job_id} has no failed task to retry"])
        tasks = [(row.label, self.recording.loaded_request(row.request)) for row in rows]
        return await self._derive(actor, job_id, "retry", f"retry of {job_id}", tasks,
                                  [row.parent_image_id for row in rows])

    async def redo_made_by(self, worker: str, since_ms: int) -> list[JobRecord]:
        """Every task ``worker`` finished since ``since_ms`` again, same seeds, as one derived job per job (a banned
        node's output is not trusted); the owner's own jobs, so the results reach them as any rerun does."""
        async with self.store.sessions() as session:
            rows = (await session.scalars(select(TaskRow).where(
                TaskRow.worker == worker, TaskRow.status == TaskStatus.DONE, TaskRow.finished_ms >= since_ms,
            ).options(selectinload(TaskRow.job)))).all()
        by_job: dict[str, list[TaskRow]] = {}
        for row in rows:
            by_job.setdefault(row.job_id, []).append(row)
        records = []
        for job_id, tasks in by_job.items():
            owner = tasks[0].job.owner
            redo = [(row.label, self.recording.loaded_request(row.request)) for row in tasks]
            records.append(await self._derive(owner, job_id, "rerun", f"made again: {worker} was banned", redo,
                                              [row.parent_image_id for row in tasks]))
        return records

    async def _derive(self, actor: str, job_id: str, action: str, spec: str,
                      tasks: list[tuple[str, GenerationRequest]], parents: Sequence[str | None]) -> JobRecord:
        """Submit a job derived from ``job_id``: the same front end and place, but not the parent's message (a
        front end that shows jobs in messages posts the derived job's own; until then it has none)."""
        async with self.store.sessions() as session:
            parent = Origin.model_validate_json((await self.store.load_job(session, job_id)).origin)
        origin = parent.model_copy(update={"message_id": None})
        return await self.recording.submit(actor, origin, tasks, action=action, spec=spec, parent_job_id=job_id,
                                           parents=parents)

    async def _kept_images(self, job_id: str, actor: str, moderator: bool) -> list[ImageRow]:
        async with self.store.sessions() as session:
            job = await self.store.owned_job(session, job_id, actor, moderator)
            kept = [i for t in job.tasks for i in t.images if i.kept and not i.deleted]
        if not kept:
            raise InvalidRequest([f"job {job_id} has no kept images: keep some first (`easel jobs keep IMAGE`)"])
        return kept

    # --- lineage and export -------------------------------------------------------------------------------

    async def export(self, job_id: str, out: Path, *, include_all: bool = False) -> Path:
        """A zip of the job's kept (or all remaining) PNGs and ``manifest.json`` (job, tasks, lineage)."""
        if await asyncio.to_thread(out.exists):
            raise InvalidRequest([f"{out} exists already: choose another path (nothing was written)"])
        detail = await self.store.job(job_id)
        images = [i for i in detail.images if not i.deleted and (include_all or i.kept)]
        manifest = {
            "job": detail.model_dump(mode="json", exclude={"tasks"}),
            "tasks": [t.model_dump(mode="json", exclude={"images"}) for t in detail.tasks],
            "images": [
                {**i.model_dump(mode="json", exclude={"file"}), "file": f"images/{Path(i.file).name}",
                 "lineage": await self.lineage(i.id)}
                for i in images
            ],
        }
        await asyncio.to_thread(self._write_zip, out, images, manifest)
        return out

    def _write_zip(self, out: Path, images: list[ImageDetail], manifest: dict[str, Any]) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=out.parent, prefix=".export-", suffix=".zip")
        try:
            with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as archive:
                archive.writestr("manifest.json", json.dumps(manifest, indent=2))
                for image in images:
                    archive.write(image.file, f"images/{Path(image.file).name}")
            os.replace(temp, out)
        except OSError as exc:
            Path(temp).unlink(missing_ok=True)
            raise EaselError(f"could not write {out}: {exc.strerror or exc}; nothing was written") from exc

    async def lineage(self, image_id: str) -> list[dict[str, str]]:
        """The image's ancestors, nearest first: [{"image": id, "job": id, "via": action}, ...]."""
        chain = []
        async with self.store.sessions() as session:
            current = await session.get(ImageRow, image_id)
            while current is not None and current.parent_image_id:
                parent = await session.get(ImageRow, current.parent_image_id)
                task = await session.get(TaskRow, current.task_id)
                job = await session.get(JobRow, task.job_id) if task else None
                chain.append({"image": current.parent_image_id,
                              "job": parent.job_id if parent else current.parent_image_id.rsplit(".", 2)[0],
                              "via": job.action if job else ""})
                current = parent
        return chain
