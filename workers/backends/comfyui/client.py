"""Async client for ComfyUI's HTTP API: one method per endpoint, typed results (../shared/reference/comfyui-api.md).

``POST /prompt`` answers at once (execution is reported on the WebSocket, see
:mod:`workers.backends.comfyui.socket`), so every call gets the short timeouts except file transfers. Errors map onto
:mod:`workers.backends.errors`; a validation refusal (400 with ``node_errors``) is raised as :class:`PromptRefused`
carrying the parsed body, for the backend to name the Easel field at fault.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import httpx

from workers.backends import http
from workers.backends.comfyui.models import (
    HistoryEntry,
    ImageRef,
    PromptAccepted,
    PromptRefusal,
    QueueState,
    SystemStats,
    Uploaded,
)
from workers.backends.errors import BackendRejected, BackendServerError, MalformedResponse

T = TypeVar("T")


class PromptRefused(BackendRejected):
    """``POST /prompt`` answered 400; ``refusal`` holds ComfyUI's ``error`` and ``node_errors``."""

    def __init__(self, refusal: PromptRefusal) -> None:
        super().__init__(f"ComfyUI refused the workflow: {refusal.error.message}", status=400)
        self.refusal = refusal


class ComfyClient:
    def __init__(self, base_url: str, connection: http.Connection = http.DEFAULT_CONNECTION) -> None:
        self.base_url = base_url.rstrip("/")
        self._server = f"ComfyUI at {self.base_url}"
        c = connection
        self._http = httpx.AsyncClient(base_url=self.base_url, auth=c.auth, transport=c.transport,
                                       timeout=http.timeouts(connect=c.connect_timeout, read=min(c.read_timeout, 30.0)))
        # /object_info on a server with many custom nodes, and image transfers, may take a while
        self._slow = httpx.AsyncClient(base_url=self.base_url, auth=c.auth, transport=c.transport,
                                       timeout=http.timeouts(connect=c.connect_timeout, read=c.read_timeout))

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._slow.aclose()

    # --- info --------------------------------------------------------------------------------------------

    async def system_stats(self) -> SystemStats:
        return await self._get("/system_stats", SystemStats)

    async def object_info(self) -> dict[str, dict[str, Any]]:
        return await self._get("/object_info", dict[str, dict[str, Any]], slow=True)

    async def model_folders(self) -> list[str]:
        return await self._get("/models", list[str])

    async def models(self, folder: str) -> list[str]:
        """Files in a model folder; [] for a folder this server does not have (404)."""
        try:
            return await self._get(f"/models/{folder}", list[str])
        except BackendRejected:
            return []

    async def metadata(self, folder: str, filename: str) -> dict[str, Any]:
        """A safetensors file's ``__metadata__``; {} when it has none or is not safetensors."""
        try:
            return await self._get(f"/view_metadata/{folder}", dict[str, Any], params={"filename": filename})
        except (BackendRejected, MalformedResponse):
            return {}

    # --- queue -------------------------------------------------------------------------------------------

    async def submit(self, prompt: dict[str, Any], *, client_id: str, prompt_id: str,
                     extra_data: dict[str, Any] | None = None) -> PromptAccepted:
        body: dict[str, Any] = {"prompt": prompt, "client_id": client_id, "prompt_id": prompt_id}
        if extra_data:
            body["extra_data"] = extra_data
        response = await http.send(self._http, "POST", "/prompt", server=self._server, json=body)
        if response.status_code == 400:
            raise PromptRefused(http.decode(PromptRefusal, response, server=self._server, path="/prompt"))
        self._check(response, "/prompt")
        return http.decode(PromptAccepted, response, server=self._server, path="/prompt")

    async def queue(self) -> QueueState:
        return await self._get("/queue", QueueState)

    async def delete_queued(self, prompt_ids: list[str]) -> None:
        """Remove pending prompts (a running one is untouched; unknown ids are a no-op)."""
        await self._post("/queue", {"delete": prompt_ids})

    async def interrupt(self, prompt_id: str) -> None:
        """Interrupt ``prompt_id`` if it is the running prompt; a no-op otherwise (never a global interrupt)."""
        await self._post("/interrupt", {"prompt_id": prompt_id})

    async def history(self, prompt_id: str) -> HistoryEntry | None:
        """The finished prompt's entry; None while it is queued or running (or unknown)."""
        entries = await self._get(f"/history/{prompt_id}", dict[str, HistoryEntry])
        return entries.get(prompt_id)

    # --- files -------------------------------------------------------------------------------------------

    async def upload_image(self, data: bytes, filename: str) -> Uploaded:
        """Into ``input/``. Without overwrite: the same bytes under the same name reuse the file; other bytes under
        that name get "name (1).png" — so names derived from the content never clash, and the answer is used."""
        response = await http.send(self._slow, "POST", "/upload/image", server=self._server,
                                   files={"image": (filename, data, "image/png")}, data={"type": "input"})
        self._check(response, "/upload/image")
        return http.decode(Uploaded, response, server=self._server, path="/upload/image")

    async def view(self, ref: ImageRef) -> bytes:
        params = {"filename": ref.filename, "subfolder": ref.subfolder, "type": ref.type}
        response = await http.send(self._slow, "GET", "/view", server=self._server, params=params)
        self._check(response, "/view")
        return response.content

    # --- plumbing ----------------------------------------------------------------------------------------

    async def _get(self, path: str, shape: type[T], *, params: dict[str, str] | None = None,
                   slow: bool = False) -> T:
        response = await http.send(self._slow if slow else self._http, "GET", path, server=self._server,
                                   params=params)
        self._check(response, path)
        return http.decode(shape, response, server=self._server, path=path)

    async def _post(self, path: str, body: dict[str, Any]) -> None:
        response = await http.send(self._http, "POST", path, server=self._server, content=json.dumps(body))
        self._check(response, path)

    def _check(self, response: httpx.Response, path: str) -> None:
        if response.is_success:
            return
        text = response.text.strip().replace("\n", " ")[:300] or response.reason_phrase
        if response.status_code < 500:
            raise BackendRejected(f"{self._server} refused {path} ({response.status_code}) {text}".rstrip(),
                                  status=response.status_code)
        raise BackendServerError(f"{self._server} failed on {path} ({response.status_code}): {text}",
                                 status=response.status_code)
