"""Who is looking: signed sessions, one-time local login links, Discord OAuth2 (``identify``) and CSRF tokens.

A session (Starlette's ``SessionMiddleware``: a cookie signed with ``EASEL_WEB_SECRET``) holds the viewer's owner id
(``discord:<id>`` as the bot uses, or the CLI's ``cli:<user>`` for ``--local``), whether they moderate, and a CSRF
token that every POST must echo (form field ``csrf`` or header ``X-CSRF-Token``).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
from starlette.requests import Request

from common.errors import EaselError
from common.settings import Settings

MANAGE_MESSAGES, ADMINISTRATOR = 1 << 13, 1 << 3  # Discord permission bits that make a bot moderator too


class LoginRequired(EaselError):
    """No session: the page sends the viewer to /login."""


class CsrfFailed(EaselError):
    """A POST without the session's CSRF token."""


@dataclass(frozen=True)
class Viewer:
    owner: str
    name: str
    moderator: bool
    csrf: str

    def may_see(self, owner: str) -> bool:
        return self.moderator or owner == self.owner


def log_in(request: Request, owner: str, name: str, moderator: bool) -> None:
    request.session.clear()  # a fresh session (and CSRF token) at each login: no fixation
    request.session.update({"owner": owner, "name": name, "moderator": moderator, "csrf": secrets.token_urlsafe(24),
                            "since": int(time.time())})


def viewer_of(request: Request) -> Viewer:
    session = request.session
    if not session.get("owner"):
        raise LoginRequired("log in first")
    return Viewer(owner=session["owner"], name=session.get("name", session["owner"]),
                  moderator=bool(session.get("moderator")), csrf=session["csrf"])


async def check_csrf(request: Request) -> None:
    """The POST carries the session's token (a form field or a header); raises :class:`CsrfFailed` otherwise."""
    expected = request.session.get("csrf")
    given = request.headers.get("x-csrf-token")
    if given is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get("csrf")
        given = value if isinstance(value, str) else None
    if not expected or not given or not secrets.compare_digest(str(expected), given):
        raise CsrfFailed("the form was stale or came from another site (CSRF token missing or wrong): "
                         "reload the page and try again")


class LocalLogins:
    """One-time login links for ``easel web --local``: each token works once, until it expires."""

    def __init__(self, owner: str, ttl_s: float) -> None:
        self.owner = owner
        self._ttl_s = ttl_s
        self._tokens: dict[str, float] = {}

    def issue(self) -> str:
        token = secrets.token_urlsafe(32)
        self._tokens[token] = time.monotonic() + self._ttl_s
        return token

    def redeem(self, token: str) -> bool:
        expires = self._tokens.pop(token, None)
        now = time.monotonic()
        self._tokens = {t: e for t, e in self._tokens.items() if e > now}
        return expires is not None and expires > now


@dataclass(frozen=True)
class DiscordUser:
    id: str
    name: str


class DiscordLogin:
    """Discord's OAuth2 authorization-code flow with the ``identify`` scope, over httpx; the API base is a setting
    (``EASEL_DISCORD_API_URL``), so tests point it at a fake."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def configured(self) -> bool:
        return bool(self.settings.discord_client_id and self.settings.discord_client_secret and self.settings.web_url)

    def redirect_uri(self) -> str:
        return f"{(self.settings.web_url or '').rstrip('/')}/auth/discord/callback"

    def authorize_url(self, state: str) -> str:
        query = urlencode({"client_id": self.settings.discord_client_id, "response_type": "code", "scope": "identify",
                           "redirect_uri": self.redirect_uri(), "state": state})
        return f"{self.settings.discord_oauth_url}?{query}"

    async def user(self, code: str) -> DiscordUser:
        """Exchange the code for a token and ask who it belongs to."""
        settings = self.settings
        secret = settings.discord_client_secret.get_secret_value() if settings.discord_client_secret else ""
        api = settings.discord_api_url.rstrip("/")
        async with httpx.AsyncClient(timeout=10) as http:
            try:
                token = await http.post(f"{api}/oauth2/token", data={
                    "grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri(),
                    "client_id": settings.discord_client_id, "client_secret": secret,
                })
                token.raise_for_status()
                me = await http.get(f"{api}/users/@me",
                                    headers={"Authorization": f"Bearer {token.json()['access_token']}"})
                me.raise_for_status()
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                raise EaselError(f"Discord did not confirm the login ({exc}); try again, or check "
                                 "EASEL_DISCORD_CLIENT_ID / EASEL_DISCORD_CLIENT_SECRET") from exc
        data = me.json()
        return DiscordUser(id=str(data["id"]), name=str(data.get("global_name") or data.get("username") or data["id"]))

    async def is_moderator(self, user_id: str) -> bool:
        """Listed in ``EASEL_WEB_MODERATORS``, or (with the bot token) holding a moderator role or Manage Messages in
        one of ``EASEL_DISCORD_GUILD_IDS`` — the same people the bot lets act on any job."""
        settings = self.settings
        if f"discord:{user_id}" in settings.web_moderators:
            return True
        if settings.discord_token is None or not settings.discord_guild_ids:
            return False
        api = settings.discord_api_url.rstrip("/")
        headers = {"Authorization": f"Bot {settings.discord_token.get_secret_value()}"}
        async with httpx.AsyncClient(timeout=10, headers=headers) as http:
            for guild in settings.discord_guild_ids:
                member = await http.get(f"{api}/guilds/{guild}/members/{user_id}")
                if member.status_code != 200:
                    continue
                held = {int(r) for r in member.json().get("roles", [])}
                if held & set(settings.web_moderator_roles):
                    return True
                roles = await http.get(f"{api}/guilds/{guild}/roles")
                if roles.status_code != 200:
                    continue
                allowed = 0
                for role in roles.json():
                    if int(role["id"]) in held or int(role["id"]) == guild:  # @everyone has the guild's id
                        allowed |= int(role.get("permissions", 0))
                if allowed & (MANAGE_MESSAGES | ADMINISTRATOR):
                    return True
        return False
