"""Image bytes: full-size PNGs (with their infotext), WebP thumbnails (cached, ETag) and a job's export zip."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from common.errors import InvalidRequest, NotFound
from jobs.thumbnails import SIZES, etag_of, thumbnail_path
from web.access import image_for, job_for
from web.auth import viewer_of
from web.context import context_of

PRIVATE = "private, max-age=86400"  # an image never changes, but only its owner (or a moderator) may have it


async def full_image(request: Request) -> Response:
    viewer, web = viewer_of(request), context_of(request)
    image = await image_for(web.jobs, viewer, request.path_params["image_id"])
    path = web.jobs.store.files.root / image.path
    if not await asyncio.to_thread(path.is_file):
        raise NotFound(f"the file of image {image.id} is gone (purged)")
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": PRIVATE})


async def thumbnail(request: Request) -> Response:
    viewer, web = viewer_of(request), context_of(request)
    image_id = request.path_params["image_id"]
    try:
        size = int(request.query_params.get("size", str(SIZES[0])))
    except ValueError:
        raise InvalidRequest([f"size: one of {', '.join(map(str, SIZES))}"]) from None
    etag = etag_of(image_id, size)
    headers = {"ETag": etag, "Cache-Control": PRIVATE}
    if web.signer.valid(viewer, image_id, request.query_params.get("s", "")):  # signed for this viewer by its page
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        cached = web.jobs.store.files.root / thumbnail_path(image_id.split(".")[0], image_id, size)
        if size in SIZES:
            with contextlib.suppress(FileNotFoundError):  # not made yet: the path below makes it
                data = await asyncio.to_thread(cached.read_bytes)  # a few KB: one read beats a file response
                return Response(data, media_type="image/webp", headers=headers)
    image = await image_for(web.jobs, viewer, image_id)
    thumb = await web.jobs.thumbnails.get(image, size)
    if thumb.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(thumb.data, media_type="image/webp", headers=headers)


async def export_zip(request: Request) -> Response:
    viewer, web = viewer_of(request), context_of(request)
    detail = await job_for(web.jobs, viewer, request.path_params["job_id"])
    folder = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="easel-export-"))
    out = folder / f"easel-{detail.id}.zip"
    await web.jobs.curation.export(detail.id, out, include_all=request.query_params.get("all") == "1")

    def clean() -> None:
        out.unlink(missing_ok=True)
        folder.rmdir()

    return FileResponse(out, media_type="application/zip", filename=out.name, background=BackgroundTask(clean))


ROUTES = [
    Route("/images/{image_id:str}/full.png", full_image),
    Route("/images/{image_id:str}/thumb.webp", thumbnail),
    Route("/jobs/{job_id:str}/export.zip", export_zip),
]
