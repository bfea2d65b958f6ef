"""Moved to :mod:`workers.backends.errors`; these names stay until the runner is wired to the backends."""

from workers.backends.errors import (
    BackendRejected,
    BackendServerError,
    BackendTimeout,
    BackendUnreachable,
    MalformedResponse,
    OutOfMemory,
    WebUIError,
)

__all__ = [
    "BackendRejected",
    "BackendServerError",
    "BackendTimeout",
    "BackendUnreachable",
    "MalformedResponse",
    "OutOfMemory",
    "WebUIError",
]
