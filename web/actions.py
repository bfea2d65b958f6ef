"""What a viewer changes: keep / unkeep / delete images, delete what is not kept, derived jobs (upscale kept,
img2img kept at several strengths, rerun, retry failed), delete a job, cancel a task. Every action checks the CSRF
token, then goes through the job layer (``jobs.curation``) or the queue client, as the bot and the CLI do; the
job layer checks the owner again.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from common.errors import InvalidRequest, NotPermitted
from common.tasks import JobRecord
from web.access import job_for, task_owner
from web.auth import Viewer, check_csrf, viewer_of
from web.context import WebContext, context_of

MAX_STRENGTHS = 5


async def _begin(request: Request) -> tuple[Viewer, WebContext, dict[str, Any]]:
    """The viewer and the request's fields (JSON body or form), after the CSRF check."""
    viewer = viewer_of(request)
    await check_csrf(request)
    if request.headers.get("content-type", "").startswith("application/json"):
        body = await request.json()
        if not isinstance(body, dict):
            raise InvalidRequest(["the body should be a JSON object"])
        return viewer, context_of(request), body
    form = await request.form()
    fields: dict[str, Any] = {key: form.get(key) for key in form}
    fields["ids"] = [v for v in form.getlist("ids") if isinstance(v, str)]
    return viewer, context_of(request), fields


def _done(request: Request, message: str, back: str, redirect: str | None = None) -> Response:
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"message": message, "redirect": redirect})
    request.session["flash"] = message
    return RedirectResponse(redirect or back, status_code=303)


def _derived(request: Request, job_id: str, record: JobRecord, what: str) -> Response:
    return _done(request, f"{what}: job {record.job_id} with {len(record.task_ids)} task(s) queued",
                 f"/jobs/{job_id}", f"/jobs/{record.job_id}")


async def images(request: Request) -> Response:
    viewer, web, fields = await _begin(request)
    job = await job_for(web.jobs, viewer, request.path_params["job_id"])
    ids, action = fields.get("ids") or [], fields.get("action")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise InvalidRequest(["ids: select at least one image"])
    if any(not i.startswith(f"{job.id}.") for i in ids):
        raise InvalidRequest([f"ids: only images of job {job.id} can be changed from its page"])
    curation, actor, moderator = web.jobs.curation, viewer.owner, viewer.moderator
    if action in ("keep", "unkeep"):
        await curation.set_kept(actor, ids, action == "keep", moderator)
    elif action == "delete":
        for image_id in ids:
            await curation.delete_image(actor, image_id, moderator)
    else:
        raise InvalidRequest(["action: keep, unkeep or delete"])
    return _done(request, f"{action}: {len(ids)} image(s)", f"/jobs/{job.id}")


async def delete_not_kept(request: Request) -> Response:
    viewer, web, _ = await _begin(request)
    job_id = request.path_params["job_id"]
    count = await web.jobs.curation.delete_not_kept(viewer.owner, job_id, viewer.moderator)
    return _done(request, f"deleted {count} image(s) not kept", f"/jobs/{job_id}")


async def upscale_kept(request: Request) -> Response:
    viewer, web, fields = await _begin(request)
    job_id = request.path_params["job_id"]
    scale = _number(fields.get("scale", "2"), "scale")
    record = await web.jobs.curation.upscale_kept(viewer.owner, job_id, scale=scale, moderator=viewer.moderator)
    return _derived(request, job_id, record, f"upscale x{scale:g} of the kept images")


async def img2img_kept(request: Request) -> Response:
    viewer, web, fields = await _begin(request)
    job_id = request.path_params["job_id"]
    text = str(fields.get("denoise", "0.3,0.5,0.7"))
    strengths = [_number(part, "denoise") for part in text.split(",") if part.strip()]
    if not strengths or len(strengths) > MAX_STRENGTHS or not all(0 < s <= 1 for s in strengths):
        raise InvalidRequest([f"denoise: 1 to {MAX_STRENGTHS} strengths between 0 and 1, e.g. 0.3,0.5,0.7"])
    prompt = str(fields.get("prompt") or "").strip() or None
    record = await web.jobs.curation.img2img_kept(viewer.owner, job_id, denoise=strengths, prompt=prompt,
                                                  moderator=viewer.moderator)
    return _derived(request, job_id, record, f"img2img of the kept images at {text}")


async def rerun(request: Request) -> Response:
    viewer, web, _ = await _begin(request)
    job_id = request.path_params["job_id"]
    record = await web.jobs.curation.rerun(viewer.owner, job_id, viewer.moderator)
    return _derived(request, job_id, record, "rerun with new seeds")


async def retry_failed(request: Request) -> Response:
    viewer, web, _ = await _begin(request)
    job_id = request.path_params["job_id"]
    record = await web.jobs.curation.retry_failed(viewer.owner, job_id, viewer.moderator)
    return _derived(request, job_id, record, "retry of the failed tasks")


async def delete_job(request: Request) -> Response:
    viewer, web, _ = await _begin(request)
    job_id = request.path_params["job_id"]
    await web.jobs.curation.delete_job(viewer.owner, job_id, viewer.moderator)
    return _done(request, f"job {job_id} deleted", "/jobs", "/jobs")


async def cancel_task(request: Request) -> Response:
    viewer, web, _ = await _begin(request)
    task_id = request.path_params["task_id"]
    owner = await task_owner(web.jobs, task_id)
    if not viewer.may_see(owner):
        raise NotPermitted(f"task {task_id} is not yours; only its owner or a moderator can cancel it")
    outcome = await web.jobs.client.cancel(task_id, by=viewer.name if owner == viewer.owner else "a moderator")
    return _done(request, f"task {task_id}: {outcome.value}", "/queue")


def _number(value: object, field: str) -> float:
    try:
        return float(str(value))
    except ValueError:
        raise InvalidRequest([f"{field}: a number, e.g. 2"]) from None


ROUTES = [
    Route("/jobs/{job_id:str}/images", images, methods=["POST"]),
    Route("/jobs/{job_id:str}/delete-not-kept", delete_not_kept, methods=["POST"]),
    Route("/jobs/{job_id:str}/upscale-kept", upscale_kept, methods=["POST"]),
    Route("/jobs/{job_id:str}/img2img-kept", img2img_kept, methods=["POST"]),
    Route("/jobs/{job_id:str}/rerun", rerun, methods=["POST"]),
    Route("/jobs/{job_id:str}/retry", retry_failed, methods=["POST"]),
    Route("/jobs/{job_id:str}/delete", delete_job, methods=["POST"]),
    Route("/tasks/{task_id:str}/cancel", cancel_task, methods=["POST"]),
]
