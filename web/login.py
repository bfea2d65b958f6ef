"""Logging in and out: the one-time local link (``easel web --local``) and Discord OAuth2."""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from web.auth import check_csrf, log_in
from web.context import context_of, render


async def login_page(request: Request) -> Response:
    web = context_of(request)
    return render(request, "login.html", discord=web.discord.configured, local=web.logins is not None)


async def local_login(request: Request) -> Response:
    web = context_of(request)
    token = request.query_params.get("token", "")
    if web.logins is None or not web.logins.redeem(token):
        return render(request, "login.html", status_code=403, discord=web.discord.configured,
                      local=web.logins is not None,
                      error="That login link was used already or has expired: restart `easel web --local` "
                            "for a new one.")
    log_in(request, web.logins.owner, web.logins.owner.removeprefix("cli:"), moderator=True)
    return RedirectResponse("/jobs", status_code=303)


async def discord_start(request: Request) -> Response:
    web = context_of(request)
    if not web.discord.configured:
        return render(request, "login.html", status_code=400, discord=False, local=web.logins is not None,
                      error="Discord login is not set up: set EASEL_DISCORD_CLIENT_ID, EASEL_DISCORD_CLIENT_SECRET "
                            "and EASEL_WEB_URL.")
    state = secrets.token_urlsafe(24)
    request.session["oauth_state"] = state
    return RedirectResponse(web.discord.authorize_url(state), status_code=303)


async def discord_callback(request: Request) -> Response:
    web = context_of(request)
    state, code = request.query_params.get("state", ""), request.query_params.get("code", "")
    expected = request.session.pop("oauth_state", None)
    if not expected or not secrets.compare_digest(expected, state) or not code:
        return render(request, "login.html", status_code=400, discord=web.discord.configured,
                      local=web.logins is not None,
                      error="The Discord login did not come back from the login this browser started: try again.")
    user = await web.discord.user(code)
    log_in(request, f"discord:{user.id}", user.name, moderator=await web.discord.is_moderator(user.id))
    return RedirectResponse("/jobs", status_code=303)


async def logout(request: Request) -> Response:
    await check_csrf(request)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


ROUTES = [
    Route("/login", login_page),
    Route("/login/local", local_login),
    Route("/auth/discord", discord_start),
    Route("/auth/discord/callback", discord_callback),
    Route("/logout", logout, methods=["POST"]),
]
