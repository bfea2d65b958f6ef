"""The job service: what users do with whole jobs, over the durable store (see :mod:`jobs.recording`).

Open it with ``async with JobService.open(settings) as jobs:``. Curation: keep and delete images, derive jobs from
the kept ones, export, purge.

Derived jobs (upscale / img2img of the kept images, reruns) are ordinary jobs whose tasks name their parent image,
so lineage reads "upscale of a variation of image X of job Y". Only a job's owner (or a moderator) may change it.
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

from common.errors import EaselError, InvalidRequest, NotFound
from common.infotext import parse_infotext
from common.models import GenerationRequest, Img2ImgRequest, UpscaleRequest, fit_size
from common.tasks import JobRecord, Origin, now_ms
from jobs.models import ChannelSettings, PurgeReport
from jobs.recording import JobServiceCore
from jobs.store.tables import ChannelSettingsRow, ImageRow, JobRow, TaskRow

DAY_MS = 24 * 3600 * 1000


class JobService(JobServiceCore):
    """Front-end-agnostic job operations for the CLI and the bot."""

    # --- keep and delete -----------------------------------------------------------------------------------

    async def set_kept(self, actor: str, image_ids: Sequence[str], kept: bool,
                       moderator: bool = False) -> None:
        async with self.sessions.begin() as session:
            for image_id in image_ids:
                image = await self._owned_image(session, image_id, actor, moderator)
                if image.deleted:
                    raise InvalidRequest([f"image {image_id} was deleted; it can no longer be kept"])
                image.kept = kept

    async def delete_image(self, actor: str, image_id: str, moderator: bool = False) -> None:
        """Mark an image deleted (its file goes at the next purge); a kept image is un-kept."""
        async with self.sessions.begin() as session:
            image = await self._owned_image(session, image_id, actor, moderator)
            image.deleted, image.kept, image.deleted_ms = True, False, now_ms()

    async def keep_all(self, actor: str, job_id: str, moderator: bool = False) -> int:
        async with self.sessions.begin() as session:
            job = await self._owned_job(session, job_id, actor, moderator)
            images = [i for t in job.tasks for i in t.images if not i.deleted]
            for image in images:
                image.kept = True
            return len(images)

    async def delete_not_kept(self, actor: str, job_id: str, moderator: bool = False) -> int:
        async with self.sessions.begin() as session:
            job = await self._owned_job(session, job_id, actor, moderator)
            images = [i for t in job.tasks for i in t.images if not i.kept and not i.deleted]
            for image in images:
                image.deleted, image.deleted_ms = True, now_ms()
            return len(images)

    async def delete_job(self, actor: str, job_id: str, moderator: bool = False) -> None:
        """Cancel what still runs, then remove the job's records and files."""
        async with self.sessions() as session:
            job = await self._owned_job(session, job_id, actor, moderator)
        with contextlib.suppress(InvalidRequest):  # already gone from Redis: nothing to cancel
            await self.client.cancel_job(job_id, by=actor)
        async with self.sessions.begin() as session:
            await session.execute(delete(JobRow).where(JobRow.id == job.id))
        await asyncio.to_thread(self.files.remove_job, job_id)

    # --- derived jobs --------------------------------------------------------------------------------------

    async def upscale_kept(self, actor: str, job_id: str, *, scale: float = 2.0,
                           upscaler: str = "R-ESRGAN 4x+", moderator: bool = False) -> JobRecord:
        kept = await self._kept_images(job_id, actor, moderator)
        tasks: list[tuple[str, GenerationRequest]] = [
            (f"x{scale:g} of {image.id}",
             UpscaleRequest.model_validate({"image": self.files.read(image.path), "upscaler": upscaler,
                                            "scale": scale}, context={"limits": self.client.limits}))
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
        width, height = fit_size(image.width, image.height, self.client.limits.max_pixels)
        data: dict[str, Any] = {
            "prompt": prompt or info.prompt or "a picture", "negative_prompt": info.negative_prompt,
            "init_image": self.files.read(image.path), "denoising_strength": strength,
            "width": width, "height": height, "seed": image.seed,
        }
        for field, key, convert in (("steps", "Steps", int), ("cfg_scale", "CFG scale", float),
                                    ("sampler", "Sampler", str)):
            if key in info.params:
                with contextlib.suppress(ValueError):
                    data[field] = convert(info.params[key])
        return Img2ImgRequest.model_validate(data, context={"limits": self.client.limits})

    async def upscale_image(self, actor: str, image_id: str, *, scale: float = 2.0,
                            upscaler: str = "R-ESRGAN 4x+", moderator: bool = False) -> JobRecord:
        """One image, upscaled, as a job of its own."""
        image = await self._image_of(image_id, actor, moderator)
        request = UpscaleRequest.model_validate(
            {"image": self.files.read(image.path), "upscaler": upscaler, "scale": scale},
            context={"limits": self.client.limits},
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
        async with self.sessions() as session:
            return await self._owned_image(session, image_id, actor, moderator)

    async def rerun(self, actor: str, job_id: str, moderator: bool = False) -> JobRecord:
        """The same tasks with new seeds."""
        async with self.sessions() as session:
            job = await self._owned_job(session, job_id, actor, moderator)
            rows = list(job.tasks)
        tasks = []
        for row in rows:
            request = self._loaded_request(row.request)
            if not isinstance(request, UpscaleRequest):
                request = request.model_copy(update={"seed": -1})
            tasks.append((row.label, request))
        return await self._derive(actor, job_id, "rerun", f"rerun of {job_id}", tasks,
                                  [row.parent_image_id for row in rows])

    async def retry_failed(self, actor: str, job_id: str, moderator: bool = False) -> JobRecord:
        """The job's failed or cancelled tasks again, with the same seeds."""
        async with self.sessions() as session:
            job = await self._owned_job(session, job_id, actor, moderator)
            rows = [t for t in job.tasks if t.status in ("failed", "cancelled")]
        if not rows:
            raise InvalidRequest([f"job {job_id} has no failed task to retry"])
        tasks = [(row.label, self._loaded_request(row.request)) for row in rows]
        return await self._derive(actor, job_id, "retry", f"retry of {job_id}", tasks,
                                  [row.parent_image_id for row in rows])

    async def _derive(self, actor: str, job_id: str, action: str, spec: str,
                      tasks: list[tuple[str, GenerationRequest]], parents: Sequence[str | None]) -> JobRecord:
        async with self.sessions() as session:
            origin = Origin.model_validate_json((await self._load_job(session, job_id)).origin)
        return await self.submit(actor, origin, tasks, action=action, spec=spec, parent_job_id=job_id,
                                 parents=parents)

    async def _kept_images(self, job_id: str, actor: str, moderator: bool) -> list[ImageRow]:
        async with self.sessions() as session:
            job = await self._owned_job(session, job_id, actor, moderator)
            kept = [i for t in job.tasks for i in t.images if i.kept and not i.deleted]
        if not kept:
            raise InvalidRequest([f"job {job_id} has no kept images: keep some first (`easel jobs keep IMAGE`)"])
        return kept

    # --- export and retention ------------------------------------------------------------------------------

    async def export(self, job_id: str, out: Path, *, include_all: bool = False) -> Path:
        """A zip of the job's kept (or all remaining) PNGs and ``manifest.json`` (job, tasks, lineage)."""
        if await asyncio.to_thread(out.exists):
            raise InvalidRequest([f"{out} exists already: choose another path (nothing was written)"])
        detail = await self.job(job_id)
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

    def _write_zip(self, out: Path, images: list[Any], manifest: dict[str, Any]) -> None:
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
        """The image's ancestors, nearest first: [{"image": id, "job": id, "action": ...}, ...]."""
        chain = []
        async with self.sessions() as session:
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

    async def purge(self, *, dry_run: bool = False) -> PurgeReport:
        """Remove deleted images and images never kept once they are old enough; kept images stay forever."""
        now, settings = now_ms(), self.settings
        deleted_before = now - settings.retention_deleted_days * DAY_MS
        unkept_before = now - settings.retention_unkept_days * DAY_MS
        async with self.sessions() as session:
            rows = (await session.scalars(select(ImageRow).where(ImageRow.kept.is_(False)))).all()
        due = [r for r in rows if (r.deleted and (r.deleted_ms or 0) <= deleted_before)
               or (not r.deleted and r.created_ms <= unkept_before)]
        size = sum((self.files.root / r.path).stat().st_size for r in due if self.files.exists(r.path))
        report = PurgeReport(dry_run=dry_run, images=[r.id for r in due], bytes=size)
        if dry_run or not due:
            return report
        async with self.sessions.begin() as session:  # rows first: a crash leaves orphan files, never dead rows
            await session.execute(delete(ImageRow).where(ImageRow.id.in_([r.id for r in due])))
        for row in due:
            await asyncio.to_thread(self.files.remove, row.path)
        async with self.engine.connect() as connection:  # VACUUM cannot run inside a transaction
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.exec_driver_sql("VACUUM")
        return report

    async def job_for_message(self, message_id: int) -> str | None:
        """The job a front-end message shows (e.g. from a Discord message link), if any."""
        async with self.sessions() as session:
            rows = (await session.scalars(
                select(JobRow.id).where(JobRow.origin.contains(f'"message_id":{message_id}'))
            )).all()
        return rows[0] if rows else None

    # --- channel settings ----------------------------------------------------------------------------------

    async def channel_settings(self, channel_id: int) -> ChannelSettings:
        async with self.sessions() as session:
            row = await session.get(ChannelSettingsRow, channel_id)
        if row is None:
            return ChannelSettings(channel_id=channel_id)
        return ChannelSettings(channel_id=row.channel_id, guild_id=row.guild_id, spoilers=row.spoilers,
                               default_steps=row.default_steps, default_size=row.default_size,
                               max_count=row.max_count)

    async def set_channel_settings(self, settings: ChannelSettings) -> None:
        async with self.sessions.begin() as session:
            row = await session.get(ChannelSettingsRow, settings.channel_id)
            if row is None:
                row = ChannelSettingsRow(channel_id=settings.channel_id)
                session.add(row)
            row.guild_id, row.spoilers = settings.guild_id, settings.spoilers
            row.default_steps, row.default_size = settings.default_steps, settings.default_size
            row.max_count, row.updated_ms = settings.max_count, now_ms()

    # --- ownership -----------------------------------------------------------------------------------------

    async def _owned_job(self, session: Any, job_id: str, actor: str, moderator: bool) -> JobRow:
        job = await self._load_job(session, job_id)
        self.check_owner(job, actor, moderator)
        return job

    async def _owned_image(self, session: Any, image_id: str, actor: str, moderator: bool) -> ImageRow:
        image = await session.get(ImageRow, image_id)
        if image is None:
            raise NotFound(f"there is no image {image_id!r}; `easel jobs show JOB` lists a job's images")
        job = await session.get(JobRow, image.job_id)
        self.check_owner(job, actor, moderator)
        return image

