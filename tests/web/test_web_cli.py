"""``easel web`` as a command: ``--local`` prints a one-time link that logs in (here without Redis: the job store
alone), keeps its session key in the data folder, and a server without EASEL_WEB_SECRET refuses to start."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from easel.stack import free_port
from tests.test_cli import easel


def test_web_without_a_secret_says_what_to_set(tmp_path: Path) -> None:
    done = easel("web", "--port", str(free_port()), env={"EASEL_DATA_DIR": str(tmp_path)}, timeout=30)
    assert done.returncode == 2 and "EASEL_WEB_SECRET is not set" in done.stderr


def test_local_web_prints_a_one_time_link_and_serves_the_store(tmp_path: Path) -> None:
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EASEL_") and k != "REDIS_URL"}
    process = subprocess.Popen([sys.executable, "-m", "easel", "web", "--local", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**clean, "EASEL_DATA_DIR": str(tmp_path)})
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(2)]
        link = re.search(r"(http://127\.0\.0\.1:\d+/login/local\?token=\S+)", "".join(lines))
        assert link, lines
        assert "no queue" in lines[0]
        deadline = time.monotonic() + 20
        with httpx.Client() as http:
            while True:
                try:
                    response = http.get(link.group(1), follow_redirects=True)
                    break
                except httpx.ConnectError:
                    assert time.monotonic() < deadline, "easel web did not start"
                    time.sleep(0.05)
            assert response.status_code == 200 and "Your jobs" in response.text
            assert "No queue here" in http.get(f"http://127.0.0.1:{port}/queue").text
            assert http.get(link.group(1)).status_code == 403  # used once
        assert (tmp_path / "web-secret").stat().st_mode & 0o077 == 0
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
