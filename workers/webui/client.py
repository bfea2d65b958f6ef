"""Moved to :mod:`workers.backends.a1111.client`; this name stays until the runner is wired to the backends."""

from workers.backends.a1111.client import WebUIClient

__all__ = ["WebUIClient"]
