"""A local fake of the Discord API (REST + gateway) that the real discord.py client talks to in tests.

What it takes is in ../shared/reference/discord-platform.md: point ``discord.http.Route.BASE`` and
``DiscordWebSocket.DEFAULT_GATEWAY`` here. It keeps every message the bot posts or edits (with uploaded files),
dispatches slash commands and button clicks as INTERACTION_CREATE, expires interaction tokens on demand, and can
answer the next message edit with a 429 (with the ``Via`` header discord.py expects from Discord's edge).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

APP_ID = 900_000_000_000_000_001
BOT_ID = 900_000_000_000_000_002
GUILD_ID = 900_000_000_000_000_003
CHANNEL_ID = 900_000_000_000_000_004
OWNER_ID = 900_000_000_000_000_005  # guild owner
ATTACHMENT_LIMIT = 10 * 1024 * 1024


def _user(user_id: int, name: str, bot: bool = False) -> dict[str, Any]:
    return {"id": str(user_id), "username": name, "discriminator": "0", "global_name": name, "avatar": None,
            "bot": bot}


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class Message:
    id: int
    channel_id: int
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)  # filename -> bytes
    flags: int = 0
    edits: int = 0
    via_token: str | None = None  # the interaction that created it, if any

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id), "channel_id": str(self.channel_id), "guild_id": str(GUILD_ID),
            "author": _user(BOT_ID, "Easel", bot=True), "content": self.content, "timestamp": _now(),
            "edited_timestamp": None, "tts": False, "mention_everyone": False, "mentions": [], "mention_roles": [],
            "attachments": [
                {"id": str(i + 1), "filename": name, "size": len(data), "url": f"https://cdn.fake/{name}",
                 "proxy_url": f"https://cdn.fake/{name}", "content_type": "image/png"}
                for i, (name, data) in enumerate(self.files.items())
            ],
            "embeds": self.embeds, "pinned": False, "type": 0, "flags": self.flags, "components": self.components,
        }

    @property
    def custom_ids(self) -> list[str]:
        return [c["custom_id"] for row in self.components for c in row.get("components", []) if "custom_id" in c]


@dataclass
class Interaction:
    token: str
    id: int
    user_id: int
    created: float
    expired: bool = False
    response_type: int | None = None
    response: dict[str, Any] | None = None
    original: Message | None = None
    followups: list[Message] = field(default_factory=list)
    source: Message | None = None  # the message whose button was clicked


class FakeDiscord:
    def __init__(self) -> None:
        self.messages: dict[int, Message] = {}
        self.interactions: dict[str, Interaction] = {}
        self.requests: list[tuple[str, str]] = []
        self.commands: list[dict[str, Any]] = []
        self.rate_limit_next_edits = 0
        self.ready = asyncio.Event()
        self._ids = itertools.count(1_000_000)
        self._sockets: list[web.WebSocketResponse] = []
        self._seq = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._uploads: dict[str, bytes] = {}
        self.url = ""

    # --- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application(middlewares=[self._record])
        app.add_routes([
            web.get("/gateway", self._gateway),
            web.get("/api/v10/gateway", self._gateway_info),
            web.get("/api/v10/users/@me", self._me),
            web.get("/api/v10/oauth2/applications/@me", self._application),
            web.put("/api/v10/applications/{app}/commands", self._put_commands),
            web.put("/api/v10/applications/{app}/guilds/{guild}/commands", self._put_commands),
            web.post("/api/v10/interactions/{id}/{token}/callback", self._callback),
            web.patch("/api/v10/webhooks/{app}/{token}/messages/@original", self._edit_original),
            web.get("/api/v10/webhooks/{app}/{token}/messages/@original", self._get_original),
            web.post("/api/v10/webhooks/{app}/{token}", self._followup),
            web.post("/api/v10/channels/{channel}/messages", self._create_message),
            web.patch("/api/v10/channels/{channel}/messages/{message}", self._edit_message),
            web.get("/api/v10/channels/{channel}/messages/{message}", self._get_message),
            web.get("/api/v10/channels/{channel}", self._channel),
            web.get("/cdn/{attachment}", self._cdn),
        ])
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        for socket in self._sockets:
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        return await handler(request)  # type: ignore[no-any-return]

    @staticmethod
    def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        # discord.py reads JSON only for exactly this content type
        return web.Response(body=json.dumps(data).encode(), status=status,
                            headers={"Content-Type": "application/json", **(headers or {})})

    # --- gateway -----------------------------------------------------------------------------------------

    async def _gateway_info(self, request: web.Request) -> web.Response:
        return self._json({"url": self.url.replace("http", "ws") + "/gateway"})

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets.append(socket)
        await socket.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}}))
        async for message in socket:
            if message.type != WSMsgType.TEXT:
                continue
            frame = json.loads(message.data)
            if frame["op"] == 1:
                await socket.send_str(json.dumps({"op": 11}))
            elif frame["op"] == 2:
                await self._dispatch(socket, "READY", {
                    "v": 10, "user": _user(BOT_ID, "Easel", bot=True), "guilds": [{"id": str(GUILD_ID),
                                                                                   "unavailable": True}],
                    "session_id": "fake-session", "resume_gateway_url": self.url.replace("http", "ws") + "/gateway",
                    "application": {"id": str(APP_ID), "flags": 0},
                })
                await self._dispatch(socket, "GUILD_CREATE", self._guild())
                self.ready.set()
        self._sockets.remove(socket)
        return socket

    async def _dispatch(self, socket: web.WebSocketResponse, event: str, data: dict[str, Any]) -> None:
        await socket.send_str(json.dumps({"op": 0, "t": event, "s": next(self._seq), "d": data}))

    def _guild(self) -> dict[str, Any]:
        everyone = {"id": str(GUILD_ID), "name": "@everyone", "permissions": str((1 << 11) | (1 << 15)),
                    "position": 0, "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0}
        return {
            "id": str(GUILD_ID), "name": "Easel test guild", "owner_id": str(OWNER_ID), "roles": [everyone],
            "channels": [self._channel_payload()], "members": [], "member_count": 3, "features": [], "emojis": [],
            "stickers": [], "premium_tier": 0, "unavailable": False, "large": False, "threads": [],
            "voice_states": [], "presences": [], "stage_instances": [], "guild_scheduled_events": [],
            "joined_at": _now(), "verification_level": 0, "default_message_notifications": 0,
            "explicit_content_filter": 0, "mfa_level": 0, "nsfw_level": 0, "preferred_locale": "en-US",
        }

    def _channel_payload(self) -> dict[str, Any]:
        return {"id": str(CHANNEL_ID), "type": 0, "name": "art", "position": 0, "guild_id": str(GUILD_ID),
                "permission_overwrites": [], "nsfw": False, "parent_id": None, "topic": None,
                "last_message_id": None, "rate_limit_per_user": 0}

    # --- REST ----------------------------------------------------------------------------------------------

    async def _me(self, request: web.Request) -> web.Response:
        return self._json(_user(BOT_ID, "Easel", bot=True))

    async def _application(self, request: web.Request) -> web.Response:
        return self._json({"id": str(APP_ID), "name": "Easel", "description": "", "icon": None, "bot_public": True,
                           "bot_require_code_grant": False, "owner": _user(OWNER_ID, "owner"), "verify_key": "0",
                           "flags": 0})

    async def _put_commands(self, request: web.Request) -> web.Response:
        commands = await request.json()
        self.commands = [{**c, "id": str(next(self._ids)), "application_id": str(APP_ID), "version": "1",
                          "type": c.get("type", 1), "default_member_permissions": None, "dm_permission": True,
                          "nsfw": False} for c in commands]
        return self._json(self.commands)

    async def _cdn(self, request: web.Request) -> web.Response:
        data = self._uploads.get(request.match_info["attachment"])
        return web.Response(body=data, content_type="image/png") if data is not None else web.Response(status=404)

    async def _channel(self, request: web.Request) -> web.Response:
        return self._json(self._channel_payload())

    async def _read_message_body(self, request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
        if request.content_type.startswith("multipart/"):
            payload: dict[str, Any] = {}
            files: dict[str, bytes] = {}
            reader = await request.multipart()
            async for part in reader:  # type: ignore[union-attr]
                if part.name == "payload_json":
                    payload = json.loads(await part.text())  # type: ignore[union-attr]
                else:
                    files[part.filename or part.name or "file"] = bytes(await part.read())  # type: ignore[union-attr]
            return payload, files
        body = await request.read()
        return (json.loads(body) if body else {}), {}

    def _apply(self, message: Message, payload: dict[str, Any], files: dict[str, bytes], *, edit: bool) -> None:
        if "content" in payload:
            message.content = payload["content"] or ""
        if "embeds" in payload:
            message.embeds = payload["embeds"] or []
        if "components" in payload:
            message.components = payload["components"] or []
        if "flags" in payload and payload["flags"] is not None:
            message.flags = payload["flags"]
        if edit and "attachments" in payload:  # attachments to keep are listed; the others go
            kept_ids = {str(a.get("id")) for a in payload["attachments"] or []}
            message.files = {n: d for i, (n, d) in enumerate(message.files.items()) if str(i + 1) in kept_ids}
        message.files.update(files)
        if edit:
            message.edits += 1

    async def _create_message(self, request: web.Request) -> web.Response:
        payload, files = await self._read_message_body(request)
        message = Message(next(self._ids), int(request.match_info["channel"]))
        self._apply(message, payload, files, edit=False)
        self.messages[message.id] = message
        return self._json(message.payload())

    async def _edit_message(self, request: web.Request) -> web.Response:
        if self.rate_limit_next_edits > 0:
            self.rate_limit_next_edits -= 1
            return self._json({"message": "You are being rate limited.", "retry_after": 0.2, "global": False},
                              429, headers={"Via": "1.1 google", "X-RateLimit-Scope": "user"})
        message = self.messages.get(int(request.match_info["message"]))
        if message is None:
            return self._json({"message": "Unknown Message", "code": 10008}, 404)
        payload, files = await self._read_message_body(request)
        self._apply(message, payload, files, edit=True)
        return self._json(message.payload())

    async def _get_message(self, request: web.Request) -> web.Response:
        message = self.messages.get(int(request.match_info["message"]))
        if message is None:
            return self._json({"message": "Unknown Message", "code": 10008}, 404)
        return self._json(message.payload())

    def _live(self, token: str) -> Interaction | web.Response:
        interaction = self.interactions.get(token)
        if interaction is None or interaction.expired:
            return self._json({"message": "Invalid Webhook Token", "code": 50027}, 401)
        return interaction

    async def _callback(self, request: web.Request) -> web.Response:
        interaction = self._live(request.match_info["token"])
        if isinstance(interaction, web.Response):
            return interaction
        if interaction.response_type is not None:
            return self._json({"message": "Interaction has already been acknowledged.", "code": 40060}, 400)
        payload, files = await self._read_message_body(request)
        interaction.response_type, interaction.response = payload["type"], payload.get("data") or {}
        result: dict[str, Any] = {"interaction": {"id": str(interaction.id), "type": 2,
                                                  "response_message_loading": payload["type"] == 5,
                                                  "response_message_ephemeral": False},
                                  "resource": {"type": payload["type"]}}
        if payload["type"] in (6, 7) and interaction.source is not None:  # a click: the clicked message is "original"
            interaction.original = interaction.source
            if payload["type"] == 7:
                self._apply(interaction.source, interaction.response, files, edit=True)
        if payload["type"] in (4, 5):  # a message (or a "thinking..." one to edit later)
            message = Message(next(self._ids), CHANNEL_ID, via_token=interaction.token)
            self._apply(message, interaction.response, files, edit=False)
            self.messages[message.id] = message
            interaction.original = message
            result["interaction"]["response_message_id"] = str(message.id)
            result["resource"]["message"] = message.payload()
        return self._json(result)

    async def _edit_original(self, request: web.Request) -> web.Response:
        interaction = self._live(request.match_info["token"])
        if isinstance(interaction, web.Response):
            return interaction
        if interaction.original is None:
            return self._json({"message": "Unknown Message", "code": 10008}, 404)
        payload, files = await self._read_message_body(request)
        self._apply(interaction.original, payload, files, edit=True)
        return self._json(interaction.original.payload())

    async def _get_original(self, request: web.Request) -> web.Response:
        interaction = self._live(request.match_info["token"])
        if isinstance(interaction, web.Response):
            return interaction
        if interaction.original is None:
            return self._json({"message": "Unknown Message", "code": 10008}, 404)
        return self._json(interaction.original.payload())

    async def _followup(self, request: web.Request) -> web.Response:
        interaction = self._live(request.match_info["token"])
        if isinstance(interaction, web.Response):
            return interaction
        payload, files = await self._read_message_body(request)
        message = Message(next(self._ids), CHANNEL_ID, via_token=interaction.token)
        self._apply(message, payload, files, edit=False)
        self.messages[message.id] = message
        interaction.followups.append(message)
        return self._json(message.payload())

    # --- driving the bot -----------------------------------------------------------------------------------

    def _member(self, user_id: int, permissions: int) -> dict[str, Any]:
        return {"user": _user(user_id, f"user{user_id % 1000}"), "roles": [], "joined_at": _now(), "deaf": False,
                "mute": False, "flags": 0, "permissions": str(permissions)}

    async def _send_interaction(self, data: dict[str, Any], *, kind: int, user_id: int, permissions: int = 0,
                                message: Message | None = None) -> Interaction:
        assert self._sockets, "the bot is not connected"
        interaction = Interaction(token=f"tok{next(self._ids)}", id=next(self._ids), user_id=user_id,
                                  created=time.time(), source=message)
        self.interactions[interaction.token] = interaction
        payload: dict[str, Any] = {
            "id": str(interaction.id), "application_id": str(APP_ID), "type": kind, "data": data,
            "guild_id": str(GUILD_ID), "channel_id": str(CHANNEL_ID), "channel": self._channel_payload(),
            "member": self._member(user_id, permissions), "token": interaction.token, "version": 1,
            "app_permissions": str((1 << 53) - 1), "locale": "en-US", "guild_locale": "en-US", "entitlements": [],
            "authorizing_integration_owners": {"0": str(GUILD_ID)}, "context": 0,
            "attachment_size_limit": ATTACHMENT_LIMIT,
        }
        if message is not None:
            payload["message"] = message.payload()
        await self._dispatch(self._sockets[-1], "INTERACTION_CREATE", payload)
        return interaction

    async def slash(self, name: str, options: dict[str, Any] | None = None, *, user_id: int = OWNER_ID,
                    attachments: dict[str, bytes] | None = None, permissions: int = 0) -> Interaction:
        """Run ``/name`` with ``options`` (values as Discord sends them; bytes become attachments)."""
        command = next(c for c in self.commands if c["name"] == name)
        option_types = {o["name"]: o["type"] for o in command.get("options", [])}
        resolved: dict[str, Any] = {}
        rendered = []
        for key, value in (options or {}).items():
            if isinstance(value, bytes):
                attachment_id = str(next(self._ids))
                resolved[attachment_id] = {"id": attachment_id, "filename": f"{key}.png", "size": len(value),
                                           "url": f"{self.url}/cdn/{attachment_id}", "proxy_url": "",
                                           "content_type": "image/png"}
                self._uploads[attachment_id] = value
                value = attachment_id
            rendered.append({"name": key, "type": option_types[key], "value": value})
        data = {"id": command["id"], "name": name, "type": 1, "options": rendered}
        if resolved:
            data["resolved"] = {"attachments": resolved}
        return await self._send_interaction(data, kind=2, user_id=user_id, permissions=permissions)

    async def click(self, message: Message, custom_id: str, *, user_id: int = OWNER_ID,
                    permissions: int = 0) -> Interaction:
        data = {"custom_id": custom_id, "component_type": 2}
        return await self._send_interaction(data, kind=3, user_id=user_id, permissions=permissions, message=message)

    def expire(self, interaction: Interaction) -> None:
        """The 15 minutes are over: the token no longer works."""
        interaction.expired = True

    def channel_messages(self) -> list[Message]:
        return [m for m in self.messages.values() if m.channel_id == CHANNEL_ID]
