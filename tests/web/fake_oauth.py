"""A local fake of Discord's OAuth2 endpoints (authorize page, token exchange, /users/@me, guild members and roles),
so the web's login is tested over real HTTP. ``signed_in`` is the Discord account of "the browser"."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from urllib.parse import urlencode

from aiohttp import web

CLIENT_ID, CLIENT_SECRET = "4242", "fake-client-secret"


@dataclass
class FakeDiscordOAuth:
    users: dict[str, str] = field(default_factory=dict)  # id -> name
    signed_in: str | None = None
    member_roles: dict[str, list[str]] = field(default_factory=dict)  # user id -> role ids in every guild
    codes: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    url: str = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/oauth2/authorize", self.authorize)
        app.router.add_post("/oauth2/token", self.token)
        app.router.add_get("/users/@me", self.me)
        app.router.add_get("/guilds/{guild}/members/{user}", self.member)
        app.router.add_get("/guilds/{guild}/roles", self.roles)
        return app

    async def authorize(self, request: web.Request) -> web.Response:
        query = request.query
        if query.get("client_id") != CLIENT_ID or query.get("scope") != "identify" or self.signed_in is None:
            return web.Response(status=400, text="bad authorize request")
        code = secrets.token_hex(8)
        self.codes[code] = self.signed_in
        target = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
        raise web.HTTPFound(target)

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        user = self.codes.pop(str(form.get("code")), None)
        if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET) or user is None:
            return web.json_response({"error": "invalid_grant"}, status=400)
        token = secrets.token_hex(8)
        self.tokens[token] = user
        return web.json_response({"access_token": token, "token_type": "Bearer", "scope": "identify"})

    async def me(self, request: web.Request) -> web.Response:
        user = self.tokens.get(request.headers.get("Authorization", "").removeprefix("Bearer "))
        if user is None:
            return web.json_response({"message": "401: Unauthorized"}, status=401)
        return web.json_response({"id": user, "username": self.users[user], "global_name": self.users[user]})

    async def member(self, request: web.Request) -> web.Response:
        user = request.match_info["user"]
        if user not in self.users:
            return web.json_response({"message": "Unknown Member"}, status=404)
        return web.json_response({"user": {"id": user}, "roles": self.member_roles.get(user, [])})

    async def roles(self, request: web.Request) -> web.Response:
        guild = request.match_info["guild"]
        return web.json_response([{"id": guild, "permissions": "0"}, {"id": "777", "permissions": str(1 << 13)}])
