"""Messages to workers on their pub/sub inbox (and the broadcast channel): typed, JSON, one model per kind.

The Lua scripts publish ``wake`` and ``lanes`` themselves (see lua/common.lua and lua/enqueue.lua); front ends and
admin commands publish the others with :func:`encode`.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

log = logging.getLogger(__name__)


class Wake(BaseModel):
    """A task this worker can run became due: look at the queue now."""

    type: Literal["wake"] = "wake"


class LanesChanged(BaseModel):
    """A new lane (a new combination of requirements) appeared: re-read which lanes this worker serves."""

    type: Literal["lanes"] = "lanes"


class CancelTask(BaseModel):
    """Interrupt this task if it runs here (the cancel flag in Redis is the durable record)."""

    type: Literal["cancel"] = "cancel"
    task_id: str
    by: str = "its owner"


class Drain(BaseModel):
    """Finish the running task, take no more, then stop."""

    type: Literal["drain"] = "drain"


class Pause(BaseModel):
    """Finish the running task and take no new one until resumed (stay registered)."""

    type: Literal["pause"] = "pause"


class Resume(BaseModel):
    type: Literal["resume"] = "resume"


ControlMessage = Annotated[Wake | LanesChanged | CancelTask | Drain | Pause | Resume, Field(discriminator="type")]
_ADAPTER: TypeAdapter[ControlMessage] = TypeAdapter(ControlMessage)


def encode(message: ControlMessage) -> str:
    return message.model_dump_json()


def decode(data: bytes | str) -> ControlMessage | None:
    """The message, or None (logged) if it is not one Easel sends."""
    try:
        return _ADAPTER.validate_json(data)
    except ValidationError:
        log.warning("ignoring an unknown control message: %r", data[:200])
        return None
