"""The backend's one WebSocket to ComfyUI (``/ws?clientId=...``), routing each prompt's events to whoever watches it.

ComfyUI sends a prompt's execution events only to the socket of the ``client_id`` it was posted with, so the socket
is opened before the first prompt and kept. It declares ``supports_preview_metadata``, so preview frames come as
type 4 (``[u32 4][u32 meta_len][meta JSON with prompt_id][image]``); type 1 frames (``[u32 1][u32 1=JPEG|2=PNG]
[image]``) are attributed to the prompt executing now. A dropped socket is reopened with the same client id (which
replaces the old one on the server); watchers get :class:`Dropped` and then :class:`Reconnected`, and read the
history for what happened in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
from dataclasses import dataclass
from typing import Any

import aiohttp

from workers.backends.errors import BackendUnreachable

log = logging.getLogger(__name__)

PREVIEW_IMAGE, PREVIEW_IMAGE_WITH_METADATA = 1, 4
_IMAGE_TYPES = {1: "image/jpeg", 2: "image/png"}


@dataclass(frozen=True)
class Message:
    """A JSON message: ``{"type": ..., "data": {...}}``."""

    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Preview:
    """A binary preview frame's image."""

    image: bytes
    mime: str
    prompt_id: str | None = None


@dataclass(frozen=True)
class Dropped:
    reason: str


@dataclass(frozen=True)
class Reconnected:
    pass


@dataclass(frozen=True)
class Removed:
    """Put by the watcher's owner: the prompt was deleted from ComfyUI's queue, which says nothing about it."""


Event = Message | Preview | Dropped | Reconnected | Removed


def parse_frame(data: bytes) -> Preview | None:
    """A binary frame as a preview, or None for other frame types (3 = text) and frames too short to read."""
    if len(data) < 8:
        return None
    event, second = struct.unpack(">II", data[:8])
    if event == PREVIEW_IMAGE:
        return Preview(data[8:], _IMAGE_TYPES.get(second, "image/jpeg"))
    if event == PREVIEW_IMAGE_WITH_METADATA:
        try:
            meta = json.loads(data[8:8 + second])
        except ValueError:
            return None
        if not isinstance(meta, dict):
            return None
        prompt_id = meta.get("prompt_id")
        return Preview(data[8 + second:], str(meta.get("image_type") or "image/jpeg"),
                       prompt_id if isinstance(prompt_id, str) else None)
    return None


class ComfySocket:
    def __init__(self, base_url: str, client_id: str, *, connect_timeout: float = 5.0,
                 auth: tuple[str, str] | None = None, heartbeat_s: float = 10.0) -> None:
        self.client_id = client_id
        self._url = base_url.rstrip("/").replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        self._url += f"/ws?clientId={client_id}"
        self._connect_timeout = connect_timeout
        self._auth = aiohttp.BasicAuth(*auth) if auth else None
        self._heartbeat_s = heartbeat_s
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._watchers: dict[str, asyncio.Queue[Event]] = {}
        self._current: str | None = None  # the prompt ComfyUI is executing, as far as this socket saw
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._ws is not None and not self._ws.closed

    async def start(self) -> None:
        """Open the socket (once; later calls return at once). Raises BackendUnreachable if it cannot."""
        async with self._lock:
            if self._reader is not None and not self._reader.done():
                return
            if self._session is None:
                self._session = aiohttp.ClientSession(auth=self._auth)
            await self._connect()
            self._reader = asyncio.create_task(self._run(), name=f"comfyui socket {self.client_id}")

    def watch(self, prompt_id: str) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._watchers[prompt_id] = queue
        return queue

    def unwatch(self, prompt_id: str) -> None:
        self._watchers.pop(prompt_id, None)

    async def aclose(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- connection --------------------------------------------------------------------------------------

    async def _connect(self) -> None:
        assert self._session is not None
        try:
            self._ws = await self._session.ws_connect(
                self._url, heartbeat=self._heartbeat_s, max_msg_size=0,
                timeout=aiohttp.ClientWSTimeout(ws_close=self._connect_timeout),
            )
            await asyncio.wait_for(self._ws.send_json({"type": "feature_flags",
                                                       "data": {"supports_preview_metadata": True}}),
                                   self._connect_timeout)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise BackendUnreachable(f"ComfyUI's WebSocket at {self._url} is unreachable ({exc})") from exc

    async def _run(self) -> None:
        """Read until closed; then reconnect (backing off up to 2 s) and read again, until :meth:`aclose`."""
        while True:
            reason = await self._read()
            self._ws = None
            self._broadcast(Dropped(reason))
            delay = 0.05
            while True:
                await asyncio.sleep(delay)
                try:
                    await self._connect()
                    break
                except BackendUnreachable as exc:
                    log.debug("ComfyUI socket: %s", exc)
                    delay = min(delay * 2, 2.0)
            log.info("ComfyUI socket reconnected (%s)", reason)
            self._broadcast(Reconnected())

    async def _read(self) -> str:
        ws = self._ws
        assert ws is not None
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self._on_text(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    self._on_frame(msg.data)
        except (aiohttp.ClientError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return f"closed ({ws.close_code})" if ws.close_code is not None else "closed"

    # --- routing -----------------------------------------------------------------------------------------

    def _on_text(self, text: str) -> None:
        try:
            body = json.loads(text)
            kind, data = body["type"], body.get("data") or {}
        except (ValueError, KeyError, TypeError):
            log.debug("ComfyUI socket: not a message: %.200s", text)
            return
        if not isinstance(data, dict) or not isinstance(kind, str):
            return
        prompt_id = data.get("prompt_id")
        if kind == "execution_start" and isinstance(prompt_id, str):
            self._current = prompt_id
        elif kind == "executing" and data.get("node") is None and prompt_id == self._current:
            self._current = None
        if not isinstance(prompt_id, str):
            if kind != "executing":  # status and feature_flags concern no prompt
                return
            prompt_id = self._current  # the reconnect form of "executing" carries no prompt_id
        if prompt_id is not None:
            self._send(prompt_id, Message(kind, data))

    def _on_frame(self, data: bytes) -> None:
        preview = parse_frame(data)
        prompt_id = (preview.prompt_id or self._current) if preview is not None else None
        if preview is not None and prompt_id is not None:
            self._send(prompt_id, preview)

    def _send(self, prompt_id: str, event: Event) -> None:
        queue = self._watchers.get(prompt_id)
        if queue is not None:
            queue.put_nowait(event)

    def _broadcast(self, event: Event) -> None:
        for queue in self._watchers.values():
            queue.put_nowait(event)
