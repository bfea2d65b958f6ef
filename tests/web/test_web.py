"""The web app over real HTTP (uvicorn), a real Redis, the stub WebUI and a worker: logins, who sees what, the job
grid and curation through the same job layer as the bot and the CLI."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from common.tasks import Origin
from jobs.models import JobDetail
from tests.conftest import StubServer
from tests.jobs.conftest import settled
from tests.web.conftest import ALICE, BOB, LOCAL_OWNER, MOD, WebServer
from tests.web.fake_oauth import FakeDiscordOAuth
from web.auth import LocalLogins

BASE: dict[str, Any] = {"kind": "txt2img", "prompt": "-", "steps": 2, "width": 64, "height": 64}
WEB = Origin(source="cli")


async def sweep(served: WebServer, owner: str, spec: str = "a fox | a cat :: cfg=5,9") -> JobDetail:
    record = await served.jobs.recording.submit_sweep(owner, WEB, spec, BASE)
    return await settled(served.jobs, record.job_id)


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert match, "the page carries no CSRF token"
    return match.group(1)


async def test_local_link_logs_in_once_and_pages_need_a_login(served: WebServer) -> None:
    async with served.client() as anonymous:
        assert (await anonymous.get("/jobs")).headers["location"] == "/login"
        refused = await anonymous.post("/jobs/abc/delete-not-kept", headers={"Accept": "application/json"})
        assert refused.status_code == 401
    token = served.logins.issue()
    async with served.client() as http:
        assert (await http.get(f"/login/local?token={token}")).status_code == 303
        assert "Your jobs" in (await http.get("/jobs")).text
    async with served.client() as again:
        reused = await again.get(f"/login/local?token={token}")
        assert reused.status_code == 403 and "used already or has expired" in reused.text


async def test_a_local_link_expires() -> None:
    logins = LocalLogins(LOCAL_OWNER, ttl_s=0.000_001)
    token = logins.issue()
    assert not logins.redeem(token)
    assert not logins.redeem("guessed")


async def test_job_grid_curation_and_a_derived_job(served: WebServer, stub: StubServer,
                                                   start_worker: Callable[..., Awaitable[Any]]) -> None:
    await start_worker(stub.url)
    job = await sweep(served, LOCAL_OWNER)
    async with served.local_session() as http:
        page = await http.get(f"/jobs/{job.id}")
        ids = re.findall(r'<figure class="image" data-id="([^"]+)"', page.text)
        assert sorted(ids) == sorted(i.id for i in job.images) and len(ids) == 4
        assert ">cfg=5<" in page.text and ">prompt 2<" in page.text  # laid out by the sweep's axes
        csrf = csrf_of(page.text)

        thumb = await http.get(f"/images/{ids[0]}/thumb.webp")
        assert thumb.headers["content-type"] == "image/webp" and thumb.content[8:12] == b"WEBP"
        cached = await http.get(f"/images/{ids[0]}/thumb.webp", headers={"If-None-Match": thumb.headers["etag"]})
        assert cached.status_code == 304
        full = await http.get(f"/images/{ids[0]}/full.png")
        assert full.content.startswith(b"\x89PNG")
        assert "Steps: 2" in (await http.get(f"/images/{ids[0]}")).text  # the infotext

        json_headers = {"Accept": "application/json"}
        forged = await http.post(f"/jobs/{job.id}/images", json={"action": "keep", "ids": ids[:2]},
                                 headers=json_headers)
        assert forged.status_code == 403 and "CSRF" in forged.json()["error"]
        kept = await http.post(f"/jobs/{job.id}/images", json={"action": "keep", "ids": ids[:2]},
                               headers={**json_headers, "X-CSRF-Token": csrf})
        assert kept.status_code == 200, kept.text
        gone = await http.post(f"/jobs/{job.id}/delete-not-kept", data={"csrf": csrf})
        assert gone.status_code == 303 and "deleted 2 image(s) not kept" in (await http.get(f"/jobs/{job.id}")).text
        detail = await served.jobs.store.job(job.id)
        assert {i.id for i in detail.images if i.kept} == set(ids[:2])
        assert {i.id for i in detail.images if i.deleted} == set(ids[2:])

        upscale = await http.post(f"/jobs/{job.id}/upscale-kept", data={"csrf": csrf, "scale": "2"})
        derived_id = upscale.headers["location"].rsplit("/", 1)[1]
        derived = await settled(served.jobs, derived_id)
        assert derived.parent_job_id == job.id and len(derived.images) == 2
        assert f'href="/jobs/{derived_id}"' in (await http.get(f"/jobs/{job.id}")).text
        assert f'id="parent-link">{job.id}<' in (await http.get(f"/jobs/{derived_id}")).text

        export = await http.get(f"/jobs/{job.id}/export.zip")
        assert export.headers["content-type"] == "application/zip" and export.content[:2] == b"PK"


async def test_members_see_only_their_own_jobs(served: WebServer, discord_oauth: FakeDiscordOAuth,
                                               stub: StubServer, start_worker: Callable[..., Awaitable[Any]]) -> None:
    await start_worker(stub.url)
    job = await sweep(served, f"discord:{ALICE}", "a fox")
    image = job.images[0].id
    urls = [f"/jobs/{job.id}", f"/images/{image}", f"/images/{image}/thumb.webp", f"/images/{image}/full.png",
            f"/jobs/{job.id}/export.zip", f"/compare?a={image}&b={image}"]
    async with served.discord_session(discord_oauth, ALICE) as alice:
        assert [(await alice.get(url)).status_code for url in urls] == [200] * len(urls)
        assert job.id in (await alice.get("/jobs")).text
        signed = re.search(r'src="(/images/[^"]+/thumb\.webp\?s=[0-9a-f]+)"', (await alice.get(urls[0])).text)
        assert signed and (await alice.get(signed.group(1))).status_code == 200
        urls.append(signed.group(1))  # a link signed for alice is no pass for anyone else
    async with served.discord_session(discord_oauth, BOB) as bob:
        assert [(await bob.get(url)).status_code for url in urls] == [403] * len(urls)
        assert job.id not in (await bob.get("/jobs")).text
        csrf = csrf_of((await bob.get("/jobs")).text)
        keep = await bob.post(f"/jobs/{job.id}/images", json={"action": "keep", "ids": [image]},
                              headers={"Accept": "application/json", "X-CSRF-Token": csrf})
        assert keep.status_code == 403
        assert (await bob.get("/jobs/0000000000000000")).status_code == 404
        assert (await bob.get("/images/0000000000000000.0.0/thumb.webp")).status_code == 404
    async with served.discord_session(discord_oauth, MOD) as moderator:
        assert [(await moderator.get(url)).status_code for url in urls] == [200] * len(urls)
    assert not (await served.jobs.store.job(job.id)).images[0].kept


async def test_a_forged_oauth_callback_is_refused(served: WebServer) -> None:
    async with served.client() as http:
        response = await http.get("/auth/discord/callback?code=x&state=made-up")
        assert response.status_code == 400 and "did not come back" in response.text
        assert (await http.get("/jobs")).status_code == 303


async def test_moderator_by_guild_role(start_web: Callable[..., Awaitable[WebServer]],
                                       discord_oauth: FakeDiscordOAuth) -> None:
    served = await start_web(discord_token="bot-token", discord_guild_ids=[555], web_moderators=[])
    discord_oauth.member_roles[BOB] = ["777"]  # a role with Manage Messages, as the bot's moderators have
    async with served.discord_session(discord_oauth, BOB) as bob:
        assert "moderator" in (await bob.get("/jobs")).text
    async with served.discord_session(discord_oauth, ALICE) as alice:
        assert "· moderator" not in (await alice.get("/jobs")).text


async def test_queue_and_workers_pages_stream(served: WebServer, stub: StubServer,
                                              start_worker: Callable[..., Awaitable[Any]]) -> None:
    await start_worker(stub.url)
    async with served.local_session() as http:
        assert "test-gpu" in (await http.get("/workers")).text
        async with http.stream("GET", "/queue/events") as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            async for line in events.aiter_lines():
                if line.startswith("event:"):
                    assert line.strip() == "event: queue"
                    break


async def test_without_a_session_the_event_streams_refuse(served: WebServer) -> None:
    async with httpx.AsyncClient(base_url=served.url) as http:
        response = await http.get("/queue/events", headers={"Accept": "text/event-stream"})
        assert response.status_code == 401


async def test_cancel_is_for_the_owner_or_a_moderator(served: WebServer, discord_oauth: FakeDiscordOAuth,
                                                      stub: StubServer,
                                                      start_worker: Callable[..., Awaitable[Any]]) -> None:
    await start_worker(stub.url)
    record = await served.jobs.recording.submit_sweep(f"discord:{ALICE}", WEB, "a :: steps=40,41,42", BASE)
    last = record.task_ids[-1]
    async with served.discord_session(discord_oauth, BOB) as bob:
        csrf = csrf_of((await bob.get("/queue")).text)
        refused = await bob.post(f"/tasks/{last}/cancel", data={"csrf": csrf}, headers={"Accept": "application/json"})
        assert refused.status_code == 403
    async with served.discord_session(discord_oauth, ALICE) as alice:
        csrf = csrf_of((await alice.get("/queue")).text)
        done = await alice.post(f"/tasks/{last}/cancel", data={"csrf": csrf}, headers={"Accept": "application/json"})
        assert done.status_code == 200 and done.json()["message"].startswith(f"task {last}: ")
    assert (await settled(served.jobs, record.job_id)).tasks[-1].status.value in ("cancelled", "done")


async def test_jobs_page_filters(served: WebServer, stub: StubServer,
                                 start_worker: Callable[..., Awaitable[Any]]) -> None:
    await start_worker(stub.url)
    fox, cat = await sweep(served, LOCAL_OWNER, "a fox"), await sweep(served, LOCAL_OWNER, "a cat")
    async with served.local_session() as http:
        listed = (await http.get("/jobs", params={"q": "fox", "status": "done"})).text
        assert fox.id in listed and cat.id not in listed
        assert "(0)" in (await http.get("/jobs", params={"kept": "1"})).text
        assert (await http.get("/jobs", params={"status": "nonsense"})).status_code == 400
