"""Inputs stored once: an init image (or an image to upscale) goes into Redis under its sha256, and every task of a
job refers to it, instead of carrying its own base64 copy. A 64-task sweep over one 15 MB image stores it once.

In arq's payload a task's image field holds ``{"blob": "sha256:<hex>"}``; :func:`to_payload` writes that, and the
worker's :func:`from_payload` puts the bytes back before validating the :class:`~common.tasks.TaskSpec`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from common.errors import FailureCode, TaskFailed
from common.queue.keys import Keys
from common.tasks import TaskSpec

IMAGE_FIELDS = ("init_image", "image")  # request fields that hold image bytes
REF_PREFIX = "sha256:"


class Blobs:
    """Content-addressed inputs under the deployment's prefix, kept ``ttl_s`` after their last use."""

    def __init__(self, redis: Redis, keys: Keys, *, ttl_s: int) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl_s = ttl_s

    async def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        key = self._keys.blob(digest)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(key, data, nx=True, ex=self._ttl_s)
            pipe.expire(key, self._ttl_s)  # already there (an earlier job): it must outlive this job too
            await pipe.execute()
        return REF_PREFIX + digest

    async def get(self, ref: str) -> bytes | None:
        if not ref.startswith(REF_PREFIX):
            return None
        data = await self._redis.get(self._keys.blob(ref.removeprefix(REF_PREFIX)))
        return bytes(data) if data is not None else None


def images_of(spec: TaskSpec) -> dict[str, bytes]:
    """The task's input images by field name."""
    found = {field: getattr(spec.request, field, None) for field in IMAGE_FIELDS}
    return {field: value for field, value in found.items() if isinstance(value, bytes)}


def to_payload(spec: TaskSpec, refs: dict[str, str]) -> dict[str, Any]:
    """The spec as JSON with each input image replaced by its blob reference (``refs``: field -> reference)."""
    data = spec.model_dump(mode="json", exclude={"request": set(refs)})
    for field, ref in refs.items():
        data["request"][field] = {"blob": ref}
    return data


async def from_payload(data: dict[str, Any], fetch: Callable[[str], Awaitable[bytes | None]]) -> TaskSpec:
    """The spec back from arq's payload, its inputs fetched; a missing input fails the task with a clear reason."""
    request = dict(data.get("request") or {})
    for field in IMAGE_FIELDS:
        value = request.get(field)
        if isinstance(value, dict) and "blob" in value:
            blob = await fetch(str(value["blob"]))
            if blob is None:
                raise TaskFailed(f"the task's input image ({field}) is no longer stored; submit it again",
                                 FailureCode.INVALID)
            request[field] = blob
    return TaskSpec.model_validate({**data, "request": request}, context={"limits": None})
