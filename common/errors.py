"""Errors a user sees, shared by every front end.

Hierarchy::

    EaselError                 every message is written for the person who made the request
    ├── InvalidRequest         a request breaks a bound; ``problems`` lists one line per field
    ├── NotAvailable           valid, but nothing can serve it now (unknown checkpoint, no worker)
    ├── NotFound               an unknown job or image id
    ├── NotPermitted           acting on someone else's job
    ├── QueueUnreachable       Redis did not answer (an outage longer than EASEL_REDIS_OUTAGE_S, or right now
    │                          for a command that must answer at once, e.g. a slash command)
    └── TaskFailed             a task ran and failed; ``code`` says why (see FailureCode)
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import ValidationError


class EaselError(Exception):
    """Base class: ``str(error)`` is a message a user can act on."""


class InvalidRequest(EaselError):
    """A request that breaks a bound. ``problems`` holds one ``field: what to change`` line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))

    @classmethod
    def from_validation(cls, exc: ValidationError, prefix: str = "") -> InvalidRequest:
        return cls(describe_validation_error(exc, prefix))


class NotAvailable(EaselError):
    """The request is valid but no live worker can serve it (e.g. an unknown checkpoint)."""


class NotFound(EaselError):
    """An unknown job or image id."""


class NotPermitted(EaselError):
    """Acting on someone else's job."""


class QueueUnreachable(EaselError):
    """The queue (Redis) does not answer; the message says what to do (usually: try again shortly)."""

    def __init__(self, message: str = "the queue is unreachable right now; try again shortly") -> None:
        super().__init__(message)


class FailureCode(StrEnum):
    """Why a task failed, for front ends that word or retry failures differently."""

    WEBUI_UNREACHABLE = "webui_unreachable"
    REJECTED = "rejected"  # the WebUI answered 422 / refused the parameters
    OUT_OF_MEMORY = "out_of_memory"
    WEBUI_ERROR = "webui_error"
    MALFORMED_RESPONSE = "malformed_response"
    INVALID = "invalid"
    CANCELLED = "cancelled"
    CRASHED = "crashed"  # the task stopped its worker too many times
    INTERNAL = "internal"


class TaskFailed(EaselError):
    """A task that ran on a worker and failed; travels back to the submitter as JSON (never pickled)."""

    def __init__(self, message: str, code: FailureCode | str = FailureCode.INTERNAL) -> None:
        super().__init__(message)
        self.code = FailureCode(code) if code in FailureCode._value2member_map_ else FailureCode.INTERNAL

    def to_json(self) -> dict[str, Any]:
        return {"message": str(self), "code": self.code.value}


def describe_validation_error(exc: ValidationError, prefix: str = "") -> list[str]:
    """Turn pydantic's errors into ``field: message`` lines a Discord or CLI user can act on."""
    lines = []
    for error in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in error["loc"] if part not in _WRAPPERS)
        loc = f"{prefix}{loc}" if loc else prefix.rstrip(".")
        message = error["msg"]
        if error["type"] in ("missing", "extra_forbidden"):
            message = "is required" if error["type"] == "missing" else "is not a known option"
        elif error["type"] not in _OWN_MESSAGES and "input" in error:
            shown = repr(error["input"])
            message = f"{message} (got {shown[:60]})"
        lines.append(f"{loc}: {message}" if loc else message)
    return lines


# Location parts that are containers, not fields a user typed: the task wrapper and the request kinds.
_WRAPPERS = {"request", "txt2img", "img2img", "upscale"}

# Error types raised by Easel's own validators: their messages already say what was received.
_OWN_MESSAGES = {"out_of_range", "bad_size", "bad_prompt", "bad_image", "over_limit", "bad_sweep", "bad_choice",
                 "bad_text"}
