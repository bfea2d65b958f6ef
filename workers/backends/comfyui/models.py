"""Typed shapes of ComfyUI's HTTP answers (../shared/reference/comfyui-api.md). Unknown keys are ignored: versions
add fields."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SystemInfo(_Answer):
    comfyui_version: str | None = None
    pytorch_version: str | None = None


class Device(_Answer):
    name: str = ""
    type: str = ""


class SystemStats(_Answer):
    """``GET /system_stats``."""

    system: SystemInfo
    devices: list[Device] = Field(default_factory=list)


class ErrorDetail(_Answer):
    """One validation error, top-level or per input."""

    type: str = ""
    message: str = ""
    details: str = ""
    extra_info: dict[str, Any] = Field(default_factory=dict)

    @property
    def input_name(self) -> str | None:
        name = self.extra_info.get("input_name")
        return name if isinstance(name, str) else None


class NodeError(_Answer):
    errors: list[ErrorDetail] = Field(default_factory=list)
    dependent_outputs: list[str] = Field(default_factory=list)
    class_type: str = ""


class PromptAccepted(_Answer):
    """``POST /prompt`` 200. ``node_errors`` is non-empty when only some outputs validated."""

    prompt_id: str
    number: float
    node_errors: dict[str, NodeError] = Field(default_factory=dict)


class PromptRefusal(_Answer):
    """``POST /prompt`` 400."""

    error: ErrorDetail
    node_errors: dict[str, NodeError] = Field(default_factory=dict)


class ImageRef(_Answer):
    """A file ComfyUI wrote (or took in): what ``/view`` needs."""

    filename: str
    subfolder: str = ""
    type: str = "output"


class NodeOutput(_Answer):
    images: list[ImageRef] = Field(default_factory=list)


class HistoryStatus(_Answer):
    status_str: str = ""
    completed: bool = False
    messages: list[tuple[str, dict[str, Any]]] = Field(default_factory=list)

    def last(self, kind: str) -> dict[str, Any] | None:
        """The data of the last message of ``kind`` (``execution_error``, ``execution_interrupted``...)."""
        return next((data for name, data in reversed(self.messages) if name == kind), None)


class HistoryEntry(_Answer):
    """``GET /history/{prompt_id}`` once the prompt ran (the route answers ``{}`` before)."""

    outputs: dict[str, NodeOutput] = Field(default_factory=dict)
    status: HistoryStatus = Field(default_factory=HistoryStatus)


class QueueState(_Answer):
    """``GET /queue``: items are ``[number, prompt_id, prompt, extra_data, outputs_to_execute]``."""

    queue_running: list[list[Any]] = Field(default_factory=list)
    queue_pending: list[list[Any]] = Field(default_factory=list)

    def running(self, prompt_id: str) -> bool:
        return any(len(item) > 1 and item[1] == prompt_id for item in self.queue_running)

    def pending(self, prompt_id: str) -> bool:
        return any(len(item) > 1 and item[1] == prompt_id for item in self.queue_pending)


class Uploaded(_Answer):
    """``POST /upload/image``: the name to put in ``LoadImage`` (it may differ from the one sent)."""

    name: str
    subfolder: str = ""
    type: str = "input"

    @property
    def load_name(self) -> str:
        return f"{self.subfolder}/{self.name}" if self.subfolder else self.name
