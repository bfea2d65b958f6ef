"""Connecting to Redis: arq's ``RedisSettings`` from Easel's settings, and a first PING that says what is wrong.

Every process opens Redis through here. ``REDIS_URL`` is checked part by part (scheme, host, port, database), each
problem named. ``rediss://`` is TLS with the server's certificate and host name verified: ``EASEL_REDIS_CA_FILE``
for a private CA, ``EASEL_REDIS_CERT_FILE`` and ``EASEL_REDIS_KEY_FILE`` for a client certificate.

:func:`open_redis` connects and PINGs; a failure becomes one of two errors whose message names what to change:

- :class:`RedisUnreachable` (a :class:`~common.errors.QueueUnreachable`): refused, unknown host, timed out. Worth
  waiting out: long-running processes pass an :class:`~common.outage.Outage`.
- :class:`RedisConfigError` (a :class:`~common.settings.ConfigurationError`): a malformed URL, a wrong or missing
  password, a TLS failure, a database the server lacks, a server that is not Redis. Waiting fixes none of these.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import replace
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

from arq.connections import ArqRedis, RedisSettings, create_pool
from redis import exceptions as redis_errors

from common import serialization
from common.errors import QueueUnreachable
from common.models import text_problem
from common.outage import Outage, is_outage
from common.queue.keys import Keys
from common.settings import ConfigurationError, Settings

EXAMPLE = "redis://HOST:6379/0"
KEEPALIVE: dict[int, int] = {  # a vanished peer is noticed in about 25 s (Linux; elsewhere the system's defaults)
    getattr(socket, name): value for name, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))
    if hasattr(socket, name)
}
PROBE_S = 2.0  # how long the look at a server that timed out or hung up may take
_FAILURES = (redis_errors.RedisError, OSError, asyncio.IncompleteReadError)  # what a connect and PING can raise


class RedisConfigError(ConfigurationError):
    """Redis is configured wrongly (URL, password, TLS); the message names the variable and what to change."""


class RedisUnreachable(QueueUnreachable):
    """Nothing answered at ``REDIS_URL`` (refused, unknown host, timed out); the message says where and why."""


def redis_settings(settings: Settings) -> RedisSettings:
    """arq's connection settings from ``REDIS_URL`` and the TLS files; raises :class:`RedisConfigError`."""
    url = settings.require_redis_url()
    problem = text_problem(url)
    if problem is not None:
        raise RedisConfigError(f"REDIS_URL: {problem}")
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise RedisConfigError(f"REDIS_URL: cannot read it as a URL ({exc}); write it as {EXAMPLE}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss", "unix") or "://" not in url:
        shown = f"the scheme '{parts.scheme}'" if "://" in url else "no scheme (e.g. HOST:6379 alone)"
        raise RedisConfigError(f"REDIS_URL: has {shown}; write it as {EXAMPLE} (rediss:// for TLS, "
                               "unix:///path/to/redis.sock for a local socket)")
    if scheme == "unix":
        if not parts.path:
            raise RedisConfigError("REDIS_URL: names no socket; write it as unix:///path/to/redis.sock")
        host, port = "localhost", 6379
    else:
        host, port = _host(parts), _port(parts)
    plain = RedisSettings(
        host=host, port=port, unix_socket_path=parts.path if scheme == "unix" else None,
        database=_database(parts, scheme), username=_unquoted(parts.username), password=_unquoted(parts.password),
    )
    return _with_tls(plain, settings, scheme)


def _host(parts: SplitResult) -> str:
    if not parts.hostname:
        raise RedisConfigError(f"REDIS_URL: names no host; write it as {EXAMPLE}")
    return parts.hostname


def _port(parts: SplitResult) -> int:
    try:
        port = parts.port
    except ValueError:  # not a number, or over 65535
        port = -1
    if port is None:
        return 6379
    if not 1 <= port <= 65535:
        given = parts.netloc.rpartition("@")[2].rpartition("]")[2].partition(":")[2]
        raise RedisConfigError(f"REDIS_URL: the port '{given}' is not a number from 1 to 65535; e.g. {EXAMPLE}")
    return port


def _database(parts: SplitResult, scheme: str) -> int:
    query = parse_qs(parts.query).get("db")
    given = query[0] if query else ("" if scheme == "unix" else parts.path.strip("/"))
    if not given:
        return 0
    if not given.isascii() or not given.isdigit():
        raise RedisConfigError(f"REDIS_URL: the database '{given}' is not a number 0, 1, 2, ...; e.g. {EXAMPLE}")
    return int(given)


