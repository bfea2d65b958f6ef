"""Open the right backend for a URL: ComfyUI or the A1111 family, told apart by what answers there.

ComfyUI answers ``GET /system_stats`` with ``{"system": {"comfyui_version": ...}, "devices": [...]}``; the A1111
family answers ``GET /sdapi/v1/options``. Within the family the flavour (A1111, Forge, Forge Neo, SD.Next) is
detected by :meth:`A1111Backend.discover` (:mod:`workers.backends.a1111.flavours`), which the worker calls first.
"""

from __future__ import annotations

from typing import Any

import httpx

from common.registry import CheckpointInfo
from workers.backends import http
from workers.backends.a1111.backend import A1111Backend
from workers.backends.base import (
    Backend,
    BackendKind,
    Capabilities,
    Flavour,
    Generated,
    GenerationTask,
    ProgressCallback,
)
from workers.backends.comfyui.backend import ComfyUIBackend
from workers.backends.errors import BackendUnreachable, MalformedResponse
from workers.backends.http import DEFAULT_CONNECTION, Connection


async def open_backend(
    url: str,
    kind: BackendKind | str | None = None,
    *,
    connection: Connection = DEFAULT_CONNECTION,
    progress_interval_s: float = 0.5,
) -> Backend:
    """The backend for ``url``: ``kind`` forces one (nothing is asked of the server), else it is detected.

    Raises BackendUnreachable if nothing answers, MalformedResponse if something answers that is neither.
    """
    chosen = BackendKind(kind) if kind is not None else await detect_kind(url, connection)
    if chosen == BackendKind.COMFYUI:
        return ComfyUIBackend(url, connection=connection)
    return A1111Backend(url, connection=connection, progress_interval_s=progress_interval_s)


async def detect_kind(url: str, connection: Connection = DEFAULT_CONNECTION) -> BackendKind:
    server = f"the server at {url.rstrip('/')}"
    timeout = http.timeouts(connect=connection.connect_timeout, read=30.0)
    async with httpx.AsyncClient(base_url=url.rstrip("/"), auth=connection.auth, transport=connection.transport,
                                 timeout=timeout) as client:
        comfy = await http.send(client, "GET", "/system_stats", server=server)
        if _json_dict(comfy).get("system", {}).get("comfyui_version") is not None or _is_comfy(comfy):
            return BackendKind.COMFYUI
        a1111 = await http.send(client, "GET", "/sdapi/v1/options", server=server)
        if a1111.is_success and isinstance(_json_dict(a1111), dict) and _json_dict(a1111):
            return BackendKind.A1111
        if a1111.status_code == 401:
            raise BackendUnreachable(f"{server} needs credentials (set EASEL_WEBUI_USERNAME / EASEL_WEBUI_PASSWORD)")
    raise MalformedResponse(
        f"{server} answers, but neither as ComfyUI (/system_stats) nor as an A1111-family WebUI (/sdapi/v1/options); "
        "check --webui-url"
    )


def _json_dict(response: httpx.Response) -> dict[str, Any]:
    if not response.is_success:
        return {}
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _is_comfy(response: httpx.Response) -> bool:
    """ComfyUI before versions were reported: ``system`` and ``devices`` keys."""
    body = _json_dict(response)
    return isinstance(body.get("system"), dict) and isinstance(body.get("devices"), list)


class DetectingBackend:
    """The worker's backend: the server's kind is detected (or forced) on first contact, so a worker whose server is
    not up yet still starts, and the health check brings it in once the server answers."""

    def __init__(
        self,
        url: str,
        kind: BackendKind | str | None = None,
        *,
        connection: Connection = DEFAULT_CONNECTION,
        progress_interval_s: float = 0.5,
    ) -> None:
        self.base_url = url.rstrip("/")
        self._kind = BackendKind(kind) if kind is not None else None
        self._connection = connection
        self._progress_interval_s = progress_interval_s
        self.inner: Backend | None = None

    @property
    def kind(self) -> BackendKind:
        return self.inner.kind if self.inner is not None else (self._kind or BackendKind.A1111)

    @property
    def flavour(self) -> Flavour:
        return self.inner.flavour if self.inner is not None else Flavour(self.kind.value)

    async def _backend(self) -> Backend:
        if self.inner is None:
            self.inner = await open_backend(self.base_url, self._kind, connection=self._connection,
                                            progress_interval_s=self._progress_interval_s)
        return self.inner

    async def discover(self) -> Capabilities:
        return await (await self._backend()).discover()

    async def health(self) -> None:
        await (await self._backend()).health()

    async def load_checkpoint(self, checkpoint: CheckpointInfo) -> None:
        await (await self._backend()).load_checkpoint(checkpoint)

    async def generate(self, request: GenerationTask, *, task_id: str, on_progress: ProgressCallback) -> Generated:
        return await (await self._backend()).generate(request, task_id=task_id, on_progress=on_progress)

    async def interrupt(self, task_id: str) -> None:
        if self.inner is not None:
            await self.inner.interrupt(task_id)

    async def aclose(self) -> None:
        if self.inner is not None:
            await self.inner.aclose()
