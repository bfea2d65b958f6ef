"""Server-sent events: the Queue and Workers pages get their table re-rendered for the viewer whenever the hub says
it changed; a job page is told when its tasks progress or its images arrive (and fetches its grid again)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from sse_starlette.sse import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.routing import Route

from web.access import job_for
from web.auth import Viewer, viewer_of
from web.context import TEMPLATES, WebContext, context_of

PING_S = 15


def _table(web: WebContext, viewer: Viewer, template: str) -> str:
    return TEMPLATES.get_template(template).render(viewer=viewer, snapshot=web.hub.snapshot)


async def _tables(request: Request, topic: str, template: str) -> EventSourceResponse:
    viewer, web = viewer_of(request), context_of(request)

    async def events() -> AsyncIterator[ServerSentEvent]:
        async with web.hub.subscribe(topic) as changes:
            yield ServerSentEvent(_table(web, viewer, template), event=topic)
            while True:
                await changes.get()
                yield ServerSentEvent(_table(web, viewer, template), event=topic)

    return EventSourceResponse(events(), ping=PING_S)


async def queue_events(request: Request) -> EventSourceResponse:
    return await _tables(request, "queue", "_queue_rows.html")


async def workers_events(request: Request) -> EventSourceResponse:
    return await _tables(request, "workers", "_workers_rows.html")


async def job_events(request: Request) -> EventSourceResponse:
    viewer, web = viewer_of(request), context_of(request)
    job = await job_for(web.jobs, viewer, request.path_params["job_id"])
    task_ids = [t.id for t in job.tasks]

    async def events() -> AsyncIterator[ServerSentEvent]:
        async with web.hub.subscribe(f"job:{job.id}") as changes:
            while True:
                await changes.get()
                await asyncio.sleep(0.2)  # let a burst of changes (a sweep's tasks ending together) settle
                while not changes.empty():
                    changes.get_nowait()
                progress = {t: web.hub.progress[t] for t in task_ids if t in web.hub.progress}
                yield ServerSentEvent(json.dumps({"progress": progress}), event="changed")

    return EventSourceResponse(events(), ping=PING_S)


ROUTES = [
    Route("/queue/events", queue_events),
    Route("/workers/events", workers_events),
    Route("/jobs/{job_id:str}/events", job_events),
]
