"""Exceptions raised by every generation backend (A1111 family and ComfyUI), so the worker handles them alike.

Hierarchy, from the worker's point of view (what to do about each)::

    BackendError
    ├── BackendUnreachable     connect refused / DNS / connection dropped / server gone: transient, retry elsewhere
    │   └── BackendTimeout     no answer within the read timeout (a hung server)
    ├── BackendRejected        the server refused the request (422, ComfyUI node_errors): permanent; ``field`` names
    │                          the Easel field the bad value came from when it is known
    ├── OutOfMemory            CUDA / torch out of memory: retry once smaller, then fail
    ├── BackendServerError     any other server failure (5xx, a ComfyUI execution_error): transient
    ├── MalformedResponse      a successful status with a body that is not what the API promises: permanent
    └── Interrupted            the generation was stopped by :meth:`Backend.interrupt` (or by someone on the server)
"""

from __future__ import annotations

_OOM_MARKERS = ("outofmemoryerror", "out of memory")


def is_out_of_memory(text: str) -> bool:
    """True if a server's error text says the GPU (or torch on any device) ran out of memory."""
    lowered = text.lower()
    return any(marker in lowered for marker in _OOM_MARKERS)


class BackendError(Exception):
    """Base class; ``str(exc)`` is fit to show a user."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


WebUIError = BackendError
"""The name the A1111 client and today's runner use."""


class BackendUnreachable(BackendError):
    """The server could not be reached, dropped the connection, or lost the task (e.g. it restarted)."""


class BackendTimeout(BackendUnreachable):
    """The server did not answer within the read timeout."""


class BackendRejected(BackendError):
    """The server refused the request, with its own message; ``field`` is the Easel field at fault, if known."""

    def __init__(self, message: str, *, status: int | None = None, field: str | None = None) -> None:
        super().__init__(message, status=status)
        self.field = field


class OutOfMemory(BackendError):
    """The GPU ran out of memory (A1111 answers 500 OutOfMemoryError; ComfyUI reports torch.OutOfMemoryError)."""


class BackendServerError(BackendError):
    """Any other server error."""


class MalformedResponse(BackendError):
    """A successful status with a body that does not match the API."""


class Interrupted(BackendError):
    """The generation was interrupted before it finished; nothing usable came back."""
