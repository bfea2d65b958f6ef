"""The web app: :func:`create_app` wires the routes, signed sessions, error pages and the live hub around one job
service (the store and a queue client), opened for the app's lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from common.errors import EaselError, InvalidRequest, NotFound, NotPermitted
from common.settings import ConfigurationError, SettingMissing, Settings
from jobs.service import JobService
from web import actions, files, login, pages, stream
from web.auth import CsrfFailed, DiscordLogin, LocalLogins, LoginRequired
from web.context import WebContext, render
from web.live import LiveHub
from web.signing import ThumbSigner

STATIC = Path(__file__).with_name("static")


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "") or request.method != "GET"


async def _error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, LoginRequired):
        if request.method == "GET" and "text/event-stream" not in request.headers.get("accept", ""):
            return RedirectResponse("/login", status_code=303)
        status = 401
    elif isinstance(exc, NotFound):
        status = 404
    elif isinstance(exc, NotPermitted | CsrfFailed):
        status = 403
    elif isinstance(exc, HTTPException):
        status = exc.status_code
    elif isinstance(exc, InvalidRequest | EaselError):
        status = 400
    else:
        status = 500
    message = str(exc.detail if isinstance(exc, HTTPException) else exc)
    if status == 500:
        message = "something went wrong on the server; its log says what"
    if _wants_json(request):
        return JSONResponse({"error": message}, status_code=status)
    return render(request, "error.html", status_code=status, status=status, message=message)


def create_app(settings: Settings, *, logins: LocalLogins | None = None, jobs: JobService | None = None) -> Starlette:
    """The app; ``logins`` enables one-time local links (``--local``); ``jobs`` reuses an open job service."""
    if settings.web_secret is None or len(settings.web_secret.get_secret_value()) < 32:
        raise SettingMissing("EASEL_WEB_SECRET is not set (or shorter than 32 characters): export "
                             "EASEL_WEB_SECRET=$(python -c 'import secrets; print(secrets.token_urlsafe(32))'), "
                             "or run `easel web --local`, which keeps one in the data folder")
    secret = settings.web_secret.get_secret_value()
    secure = (settings.web_url or "").startswith("https://")
    if settings.web_url is not None and not settings.web_url.startswith(("http://", "https://")):
        raise ConfigurationError(f"EASEL_WEB_URL={settings.web_url!r}: give the full URL, e.g. https://easel.example")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with _service(settings, jobs) as service:
            hub = LiveHub(service)
            app.state.web = WebContext(settings=settings, jobs=service, hub=hub, discord=DiscordLogin(settings),
                                       logins=logins, signer=ThumbSigner(secret))
            hub.start()
            try:
                yield
            finally:
                await hub.stop()

    handlers = {Exception: _error, HTTPException: _error, EaselError: _error}
    return Starlette(
        routes=[*login.ROUTES, *pages.ROUTES, *files.ROUTES, *actions.ROUTES, *stream.ROUTES,
                Mount("/static", StaticFiles(directory=STATIC), name="static")],
        middleware=[Middleware(SessionMiddleware, secret_key=secret,
                               session_cookie="easel_session", max_age=int(settings.web_session_days * 86400),
                               same_site="lax", https_only=secure)],
        exception_handlers=handlers,
        lifespan=lifespan,
    )


@asynccontextmanager
async def _service(settings: Settings, jobs: JobService | None) -> AsyncIterator[JobService]:
    if jobs is not None:
        yield jobs
        return
    async with JobService.open(settings, queue=settings.redis_url is not None) as service:
        yield service
