"""``python -m bench --web [--json] [--screenshots]``: the web gallery on this machine.

- The job page of a 1,000-image job (10 prompts x 100 seeds, 384x384 stub drawings written into a job store):
  time to first byte and time until every thumbnail is visible, in headless chromium (Playwright), first with the
  thumbnails not yet made (cold) and then with them cached on disk (warm; a fresh browser context, so nothing
  comes from the browser's cache).
- The server alone: the page's 1,000 thumbnail URLs fetched one after another (per-request latency, no browser).
- The server's memory (RSS of the ``easel web`` process) idle, after those page loads, and with 50 live pages
  open (50 server-sent-event streams of the Queue page) while tasks move through the queue.

``--screenshots`` also saves docs/screenshots/job-grid.png and docs/screenshots/queue.png from a real stack (stub
WebUI, worker, a sweep, a few members' queued tasks).
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Browser, async_playwright

from common.settings import Settings
from common.tasks import Origin, now_ms
from easel.stack import LocalStack, free_port
from jobs.models import JobStatus, TaskStatus
from jobs.service import JobService
from jobs.store.tables import ImageRow, JobRow, TaskRow
from webui_stub.draw import draw, encode_png

CHROMIUM = "/usr/bin/chromium"
PROMPTS, SEEDS, SIZE = 10, 100, 384
LIVE_PAGES = 50
OWNER = "cli:bench"
SCREENSHOTS = Path("docs/screenshots")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


async def big_job(settings: Settings) -> str:
    """A finished 1,000-image job written straight into the store (what 1,000 generations would leave there)."""
    job_id, now = "b" * 16, now_ms()
    async with JobService.open(settings, queue=False) as jobs:
        files = jobs.store.files
        async with jobs.store.sessions.begin() as session:
            session.add(JobRow(id=job_id, owner=OWNER, origin='{"source":"cli"}', action="generate",
                               spec=f"{PROMPTS} prompts :: seed=1..{SEEDS}", status=JobStatus.DONE,
                               created_ms=now, updated_ms=now))
            for index in range(PROMPTS * SEEDS):
                prompt, seed = index // SEEDS, index % SEEDS
                task_id, text = f"{job_id}.{index}", f"bench prompt {prompt}"
                infotext = f"{text}\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: {seed}, Size: {SIZE}x{SIZE}"
                path = files.image_path(task_id, 0, seed)
                png = encode_png(draw(text, seed, SIZE, SIZE), infotext)
                await asyncio.to_thread(files.write, path, png)
                session.add(TaskRow(id=task_id, job_id=job_id, index=index, kind="txt2img",
                                    label=f"prompt {prompt + 1} seed={seed}", request="{}", status=TaskStatus.DONE,
                                    submitted_ms=now))
                session.add(ImageRow(id=f"{task_id}.0", task_id=task_id, job_id=job_id, index=0, path=path,
                                     seed=seed, infotext=infotext, width=SIZE, height=SIZE, created_ms=now))
    return job_id


async def login_link(log: Path, process_alive: Any) -> str:
    deadline = time.monotonic() + 60
    while True:
        match = re.search(r"(http://\S+/login/local\?token=\S+)", log.read_text())
        if match:
            return match.group(1)
        if not process_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"easel web did not start:\n{log.read_text()}")
        await asyncio.sleep(0.1)


async def logged_in_state(browser: Browser, link: str) -> Any:
    """Log in once with the one-time link; the session (cookie) is reused by fresh contexts."""
    context = await browser.new_context()
    await (await context.new_page()).goto(link)
    state = await context.storage_state()
    await context.close()
    return state


async def page_load(browser: Browser, state: Any, url: str) -> dict[str, float]:
    """Load ``url`` in a fresh context (empty browser cache): time to first byte, and until every thumbnail shows."""
    context = await browser.new_context(viewport={"width": 1600, "height": 1000}, storage_state=state)
    page = await context.new_page()
    await page.goto(url, wait_until="commit")
    await page.wait_for_function("(() => { const i = [...document.querySelectorAll('figure.image img')];"
                                 " return i.length > 0 && i.every(x => x.complete && x.naturalWidth > 0); })()",
                                 timeout=300_000, polling=50)
    timing = await page.evaluate("""(() => { const n = performance.getEntriesByType('navigation')[0];
        return {ttfb: n.responseStart - n.startTime, all: performance.now() - n.startTime,
                count: document.querySelectorAll('figure.image img').length}; })()""")
    await context.close()
    return {"ttfb_ms": round(timing["ttfb"], 1), "thumbnails_ms": round(timing["all"], 1), "images": timing["count"]}


async def live_pages(url: str, cookies: httpx.Cookies, count: int) -> list[asyncio.Task[None]]:
    """``count`` open Queue-page event streams, each having received its first table."""
    ready = asyncio.Event()
    opened = 0

    async def one() -> None:
        nonlocal opened
        async with httpx.AsyncClient(base_url=url, cookies=cookies, timeout=None) as http, \
                http.stream("GET", "/queue/events") as stream:
            first = True
            async for line in stream.aiter_lines():
                if first and line.startswith("event: queue"):
                    first, opened = False, opened + 1
                    if opened == count:
                        ready.set()

    tasks = [asyncio.create_task(one()) for _ in range(count)]
    async with asyncio.timeout(120):
        await ready.wait()
    return tasks


async def measure(screenshots: bool = False) -> dict[str, Any]:
    with LocalStack(step_ms=20, load_ms=50) as stack:
        data = stack.logs / "data"
        settings = Settings(redis_url=stack.redis_url, redis_prefix=stack.prefix, data_dir=str(data))
        started = time.monotonic()
        job_id = await big_job(settings)
        made_s = time.monotonic() - started
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {"REDIS_URL": stack.redis_url or "", "EASEL_REDIS_PREFIX": stack.prefix, "EASEL_DATA_DIR": str(data),
               "EASEL_WEB_LOGIN_TTL_S": "3600"}
        process, log = stack.spawn("web", ["web", "--local", "--port", str(port)], env)
        await login_link(log, lambda: process.poll() is None)
        async with httpx.AsyncClient() as probe:
            while True:
                try:
                    if (await probe.get(f"{url}/login")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
        figures: dict[str, Any] = {"job_images": PROMPTS * SEEDS, "made_job_s": round(made_s, 1),
                                   "rss_idle_mb": round(rss_kb(process.pid) / 1024, 1)}
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM)
            state = await logged_in_state(browser, await login_link(log, lambda: process.poll() is None))
            figures["job_page_cold"] = await page_load(browser, state, f"{url}/jobs/{job_id}")
            figures["job_page_warm"] = await page_load(browser, state, f"{url}/jobs/{job_id}")
            figures["rss_after_job_pages_mb"] = round(rss_kb(process.pid) / 1024, 1)
            cookies = httpx.Cookies()
            for cookie in state["cookies"]:
                cookies.set(cookie["name"], cookie["value"])
            figures["thumbnail_requests"] = await _thumbnail_requests(url, cookies, job_id)
            figures.update(await _live(stack, settings, url, cookies, process))
            if screenshots:
                await _screenshots(browser, state, settings, url)
            await browser.close()
        return figures


async def _thumbnail_requests(url: str, cookies: httpx.Cookies, job_id: str) -> dict[str, float]:
    """The server alone (no browser): the job page's 1,000 signed thumbnail URLs fetched one after another."""
    async with httpx.AsyncClient(base_url=url, cookies=cookies) as http:
        page = (await http.get(f"/jobs/{job_id}")).text
        urls = re.findall(r'src="(/images/[^"]+/thumb\.webp\?s=[0-9a-f]+)"', page)
        times = []
        for thumb in urls:
            started = time.perf_counter()
            (await http.get(thumb)).raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"count": len(times), "p50_ms": round(times[len(times) // 2], 2),
            "p99_ms": round(times[int(len(times) * 0.99)], 2), "total_s": round(sum(times) / 1000, 2)}


async def _live(stack: LocalStack, settings: Settings, url: str, cookies: httpx.Cookies,
                process: Any) -> dict[str, Any]:
    stack.start_worker("gpu0", stack.start_stub("stub0"))
    async with JobService.open(settings) as jobs:
        for n in range(4):  # tasks from a few members move through the queue while the pages are open
            await jobs.recording.submit_sweep(f"discord:{n}", Origin(source="cli"), "a :: seed=1,2,3,4,5,6",
                                              {"kind": "txt2img", "prompt": "-", "steps": 20, "width": 256,
                                               "height": 256})
        before = rss_kb(process.pid)
        streams = await live_pages(url, cookies, LIVE_PAGES)
        await asyncio.sleep(5)
        with_pages = rss_kb(process.pid)
        for task in streams:
            task.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    return {"live_pages": LIVE_PAGES, "rss_before_live_pages_mb": round(before / 1024, 1),
            "rss_with_live_pages_mb": round(with_pages / 1024, 1),
            "rss_per_live_page_kb": round((with_pages - before) / LIVE_PAGES, 1)}


async def _screenshots(browser: Browser, state: Any, settings: Settings, url: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with JobService.open(settings) as jobs:
        record = await jobs.recording.submit_sweep(
            OWNER, Origin(source="cli"),
            "a lighthouse at dusk | a red fox in snow | a bowl of ramen :: cfg=4,7 seed=1,2,3",
            {"kind": "txt2img", "prompt": "-", "steps": 8, "width": 256, "height": 256})
        async with asyncio.timeout(120):
            while (await jobs.store.job(record.job_id)).status.pending:
                await asyncio.sleep(0.2)
        images = (await jobs.store.job(record.job_id)).images
        await jobs.curation.set_kept(OWNER, [images[1].id, images[8].id], True)
        for n in range(3):
            await jobs.recording.submit_sweep(f"discord:{n}", Origin(source="cli"), "a :: seed=1,2,3,4",
                                              {"kind": "txt2img", "prompt": "-", "steps": 40, "width": 256,
                                               "height": 256})
        context = await browser.new_context(viewport={"width": 1400, "height": 900}, storage_state=state)
        page = await context.new_page()
        await page.goto(f"{url}/queue")
        await page.wait_for_selector("#queue progress")
        await page.screenshot(path=str(SCREENSHOTS / "queue.png"))
        await page.goto(f"{url}/jobs/{record.job_id}")
        await page.wait_for_function("[...document.querySelectorAll('figure.image img')]"
                                     ".every(i => i.complete && i.naturalWidth > 0)")
        await page.locator("figure.image").nth(4).click()
        await page.screenshot(path=str(SCREENSHOTS / "job-grid.png"), full_page=True)
        await context.close()
