"""Exceptions raised by :class:`workers.webui.client.WebUIClient`.

Hierarchy, from the worker's point of view (what to do about each)::

    WebUIError
    ├── BackendUnreachable     connect refused / DNS / connection dropped: transient, retry elsewhere
    │   └── BackendTimeout     no answer within the read timeout (a hung WebUI)
    ├── BackendRejected        4xx, e.g. 422 validation: permanent, show the backend's message
    ├── OutOfMemory            500 with CUDA out of memory: retry once smaller, then fail
    ├── BackendServerError     any other 5xx: transient
    └── MalformedResponse      2xx whose body is not what the API promises: permanent
"""

from __future__ import annotations


class WebUIError(Exception):
    """Base class; ``str(exc)`` is fit to show a user."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class BackendUnreachable(WebUIError):
    """The WebUI could not be reached or dropped the connection."""


class BackendTimeout(BackendUnreachable):
    """The WebUI did not answer within the read timeout."""


class BackendRejected(WebUIError):
    """The WebUI refused the request (422 validation and other 4xx), with its own message."""


class OutOfMemory(WebUIError):
    """The GPU ran out of memory (A1111 answers 500 OutOfMemoryError)."""


class BackendServerError(WebUIError):
    """Any other server error."""


class MalformedResponse(WebUIError):
    """A successful status with a body that does not match the API."""
