"""open_backend: which kind answers at a URL."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

import httpx
import pytest

from tests.conftest import ComfyStub, StubServer
from workers.backends.a1111.backend import A1111Backend
from workers.backends.base import BackendKind
from workers.backends.comfyui.backend import ComfyUIBackend
from workers.backends.detect import open_backend
from workers.backends.errors import BackendUnreachable, MalformedResponse
from workers.backends.http import Connection


async def test_comfyui_and_a1111_are_told_apart(comfy: ComfyStub, stub: StubServer) -> None:
    comfyui = await open_backend(comfy.url)
    a1111 = await open_backend(stub.url)
    assert isinstance(comfyui, ComfyUIBackend) and isinstance(a1111, A1111Backend)
    await comfyui.aclose()
    await a1111.aclose()


@pytest.mark.parametrize("flavor", ["forge-neo", "sdnext"])
async def test_every_a1111_flavour_is_the_a1111_kind(start_stub: Callable[..., Awaitable[StubServer]],
                                                     flavor: str) -> None:
    from webui_stub import flavours

    backend = await open_backend((await start_stub(flavour=flavours.named(flavor))).url)
    assert backend.kind == BackendKind.A1111
    assert (await backend.discover()).flavour.value == flavor
    await backend.aclose()


async def test_nothing_listening_is_unreachable() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(BackendUnreachable):
        await open_backend(f"http://127.0.0.1:{port}")


async def test_something_else_is_refused_with_a_hint() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(404, text="Not Found"))
    with pytest.raises(MalformedResponse, match=r"neither as ComfyUI .* nor as an A1111-family WebUI"):
        await open_backend("http://elsewhere", connection=Connection(transport=transport))


async def test_a_forced_kind_asks_nothing() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"asked {request.url}")

    connection = Connection(transport=httpx.MockTransport(refuse))
    backend = await open_backend("http://comfy:8188", "comfyui", connection=connection)
    assert isinstance(backend, ComfyUIBackend)
    await backend.aclose()