def _unquoted(value: str | None) -> str | None:
    return unquote(value) if value else None


def _with_tls(target: RedisSettings, settings: Settings, scheme: str) -> RedisSettings:
    """TLS options for rediss://: certificate required, host name checked; the files are loaded once to check them."""
    files = {"EASEL_REDIS_CA_FILE": settings.redis_ca_file, "EASEL_REDIS_CERT_FILE": settings.redis_cert_file,
             "EASEL_REDIS_KEY_FILE": settings.redis_key_file}
    given = [name for name, path in files.items() if path]
    if scheme != "rediss":
        if given:
            raise RedisConfigError(f"{given[0]} is set, but REDIS_URL does not use TLS; write it as "
                                   f"rediss://HOST:PORT/0, or unset {given[0]}")
        return target
    ca, cert, key = files.values()
    if bool(cert) != bool(key):
        have, lack = ("EASEL_REDIS_CERT_FILE", "EASEL_REDIS_KEY_FILE")
        if key:
            have, lack = lack, have
        raise RedisConfigError(f"{have} is set without {lack}; set both (the same file if one PEM holds the "
                               "certificate and its key)")
    context = ssl.create_default_context()
    _load("EASEL_REDIS_CA_FILE", ca, lambda: context.load_verify_locations(cafile=ca))
    _load("EASEL_REDIS_CERT_FILE and EASEL_REDIS_KEY_FILE", cert, lambda: context.load_cert_chain(cert or "", key))
    return replace(target, ssl=True, ssl_ca_certs=ca, ssl_certfile=cert, ssl_keyfile=key, ssl_cert_reqs="required",
                   ssl_check_hostname=True)


def _load(names: str, path: str | None, load: Callable[[], object]) -> None:
    if not path:
        return
    try:
        load()
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        if "KEY_VALUES_MISMATCH" in reason:
            raise RedisConfigError("EASEL_REDIS_KEY_FILE is not the key of EASEL_REDIS_CERT_FILE; set the pair that "
                                   "belongs together") from None
        raise RedisConfigError(f"{names}: cannot load '{path}' ({reason}); point it at a PEM file") from None


async def open_redis(settings: Settings, *, outage: Outage | None = None) -> ArqRedis:
    """An arq pool (Easel's JSON serializer and queue name) that answered a PING.

    Without ``outage`` one try is made; with one, an unreachable Redis is waited out for its ``limit_s`` (saying
    so once). Raises :class:`RedisConfigError` or :class:`RedisUnreachable` (see the module docstring).
    """
    target = redis_settings(settings)

    async def connect() -> ArqRedis:
        try:
            redis = await create_pool(
                replace(target, conn_retries=0), job_serializer=serialization.serialize,
                job_deserializer=serialization.deserialize, default_queue_name=Keys(settings.redis_prefix).waiting,
            )
            # TCP keepalive notices a peer that vanished. No socket_timeout: redis-py 5 then sometimes swallows a
            # task's cancellation; a dead path is bounded instead by Outage.call's own timeout per try.
            redis.connection_pool.connection_kwargs.update(socket_keepalive=True, health_check_interval=30,
                                                           socket_keepalive_options=KEEPALIVE)
            return redis
        except _FAILURES as exc:
            if not is_outage(exc):
                raise RedisConfigError(_misconfigured(exc, target)) from exc
            wrong = await _wrong_protocol(target, exc)
            if wrong is not None:
                raise RedisConfigError(wrong) from exc
            raise

    try:
        return await (connect() if outage is None else outage.call(connect))
    except _FAILURES as exc:
        raise RedisUnreachable(_unreachable(exc, target)) from exc


async def wait_for_redis(settings: Settings, what: str) -> None:
    """For a long-running process's start: wait out an unreachable Redis for ``EASEL_REDIS_OUTAGE_S``."""
    redis = await open_redis(settings, outage=Outage(what, limit_s=settings.redis_outage_s))
    await redis.aclose()


# --- saying what went wrong -----------------------------------------------------------------------------------


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()).rstrip(".") or type(exc).__name__


def _where(target: RedisSettings) -> str:
    return target.unix_socket_path or f"{target.host}:{target.port}"


