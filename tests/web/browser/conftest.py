"""Browser tests: Playwright driving Debian's chromium against a real ``easel web --local`` process, with a real
Redis, a stub WebUI and a worker process (``LocalStack``), and the fake Discord OAuth2 server.

They skip only where chromium is missing and ``CI`` is not set; in CI (``CI=true``) a missing browser fails them.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, async_playwright

from common.settings import Settings
from easel.stack import LocalStack, free_port
from jobs.service import JobService
from tests.web.fake_oauth import CLIENT_ID, CLIENT_SECRET, FakeDiscordOAuth

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _need_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("CI"):
        pytest.fail("CI is set but chromium is missing: apt-get install -y chromium (.ci/run does)")
    pytest.skip("chromium is not installed (apt-get install -y chromium); CI runs these tests")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class EaselWeb:
    url: str
    login_link: str
    settings: Settings
    stack: LocalStack


@pytest.fixture
def easel_web(redis_url: str, prefix: str, tmp_path: Path, discord_oauth: FakeDiscordOAuth) -> Iterator[EaselWeb]:
    """``easel web --local`` as its own process, beside a stub WebUI and a worker process."""
    _need_chromium()
    data = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with LocalStack(redis_url=redis_url, prefix=prefix, step_ms=15, load_ms=20) as stack:
        env = {"REDIS_URL": redis_url, "EASEL_REDIS_PREFIX": prefix, "EASEL_DATA_DIR": str(data),
               "EASEL_WEB_URL": url, "EASEL_DISCORD_CLIENT_ID": CLIENT_ID,
               "EASEL_DISCORD_CLIENT_SECRET": CLIENT_SECRET, "EASEL_DISCORD_API_URL": discord_oauth.url,
               "EASEL_DISCORD_OAUTH_URL": f"{discord_oauth.url}/oauth2/authorize", "EASEL_LOG_LEVEL": "WARNING"}
        process, log = stack.spawn("web", ["web", "--local", "--port", str(port)], env)
        deadline = time.monotonic() + 30
        link = None
        while link is None:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"easel web printed no login link:\n{log.read_text()}"
            match = re.search(r"(http://\S+/login/local\?token=\S+)", log.read_text())
            link = match.group(1) if match else None
            time.sleep(0.05)
        while not _answers(f"{url}/login"):  # started (and its store migrated) once it answers
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        settings = Settings(redis_url=redis_url, redis_prefix=prefix, data_dir=str(data))
        yield EaselWeb(url, link, settings, stack)


@pytest.fixture
async def store(easel_web: EaselWeb) -> AsyncIterator[JobService]:
    """The same job store and queue the web process uses (for submitting what the pages then show)."""
    async with JobService.open(easel_web.settings) as jobs:
        yield jobs


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    _need_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        await browser.close()
