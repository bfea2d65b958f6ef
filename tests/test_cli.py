"""The `easel` command as a user runs it: real processes for the stub WebUI, the worker and the CLI."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from common.images import read_infotext
from common.infotext import parse_infotext
from common.queue.keys import Keys
from easel.stack import LocalStack
from tests.conftest import RestartableRedis


def easel(*args: str, env: dict[str, str] | None = None, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EASEL_") and k != "REDIS_URL"}
    return subprocess.run(
        [sys.executable, "-m", "easel", *args], capture_output=True, text=True, timeout=timeout,
        env={**clean, "COLUMNS": "160", **(env or {})},
    )


@pytest.fixture
def stack(redis_url: str, prefix: str) -> Iterator[LocalStack]:
    with LocalStack(redis_url=redis_url, prefix=prefix, step_ms=5, load_ms=50) as running:
        yield running


def test_submit_against_a_running_stack(stack: LocalStack, tmp_path: Path) -> None:
    out, data = tmp_path / "out", tmp_path / "data"
    done = easel("submit", "a castle on a hill", "--steps", "5", "--width", "128", "--height", "128",
                 "--seed", "99", "--count", "2", "--sweep", "cfg=4,8", "--out", str(out),
                 "--redis-url", stack.redis_url or "", "--prefix", stack.prefix, env={"EASEL_DATA_DIR": str(data)})
    assert done.returncode == 0, done.stderr + done.stdout
    files = sorted(out.glob("*/*.png"))
    assert len(files) == 4  # 2 tasks x 2 images
    [job] = json.loads(easel("jobs", "ls", "--json", "--all", env={"EASEL_DATA_DIR": str(data)}).stdout)
    assert (job["id"], job["status"], job["images"]) == (files[0].parent.name, "done", 4)  # recorded in the store
    seeds = set()
    for path in files:
        info = parse_infotext(read_infotext(path.read_bytes()) or "")
        assert info.prompt == "a castle on a hill" and info.steps == 5
        seeds.add(info.seed)
    assert seeds == {99, 100}
    assert "2 task(s) queued" in done.stdout


def test_submit_refuses_bad_input_before_queueing(stack: LocalStack, tmp_path: Path) -> None:
    common = ["--redis-url", stack.redis_url or "", "--prefix", stack.prefix, "--out", str(tmp_path)]
    data = {"EASEL_DATA_DIR": str(tmp_path / "data")}
    cases = [
        (["x", "--width", "500"], "width: must be a multiple of 8, got 500 (try 496 or 504)"),
        (["x", "--steps", "500"], "steps: must be between 1 and 100, got 500"),
        (["", "--steps", "5"], "prompt: is required"),
        (["x", "--checkpoint", "nope"], "checkpoint: no worker has 'nope'"),
        (["x", "--sweep", "cfg=1,2,3,4,5,6,7,8,9 steps=1,2,3,4,5,6,7,8"], "sweep: makes 72 tasks; the limit is 64"),
        (["x", "--init-image", str(tmp_path / "missing.png")], "missing.png: cannot read it"),
    ]
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("hello")
    cases.append((["x", "--init-image", str(not_an_image)], "init_image: the file is not an image"))
    for args, message in cases:
        done = easel("submit", *args, *common, env=data)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert message in done.stderr, (args, done.stderr)
    assert not list(tmp_path.glob("*/*.png"))
    assert json.loads(easel("jobs", "ls", "--json", "--all", env=data).stdout) == []  # refused jobs leave no record


def test_worker_without_redis_url_names_the_variable() -> None:
    done = easel("worker", "--webui-url", "http://127.0.0.1:1")
    assert done.returncode == 2
    assert "REDIS_URL is not set" in done.stderr


def test_worker_without_webui_url_names_the_variable(redis_url: str) -> None:
    done = easel("worker", "--redis-url", redis_url)
    assert done.returncode == 2
    assert "EASEL_WEBUI_URL is not set" in done.stderr


def test_invalid_setting_is_named(redis_url: str) -> None:
    done = easel("worker", env={"REDIS_URL": redis_url, "EASEL_MAX_STEPS": "lots"})
    assert done.returncode == 2 and "max_steps" in done.stderr


@pytest.mark.timeout(180)  # a dozen `python -m easel` processes; each takes seconds to start on a busy machine
def test_demo_writes_pngs_with_infotext_and_records_its_jobs(redis_url: str, tmp_path: Path) -> None:
    out, data = tmp_path / "out", {"EASEL_DATA_DIR": str(tmp_path / "data")}
    done = easel("demo", "--out", str(out), "--step-ms", "5", env={"REDIS_URL": redis_url, **data}, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    jobs = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(jobs) == 2  # the sweep and the upscale
    pngs = sorted(out.glob("*/*.png"))
    assert len(pngs) == 7
    prompts = set()
    for path in pngs:
        info = parse_infotext(read_infotext(path.read_bytes()) or "")
        assert info.steps == 12 and info.seed is not None and str(info.seed) in path.name
        prompts.add(info.prompt)
    assert len(prompts) == 3
    assert "7 task(s) done, 0 failed" in done.stdout

    # the first run shows curation: the jobs are in the store, and the read-only commands need no Redis
    listed = easel("jobs", "ls", "--json", env=data)  # easel() runs without REDIS_URL
    assert listed.returncode == 0, listed.stderr
    upscale, sweep = json.loads(listed.stdout)  # newest first, the current user's (the demo records them as yours)
    assert (sweep["action"], sweep["images"], upscale["action"], upscale["images"]) == ("generate", 6, "upscale", 1)
    for line in ("easel jobs ls", f"easel jobs show {sweep['id']}", "easel web --local",
                 "the gallery, in your browser"):
        assert line in done.stdout
    shown = json.loads(easel("jobs", "show", upscale["id"], "--json", env=data).stdout)
    assert shown["parent_job_id"] == sweep["id"] and shown["tasks"][0]["images"][0]["parent_image_id"].startswith(
        sweep["id"])
    exported = easel("jobs", "export", sweep["id"], str(tmp_path / "all.zip"), "--all", env=data)
    assert exported.returncode == 0 and (tmp_path / "all.zip").stat().st_size > 0
    refused = easel("jobs", "rerun", sweep["id"], env=data)
    assert refused.returncode == 2 and "`easel jobs rerun` queues a job, so it needs Redis" in refused.stderr
    assert "REDIS_URL is not set" in refused.stderr and "Traceback" not in refused.stderr


@pytest.mark.timeout(180)  # a dozen `python -m easel` processes; each takes seconds to start on a busy machine
def test_sweep_and_jobs_commands(stack: LocalStack, tmp_path: Path) -> None:
    env = {"REDIS_URL": stack.redis_url or "", "EASEL_REDIS_PREFIX": stack.prefix, "EASEL_DATA_DIR": str(tmp_path)}
    done = easel("sweep", "a fox | a wolf :: cfg=5,7", "--steps", "3", "--width", "64", "--height", "64",
                 "--as", "cli:ann", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    [job] = json.loads(easel("jobs", "ls", "--json", "--as", "cli:ann", env=env).stdout)
    assert (job["tasks"], job["images"], job["status"]) == (4, 4, "done")
    first = f"{job['id']}.0.0"
    assert easel("jobs", "keep", first, "--as", "cli:ann", env=env).returncode == 0
    refused = easel("jobs", "keep", first, "--as", "cli:bob", env=env)
    assert refused.returncode == 1 and "only its owner can change it" in refused.stderr
    assert easel("jobs", "delete", job["id"], "--not-kept", "--as", "cli:ann", env=env).returncode == 0
    upscaled = easel("jobs", "upscale-kept", job["id"], "--upscaler", "Lanczos", "--as", "cli:ann", env=env)
    assert upscaled.returncode == 0, upscaled.stderr
    shown = json.loads(easel("jobs", "show", job["id"], "--json", env=env).stdout)
    assert [i["kept"] for t in shown["tasks"] for i in t["images"]] == [True, False, False, False]
    out = tmp_path / "kept.zip"
    assert easel("jobs", "export", job["id"], str(out), env=env).returncode == 0 and out.stat().st_size > 0
    again = easel("jobs", "export", job["id"], str(out), env=env)
    assert again.returncode == 1 and "exists already" in again.stderr
    purge = easel("jobs", "purge", "--dry-run", env=env)
    assert purge.returncode == 0 and "would purge 0 image(s)" in purge.stdout
    bad = easel("sweep", "a fox :: colour=red", env=env)
    assert bad.returncode == 1 and "unknown parameter 'colour'" in bad.stderr
    unknown = easel("jobs", "show", "0123456789abcdef", env=env)
    assert unknown.returncode == 1 and "there is no job '0123456789abcdef'" in unknown.stderr


def test_submit_follows_through_a_redis_restart(restartable_redis: RestartableRedis, prefix: str,
                                                tmp_path: Path) -> None:
    """Redis stops mid-job and comes back (same port, same append-only file): the submitter says once that it
    waits, carries on, and ends with every image; no traceback."""
    url, out, log = restartable_redis.url, tmp_path / "out", tmp_path / "submit.log"
    events = redis.Redis.from_url(url)
    with LocalStack(redis_url=url, prefix=prefix, step_ms=40, load_ms=10) as stack:
        env = {**os.environ, "REDIS_URL": url, "EASEL_REDIS_PREFIX": prefix, "EASEL_DATA_DIR": str(tmp_path / "data"),
               "EASEL_REDIS_OUTAGE_S": "60", "PYTHONUNBUFFERED": "1", "COLUMNS": "160"}
        with log.open("w") as output:
            submit = subprocess.Popen(
                [sys.executable, "-m", "easel", "submit", "a lighthouse", "--sweep", "seed=1,2,3", "--steps", "20",
                 "--width", "64", "--height", "64", "--out", str(out)],
                env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: any(b'"progress"' in fields[b"e"] for _, fields in
                                 events.xrange(Keys(prefix).events)), "a task renders")
            restartable_redis.stop()
            wait_for(lambda: "Redis does not answer" in log.read_text(), "the submitter notices")
            restartable_redis.start()
            stack.start_worker("gpu-after", stack.webui_urls[0])  # the pool goes on, whether gpu0 rode it out or not
            assert submit.wait(timeout=90) == 0, log.read_text()
        finally:
            if submit.poll() is None:
                submit.kill()
    events.close()
    shown = log.read_text()
    assert len(list(out.glob("*/*.png"))) == 3, shown
    assert shown.count("Redis does not answer") == 1 and "answers again" in shown, shown
    assert "Traceback" not in shown, shown


def wait_for(check: Callable[[], bool], what: str, limit_s: float = 30) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError):
            if check():
                return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting until {what}")


def test_invalid_utf8_on_the_command_line_is_refused_with_one_line(redis_url: str, prefix: str,
                                                                   tmp_path: Path) -> None:
    env = {"REDIS_URL": redis_url, "EASEL_REDIS_PREFIX": prefix, "EASEL_DATA_DIR": str(tmp_path)}
    cases: list[tuple[list[str | bytes], str]] = [
        (["submit", b"a\xff b", "--steps", "5"], "easel: prompt: contains a lone surrogate U+DCFF at position 2"),
        (["submit", "a fox", "--negative", b"blurry\x01"], "easel: negative_prompt: contains a control character "
                                                            "U+0001 at position 7; remove it"),
        (["submit", "a fox", "--sweep", b'sampler="Euler\xc3"'], "easel: sweep: contains a lone surrogate U+DCC3"),
        (["sweep", b"a fox | a \xffwolf :: cfg=5,7"], "easel: sweep: contains a lone surrogate U+DCFF at position 11"),
        (["sweep", "a fox :: cfg=5,7", "--checkpoint", b"\x1b[31mred"],
         "easel: task 1 (cfg=5): checkpoint: contains a control character U+001B at position 1; remove it"),
        (["submit", "a fox", "--owner", b"cli:\xe9ric"],
         "easel: --owner: contains a lone surrogate U+DCE9 at position 5"),
        (["cancel", b"0123\xff.0"], "easel: ID: contains a lone surrogate U+DCFF at position 5"),
    ]
    for args, expected in cases:
        done = easel(*args, env=env)  # type: ignore[arg-type]  # bytes reach argv as they are
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and done.stderr.splitlines() == [done.stderr.strip()], done.stderr
        assert done.stderr.startswith(expected), (args, done.stderr)
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.zcard(Keys(prefix).waiting) == 0 and client.zcard(Keys(prefix).running) == 0  # nothing queued
    finally:
        client.close()


@pytest.mark.parametrize("argv", [
    ["workers", "--prefix", "p:", "--redis-url", "redis://h:1/2", "acl", "gpu1"],
    ["workers", "acl", "gpu1", "--prefix", "p:", "--redis-url", "redis://h:1/2"],
])
def test_node_actions_take_the_redis_flags_before_or_after_the_action(argv: list[str]) -> None:
    from easel.cli import build_parser

    args = build_parser().parse_args(argv)
    assert (args.redis_prefix, args.redis_url, args.name) == ("p:", "redis://h:1/2", "gpu1")
