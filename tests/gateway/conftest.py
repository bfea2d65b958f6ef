"""Gateway fixtures: a real gateway on a loopback port (optionally TLS with a throwaway CA), node tokens, nodes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from common.connection import open_redis
from common.nodes import NodeStore
from common.queue.keys import Keys
from common.settings import Settings
from gateway.server import Gateway
from workers.main import Worker


@dataclass
class RunningGateway:
    gateway: Gateway
    runner: web.AppRunner
    port: int
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}" if self.scheme == "http" else f"https://localhost:{self.port}"

    @property
    def nodes(self) -> NodeStore:
        return self.gateway.nodes

    async def stop(self) -> None:
        await self.runner.cleanup()


@pytest.fixture
async def start_gateway(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[Callable[..., Awaitable[RunningGateway]]]:
    started: list[tuple[RunningGateway, Any]] = []

    async def start(*, ssl_context: Any = None, port: int = 0, **overrides: Any) -> RunningGateway:
        settings = make_settings(gateway_secret="test-secret", **overrides)
        redis = await open_redis(settings)
        gateway = Gateway(settings, redis)
        runner = web.AppRunner(gateway.app(), handle_signals=False, access_log=None)
        await runner.setup()
        host = "localhost" if ssl_context is not None else "127.0.0.1"
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
        running = RunningGateway(gateway, runner, runner.addresses[0][1], "https" if ssl_context else "http")
        started.append((running, redis))
        return running

    yield start
    for running, redis in started:
        await running.stop()
        await redis.aclose()


@pytest.fixture
async def gateway(start_gateway: Callable[..., Awaitable[RunningGateway]]) -> RunningGateway:
    return await start_gateway()


@pytest.fixture
async def nodes(make_settings: Callable[..., Settings]) -> AsyncIterator[NodeStore]:
    settings = make_settings()
    redis = await open_redis(settings)
    yield NodeStore(redis, Keys(settings.redis_prefix))
    await redis.aclose()


@pytest.fixture
async def start_node(make_settings: Callable[..., Settings]) -> AsyncIterator[Callable[..., Awaitable[Worker]]]:
    """Run a volunteer node (the same worker code) against a gateway; returns once the gateway welcomed it."""
    running: list[tuple[Worker, asyncio.Task[None]]] = []

    async def start(gateway_url: str, token: str, webui_url: str, **overrides: Any) -> Worker:
        settings = make_settings(webui_url=webui_url, gateway_url=gateway_url, node_token=token,
                                 redis_url="redis://127.0.0.1:1/0", **overrides)  # a node never reaches Redis
        worker = Worker(settings)
        await worker.start()
        running.append((worker, asyncio.create_task(worker.run())))
        return worker

    yield start
    for worker, task in running:
        with contextlib.suppress(Exception):
            await worker.close()
        task.cancel()  # a node whose gateway is gone (a test closed its proxy) waits out the outage otherwise
        with contextlib.suppress(BaseException):
            await task
