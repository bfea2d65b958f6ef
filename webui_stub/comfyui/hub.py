"""The stub's WebSockets: who is connected under which client id, what each declared, and sending to one or all.

As ComfyUI does: a client id that reconnects replaces its old socket; a client that declared
``supports_preview_metadata`` gets type-4 preview frames (with the prompt id) before the step's ``progress``,
others type-1 frames after it.
"""

from __future__ import annotations

import contextlib
import json
import struct
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

PREVIEW_IMAGE, PREVIEW_IMAGE_WITH_METADATA = 1, 4


@dataclass
class Client:
    ws: web.WebSocketResponse
    request: web.Request
    flags: dict[str, Any] = field(default_factory=dict)

    @property
    def wants_metadata(self) -> bool:
        return bool(self.flags.get("supports_preview_metadata"))


class Hub:
    def __init__(self) -> None:
        self.clients: dict[str, Client] = {}

    def targets(self, sid: str | None) -> list[Client]:
        if sid is None:
            return list(self.clients.values())
        client = self.clients.get(sid)
        return [client] if client is not None else []

    async def send(self, event: str, data: dict[str, Any], sid: str | None = None) -> None:
        text = json.dumps({"type": event, "data": data})
        for client in self.targets(sid):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await client.ws.send_str(text)

    async def send_preview(self, jpeg: bytes, meta: dict[str, Any], sid: str | None, *, before_progress: bool) -> None:
        """Preview frames for one step: type 4 (sent before ``progress``) or type 1 (after it), per client."""
        for client in self.targets(sid):
            if client.wants_metadata != before_progress:
                continue
            if client.wants_metadata:
                body = json.dumps({**meta, "image_type": "image/jpeg"}).encode()
                frame = struct.pack(">II", PREVIEW_IMAGE_WITH_METADATA, len(body)) + body + jpeg
            else:
                frame = struct.pack(">II", PREVIEW_IMAGE, 1) + jpeg
            with contextlib.suppress(ConnectionError, RuntimeError):
                await client.ws.send_bytes(frame)

    def drop_all(self) -> None:
        """Cut every connection without a close frame (the ``drop`` fault), as a network failure would."""
        for client in list(self.clients.values()):
            if client.request.transport is not None:
                client.request.transport.close()
