"""HTTP plumbing shared by the backends' clients: per-phase timeouts, transport errors mapped onto the hierarchy in
:mod:`workers.backends.errors`, and typed decoding of answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from pydantic import TypeAdapter, ValidationError

from workers.backends.errors import BackendTimeout, BackendUnreachable, MalformedResponse

T = TypeVar("T")


@dataclass(frozen=True)
class Connection:
    """How to reach a server: credentials, per-phase timeouts, and (in tests) a transport to answer instead."""

    auth: tuple[str, str] | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 600.0  # a generation (A1111) or a whole task (ComfyUI) may take this long
    transport: httpx.AsyncBaseTransport | None = None


DEFAULT_CONNECTION = Connection()


def timeouts(*, connect: float, read: float) -> httpx.Timeout:
    """Fail fast on connect, wait long for an answer (a generation answers when it is done)."""
    return httpx.Timeout(read, connect=connect, pool=None)


async def send(client: httpx.AsyncClient, method: str, path: str, *, server: str, **kwargs: Any) -> httpx.Response:
    """One request; transport failures become BackendUnreachable / BackendTimeout naming ``server``."""
    try:
        return await client.request(method, path, **kwargs)
    except httpx.TimeoutException as exc:
        if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
            raise BackendUnreachable(f"{server} did not accept a connection") from exc
        raise BackendTimeout(f"{server} did not answer {path} in time") from exc
    except httpx.TransportError as exc:
        raise BackendUnreachable(f"{server} is unreachable or dropped the connection ({type(exc).__name__})") from exc


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(shape: Any) -> TypeAdapter[Any]:
    """A cached TypeAdapter per response shape (building one is costly; the shapes are few)."""
    if shape not in _ADAPTERS:
        _ADAPTERS[shape] = TypeAdapter(shape)
    return _ADAPTERS[shape]


def decode(shape: type[T], response: httpx.Response, *, server: str, path: str) -> T:
    """The body as ``shape``, or MalformedResponse saying where it differs from the API."""
    try:
        return _adapter(shape).validate_json(response.content)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise MalformedResponse(
            f"{server}'s answer to {path} is not what its API promises ({where}: {first['msg']})",
            status=response.status_code,
        ) from exc
