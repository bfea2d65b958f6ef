"""What every route of the web app reaches through ``request.app.state.web``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from common.settings import Settings
from jobs.service import JobService
from web.auth import DiscordLogin, LocalLogins, Viewer
from web.live import LiveHub
from web.signing import ThumbSigner

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))


@dataclass
class WebContext:
    settings: Settings
    jobs: JobService
    hub: LiveHub
    discord: DiscordLogin
    logins: LocalLogins | None  # only with --local
    signer: ThumbSigner


def context_of(request: Request) -> WebContext:
    web: WebContext = request.app.state.web
    return web


def render(request: Request, template: str, viewer: Viewer | None = None, status_code: int = 200,
           **values: Any) -> HTMLResponse:
    flash = request.session.pop("flash", None) if "session" in request.scope else None
    return TEMPLATES.TemplateResponse(request, template, {"viewer": viewer, "flash": flash, **values},
                                      status_code=status_code)
