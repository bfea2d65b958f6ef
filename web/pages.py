"""The pages: Jobs (filtered, paginated), a job (its grid), an image, two images compared, Queue and Workers."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from common.errors import InvalidRequest, NotFound, NotPermitted
from jobs.browse import JobFilter
from jobs.models import JobStatus
from web.access import image_for, job_for
from web.auth import viewer_of
from web.context import context_of, render
from web.grid import layout, prompt_of

PAGE_SIZE = 50


async def home(request: Request) -> Response:
    return RedirectResponse("/jobs" if request.session.get("owner") else "/login", status_code=303)


async def jobs_page(request: Request) -> Response:
    viewer, web = viewer_of(request), context_of(request)
    params = request.query_params
    status_text = params.get("status", "")
    try:
        status = JobStatus(status_text) if status_text else None
        page = max(1, int(params.get("page", "1")))
    except ValueError:
        raise InvalidRequest([f"status: one of {', '.join(JobStatus)}; page: a number from 1"]) from None
    everyone = viewer.moderator and params.get("everyone") == "1"
    where = JobFilter(owner=None if everyone else viewer.owner, status=status, text=params.get("q", "")[:200],
                      kept_only=params.get("kept") == "1")
    listing = await web.jobs.browse.page(where, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    return render(request, "jobs.html", viewer, listing=listing, where=where, page=page, everyone=everyone,
                  statuses=list(JobStatus), pages=max(1, -(-listing.total // PAGE_SIZE)))


async def job_page(request: Request) -> Response:
    viewer, web = viewer_of(request), context_of(request)
    detail = await job_for(web.jobs, viewer, request.path_params["job_id"])
    grid = layout(detail)
    values: dict[str, Any] = {
        "job": detail, "grid": grid, "progress": web.hub.progress,
        "row_titles": {row: prompt_of(detail, row) for row in grid.rows},
        "sign": lambda image_id: web.signer.sign(viewer, image_id),  # thumbnails load without a store query each
    }
    if request.query_params.get("fragment") == "grid":
        return render(request, "_grid.html", viewer, **values)
    derived = await web.jobs.browse.derived(detail.id)
    parent = None
    if detail.parent_job_id:
        try:
            parent = await job_for(web.jobs, viewer, detail.parent_job_id)
        except (NotPermitted, NotFound):  # gone, or not this viewer's: the lineage shows only the id
            parent = None
    deleted = sum(1 for i in detail.images if i.deleted)
    return render(request, "job.html", viewer, derived=derived, parent=parent, deleted=deleted, **values)


async def image_page(request: Request) -> Response:
    viewer, web = viewer_of(request), context_of(request)
    image = await image_for(web.jobs, viewer, request.path_params["image_id"])
    lineage = await web.jobs.curation.lineage(image.id)
    return render(request, "image.html", viewer, image=image, lineage=lineage)


async def compare_page(request: Request) -> Response:
    viewer, web = viewer_of(request), context_of(request)
    ids = [request.query_params.get("a", ""), request.query_params.get("b", "")]
    images = [await image_for(web.jobs, viewer, image_id) for image_id in ids]
    return render(request, "compare.html", viewer, images=images)


async def queue_page(request: Request) -> Response:
    viewer, web = viewer_of(request), context_of(request)
    return render(request, "queue.html", viewer, snapshot=await web.hub.refresh(), queue=web.hub.enabled)


async def workers_page(request: Request) -> Response:
    viewer, web = viewer_of(request), context_of(request)
    return render(request, "workers.html", viewer, snapshot=await web.hub.refresh(), queue=web.hub.enabled)


ROUTES = [
    Route("/", home),
    Route("/jobs", jobs_page),
    Route("/jobs/{job_id:str}", job_page),
    Route("/images/{image_id:str}", image_page),
    Route("/compare", compare_page),
    Route("/queue", queue_page),
    Route("/workers", workers_page),
]
