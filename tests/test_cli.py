"""The `easel` command as a user runs it: real processes for the stub WebUI, the worker and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from common.images import read_infotext
from common.infotext import parse_infotext
from common.queue.keys import Keys
from easel.stack import LocalStack


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
    done = easel("submit", "a castle on a hill", "--steps", "5", "--width", "128", "--height", "128",
                 "--seed", "99", "--count", "2", "--sweep", "cfg=4,8", "--out", str(tmp_path),
                 "--redis-url", stack.redis_url or "", "--prefix", stack.prefix)
    assert done.returncode == 0, done.stderr + done.stdout
    files = sorted(tmp_path.glob("*/*.png"))
    assert len(files) == 4  # 2 tasks x 2 images
    seeds = set()
    for path in files:
        info = parse_infotext(read_infotext(path.read_bytes()) or "")
        assert info.prompt == "a castle on a hill" and info.steps == 5
        seeds.add(info.seed)
    assert seeds == {99, 100}
    assert "2 task(s) queued" in done.stdout


def test_submit_refuses_bad_input_before_queueing(stack: LocalStack, tmp_path: Path) -> None:
    common = ["--redis-url", stack.redis_url or "", "--prefix", stack.prefix, "--out", str(tmp_path)]
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
        done = easel("submit", *args, *common)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert message in done.stderr, (args, done.stderr)
    assert not list(tmp_path.glob("*/*.png"))


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


def test_demo_writes_pngs_with_infotext(redis_url: str, tmp_path: Path) -> None:
    done = easel("demo", "--out", str(tmp_path), "--step-ms", "5", env={"REDIS_URL": redis_url}, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    jobs = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert len(jobs) == 2  # the sweep and the upscale
    pngs = sorted(tmp_path.glob("*/*.png"))
    assert len(pngs) == 7
    prompts = set()
    for path in pngs:
        info = parse_infotext(read_infotext(path.read_bytes()) or "")
        assert info.steps == 12 and info.seed is not None and str(info.seed) in path.name
        prompts.add(info.prompt)
    assert len(prompts) == 3
    assert "7 task(s) done, 0 failed" in done.stdout


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
