"""What a volunteer node and the worker gateway say to each other over their WebSocket: typed JSON messages.

The node authenticates the upgrade request with ``Authorization: Bearer <node token>``. The gateway answers with a
:class:`Welcome` (the node's name in the pool), then every request the node sends (one per :class:`TaskSource`
step, each with its own ``id``) gets one :class:`Reply` with that id. Control messages for the node (wake-ups,
cancel, drain, pause) come as :class:`Control` at any time. There is nothing else a node can ask: it cannot
enqueue, cancel, list or read anything but the tasks the gateway gave it.

A request the node repeats after a reconnect gets the same answer (``finish`` is idempotent), so a cut link never
stores a result twice.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from common.events import TaskEvent
from common.models import ImageBytes
from common.queue.messages import ControlMessage
from common.queue.models import TaskMeta
from common.registry import WorkerInfo
from common.tasks import TaskResult

PATH = "/v1/node"
AUTH_HEADER = "Authorization"

# WebSocket close codes (4000-4999 are the application's own)
CLOSE_UNAUTHORIZED = 4001  # unknown, revoked or replaced token: do not retry
CLOSE_REVOKED = 4003  # revoked or banned while connected: do not retry
CLOSE_REPLACED = 4009  # the same node connected again; this connection is stale
FATAL_CLOSE_CODES = {CLOSE_UNAUTHORIZED, CLOSE_REVOKED}


class NodeTask(BaseModel):
    """A task the gateway claimed for the node: its metadata and spec (inputs inline), the owner pseudonymous."""

    task_id: str
    meta: TaskMeta
    spec: dict[str, Any] = Field(description="The TaskSpec as JSON, input images as base64.")
    cancel_requested: bool = False


class Failure(BaseModel):
    message: str = Field(max_length=2000)
    code: str = Field(max_length=40)


class _Request(BaseModel):
    id: int = Field(ge=0)


class ClaimRequest(_Request):
    type: Literal["claim"] = "claim"
    info: WorkerInfo


class RenewRequest(_Request):
    type: Literal["renew"] = "renew"
    task_ids: list[str] = Field(max_length=16)
    info: WorkerInfo


class FinishRequest(_Request):
    type: Literal["finish"] = "finish"
    task_id: str
    result: TaskResult | None = None
    error: Failure | None = None


class HandBackRequest(_Request):
    type: Literal["hand_back"] = "hand_back"
    task_id: str
    defer_s: float = Field(default=0.0, ge=0, le=3600)
    counted: bool
    backend_failed: bool = False
    avoid: bool = False


class CancelQuery(_Request):
    type: Literal["cancel_requested"] = "cancel_requested"
    task_id: str


class PublishRequest(_Request):
    type: Literal["publish"] = "publish"
    event: TaskEvent


class PreviewRequest(_Request):
    type: Literal["preview"] = "preview"
    task_id: str
    jpeg: ImageBytes


class SpeedRequest(_Request):
    type: Literal["speed"] = "speed"
    kind: str = Field(max_length=20)
    checkpoint: str | None = Field(default=None, max_length=300)
    work: float = Field(gt=0)
    seconds: float = Field(ge=0)


class LoadRequest(_Request):
    type: Literal["load"] = "load"
    checkpoint: str = Field(max_length=300)
    seconds: float = Field(ge=0)


class HeartbeatRequest(_Request):
    type: Literal["heartbeat"] = "heartbeat"
    info: WorkerInfo


class LeaveRequest(_Request):
    type: Literal["leave"] = "leave"


NodeRequest = Annotated[
    ClaimRequest | RenewRequest | FinishRequest | HandBackRequest | CancelQuery | PublishRequest | PreviewRequest
    | SpeedRequest | LoadRequest | HeartbeatRequest | LeaveRequest,
    Field(discriminator="type"),
]
REQUEST: TypeAdapter[NodeRequest] = TypeAdapter(NodeRequest)


class Welcome(BaseModel):
    type: Literal["welcome"] = "welcome"
    name: str = Field(description="The node's worker name in the pool.")
    lease_s: float


class Reply(BaseModel):
    type: Literal["reply"] = "reply"
    id: int
    ok: bool = True
    error: str | None = Field(default=None, description="Why the request was refused (ok is False).")
    claimed: NodeTask | None = None
    lost: list[str] = Field(default_factory=list)
    value: bool | None = None


class Control(BaseModel):
    type: Literal["control"] = "control"
    message: ControlMessage


GatewayMessage = Annotated[Welcome | Reply | Control, Field(discriminator="type")]
FROM_GATEWAY: TypeAdapter[GatewayMessage] = TypeAdapter(GatewayMessage)