def _unreachable(exc: BaseException, target: RedisSettings) -> str:
    where = _where(target)
    causes = list(_chain(exc))
    if any(isinstance(e, ConnectionRefusedError | FileNotFoundError) for e in causes):
        return (f"REDIS_URL: nothing listens at {where} (connection refused); start Redis there, or point "
                "REDIS_URL at it")
    if any(isinstance(e, socket.gaierror) for e in causes):
        return f"REDIS_URL: the host '{target.host}' is unknown (no DNS name resolves); check its spelling"
    if any(isinstance(e, TimeoutError | redis_errors.TimeoutError) for e in causes):
        return (f"REDIS_URL: {where} did not answer within {target.conn_timeout}s; check that Redis runs there and "
                "that no firewall drops the port")
    return f"REDIS_URL: cannot reach {where} ({_reason(exc)}); check that Redis runs there"


def _misconfigured(exc: BaseException, target: RedisSettings) -> str:
    where, reason = _where(target), _reason(exc)
    verify = next((e for e in _chain(exc) if isinstance(e, ssl.SSLCertVerificationError)), None)
    if verify is not None:
        if "mismatch" in str(verify.verify_message).lower():  # hostname or IP address
            return (f"REDIS_URL: the TLS certificate of {where} is not valid for '{target.host}' (hostname "
                    "mismatch); connect by a name the certificate lists, or give the server a certificate for it")
        return (f"REDIS_URL: the TLS certificate of {where} is not trusted ({verify.verify_message}); set "
                "EASEL_REDIS_CA_FILE to the certificate of the CA that signed it")
    if any(isinstance(e, ssl.SSLError) for e in _chain(exc)) or "SSL" in reason:
        return (f"REDIS_URL: TLS with {where} failed ({reason}); check that the port speaks TLS, and set "
                "EASEL_REDIS_CERT_FILE and EASEL_REDIS_KEY_FILE if the server requires a client certificate")
    if isinstance(exc, redis_errors.AuthenticationError):
        return _auth_problem(reason, where)
    if isinstance(exc, redis_errors.AuthorizationError | redis_errors.NoPermissionError):
        return f"REDIS_URL: the user may not use {where} ({reason}); grant it Easel's commands or use another user"
    if "DB index is out of range" in reason:
        return (f"REDIS_URL: {where} has no database {target.database}; use a lower number (servers have 16, "
                "0 to 15, unless configured otherwise)")
    if isinstance(exc, redis_errors.InvalidResponse):
        return f"REDIS_URL: {where} does not answer like Redis ({reason}); check the host and port"
    return f"REDIS_URL: connecting to {where} failed ({reason}); check the URL and the server"


def _auth_problem(reason: str, where: str) -> str:
    if "without any password configured" in reason or "no password is set" in reason:
        return f"REDIS_URL: {where} has no password, but REDIS_URL gives one; remove it from the URL"
    if "required" in reason.lower():  # NOAUTH
        return (f"REDIS_URL: {where} requires a password (NOAUTH); put it in the URL: "
                "redis://:PASSWORD@HOST:PORT/0")
    return (f"REDIS_URL: {where} refused the user name or password (WRONGPASS); correct them in the URL: "
            "redis://USER:PASSWORD@HOST:PORT/0")


async def _wrong_protocol(target: RedisSettings, exc: BaseException) -> str | None:
    """After a timeout or a hang-up: is a server there that speaks plain Redis to rediss://, or TLS to redis://?"""
    silent = (TimeoutError, redis_errors.TimeoutError, ConnectionResetError, asyncio.IncompleteReadError)
    if target.unix_socket_path or not any(isinstance(e, silent) for e in _chain(exc)):
        return None  # refused or an unknown host: nothing there to look at
    where, host = _where(target), str(target.host)
    if target.ssl and await _answers_plain_ping(host, target.port):
        return (f"REDIS_URL: {where} is a plain Redis port without TLS, but REDIS_URL says rediss://; write "
                "redis:// or use the server's TLS port")
    if not target.ssl and await _speaks_tls(host, target.port):
        return f"REDIS_URL: {where} speaks TLS only; write rediss:// instead of redis://"
    return None


async def _answers_plain_ping(host: str, port: int) -> bool:
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(PROBE_S):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(b"PING\r\n")
                return (await reader.read(1)) in (b"+", b"-")  # a RESP reply: +PONG, or -NOAUTH ...
            finally:
                writer.close()
    return False


async def _speaks_tls(host: str, port: int) -> bool:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # only asking whether it is TLS at all
    with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
        async with asyncio.timeout(PROBE_S):
            _, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=host)
            writer.close()
            return True
    return False
