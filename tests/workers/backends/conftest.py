"""Helpers for the backend tests (the stub fixtures are in tests/conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from workers.backends.base import Progress


@dataclass
class Recorder:
    """An on_progress callback that keeps what it was given."""

    seen: list[Progress] = field(default_factory=list)

    async def __call__(self, progress: Progress) -> None:
        self.seen.append(progress)

    @property
    def previews(self) -> int:
        return sum(1 for p in self.seen if p.preview)
