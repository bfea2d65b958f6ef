"""Node identities: who may join the pool through the gateway, with which limits.

``easel workers invite NAME`` makes a token, shows it once and keeps only its sha256 (the token is 32 random bytes,
so a plain hash cannot be reversed or guessed). A node record holds the hash and the node's limits; revoking or
banning removes the hash and tells the gateway on a pub/sub channel, which disconnects the node at once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from pydantic import BaseModel, Field
from redis.asyncio import Redis

from common.queue.keys import Keys
from common.tasks import now_ms

TOKEN_PREFIX = "easel-node-"
NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,48}$"
_NAME = re.compile(NAME_PATTERN)


class NodeRecord(BaseModel):
    name: str = Field(pattern=NAME_PATTERN)
    token_sha256: str | None = Field(default=None, description="None once revoked or banned.")
    max_pixels: int | None = Field(default=None, ge=64 * 64, description="Largest width x height it is given.")
    checkpoints: list[str] = Field(default_factory=list, description="Checkpoints it may run; empty: any.")
    created_ms: int = Field(default_factory=now_ms)
    revoked_ms: int | None = None
    banned_ms: int | None = None

    @property
    def active(self) -> bool:
        return self.token_sha256 is not None and self.revoked_ms is None and self.banned_ms is None

    @property
    def status(self) -> str:
        return "banned" if self.banned_ms else "revoked" if self.revoked_ms else "active"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"node name {name!r}: use 1-48 letters, digits, '.', '_' or '-'")
    return name


class NodeStore:
    """Node records in Redis: ``nodes`` (name -> record JSON) and ``nodes:tokens`` (token hash -> name)."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self.records_key = f"{keys.prefix}nodes"
        self.tokens_key = f"{keys.prefix}nodes:tokens"
        self.channel = f"{keys.prefix}nodes:changed"

    async def invite(self, name: str, *, max_pixels: int | None = None, checkpoints: list[str] | None = None) -> str:
        """A new token for ``name`` (any earlier token of that name stops working); returns the token."""
        check_name(name)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        old = await self.get(name)
        record = NodeRecord(name=name, token_sha256=token_hash(token), max_pixels=max_pixels,
                            checkpoints=[c.strip() for c in checkpoints or [] if c.strip()])
        async with self.redis.pipeline(transaction=True) as pipe:
            if old is not None and old.token_sha256:
                pipe.hdel(self.tokens_key, old.token_sha256)
            pipe.hset(self.records_key, name, record.model_dump_json())
            pipe.hset(self.tokens_key, record.token_sha256, name)
            pipe.publish(self.channel, name)
            await pipe.execute()
        return token

    async def authenticate(self, token: str) -> NodeRecord | None:
        """The active node this token belongs to, or None."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        digest = token_hash(token)
        name = await self.redis.hget(self.tokens_key, digest)  # type: ignore[misc]
        if name is None:
            return None
        record = await self.get(name.decode())
        if record is None or not record.active or not hmac.compare_digest(record.token_sha256 or "", digest):
            return None
        return record

    async def get(self, name: str) -> NodeRecord | None:
        raw = await self.redis.hget(self.records_key, name)  # type: ignore[misc]
        return NodeRecord.model_validate_json(raw) if raw else None

    async def all(self) -> list[NodeRecord]:
        raw = await self.redis.hgetall(self.records_key)  # type: ignore[misc]
        return sorted((NodeRecord.model_validate_json(v) for v in raw.values()), key=lambda r: r.name)

    async def revoke(self, name: str, *, ban: bool = False) -> NodeRecord | None:
        """Revoke (or ban) ``name``: its token stops working and the gateway drops it; None if unknown."""
        record = await self.get(name)
        if record is None:
            return None
        old_hash = record.token_sha256
        record.token_sha256 = None
        record.revoked_ms = record.revoked_ms or now_ms()
        if ban:
            record.banned_ms = now_ms()
        async with self.redis.pipeline(transaction=True) as pipe:
            if old_hash:
                pipe.hdel(self.tokens_key, old_hash)
            pipe.hset(self.records_key, name, record.model_dump_json())
            pipe.publish(self.channel, name)
            await pipe.execute()
        return record
