"""Moved to :mod:`workers.backends.a1111.models`; these names stay until the runner is wired to the backends."""

from workers.backends.a1111.models import GenerationResponse

__all__ = ["GenerationResponse"]
