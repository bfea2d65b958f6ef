"""Fixtures of the web tests: a real ``easel web`` app served by uvicorn in the test's loop, over a job service on
the test's Redis prefix and a SQLite store in the test's folder, with a fake Discord OAuth2 server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from aiohttp import web

from common.settings import Settings
from easel.stack import free_port
from jobs.service import JobService
from tests.web.fake_oauth import CLIENT_ID, CLIENT_SECRET, FakeDiscordOAuth
from web.app import create_app
from web.auth import LocalLogins

LOCAL_OWNER = "cli:tester"
ALICE, BOB, MOD = "1001", "1002", "1003"
SECRET = "s" * 40


@pytest.fixture
async def discord_oauth() -> AsyncIterator[FakeDiscordOAuth]:
    fake = FakeDiscordOAuth(users={ALICE: "alice", BOB: "bob", MOD: "mod"})
    runner = web.AppRunner(fake.app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield fake
    await runner.cleanup()


@pytest.fixture
def web_settings(make_settings: Callable[..., Settings], tmp_path: Path,
                 discord_oauth: FakeDiscordOAuth) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": str(tmp_path / "data"), "web_secret": SECRET, "discord_client_id": CLIENT_ID,
            "discord_client_secret": CLIENT_SECRET, "discord_api_url": discord_oauth.url,
            "discord_oauth_url": f"{discord_oauth.url}/oauth2/authorize", "web_moderators": [f"discord:{MOD}"],
        }
        return make_settings(**{**values, **overrides})

    return make


@dataclass
class WebServer:
    url: str
    jobs: JobService
    logins: LocalLogins
    settings: Settings

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=20)

    @contextlib.asynccontextmanager
    async def local_session(self) -> AsyncIterator[httpx.AsyncClient]:
        """A client logged in through a one-time local link (as ``LOCAL_OWNER``)."""
        async with self.client() as http:
            response = await http.get(f"/login/local?token={self.logins.issue()}")
            assert response.status_code == 303, response.text
            yield http

    @contextlib.asynccontextmanager
    async def discord_session(self, fake: FakeDiscordOAuth, user: str) -> AsyncIterator[httpx.AsyncClient]:
        """A client logged in through the Discord OAuth2 flow, as ``user`` (following redirects as a browser)."""
        fake.signed_in = user
        async with self.client() as http:
            response = await http.get("/auth/discord", follow_redirects=True)
            assert response.status_code == 200 and response.url.path == "/jobs", response.text
            yield http


@pytest.fixture
async def start_web(web_settings: Callable[..., Settings],
                    tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[WebServer]]]:
    """Serve the web app with uvicorn on a free port (real HTTP); stopped after the test."""
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(**overrides: Any) -> WebServer:
        port = free_port()
        settings = web_settings(web_url=f"http://127.0.0.1:{port}", **overrides)
        stack = contextlib.AsyncExitStack()
        jobs = await stack.enter_async_context(JobService.open(settings))
        logins = LocalLogins(LOCAL_OWNER, settings.web_login_ttl_s)
        config = uvicorn.Config(create_app(settings, logins=logins, jobs=jobs), host="127.0.0.1", port=port,
                                log_level="warning", timeout_graceful_shutdown=1)
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        servers.append((server, task))
        cleanups.append(stack)
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
        return WebServer(f"http://127.0.0.1:{port}", jobs, logins, settings)

    cleanups: list[contextlib.AsyncExitStack] = []
    yield start
    for server, task in servers:
        server.should_exit = True
        await task
    for stack in cleanups:
        await stack.aclose()


@pytest.fixture
async def served(start_web: Callable[..., Awaitable[WebServer]]) -> WebServer:
    return await start_web()
