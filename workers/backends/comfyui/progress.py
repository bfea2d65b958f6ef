"""Turn a prompt's WebSocket events into :class:`~workers.backends.base.Progress` for the whole task.

Sampler steps count for everything (``progress`` messages: value/max of one KSampler); a graph without samplers
(an upscale) advances by the nodes it has executed. Previews arrive as frames just before their step's
``progress`` (with ``supports_preview_metadata``; just after without it) and ride on the next report.
"""

from __future__ import annotations

import time
from typing import Any

from workers.backends.base import Progress
from workers.backends.comfyui.workflows import Plan


class Tracker:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self._finished: dict[str, int] = {}  # sampler node -> its steps, once another one reports
        self._current: tuple[str, int] | None = None  # (sampler node, step)
        self._executed: set[str] = set()
        self._preview: bytes | None = None
        self._began: float | None = None

    def preview(self, image: bytes) -> None:
        self._preview = image

    def step(self, data: dict[str, Any]) -> Progress:
        """A ``progress`` message: ``{"value", "max", "prompt_id", "node"}``."""
        node, value, steps = str(data.get("node")), int(data.get("value", 0)), int(data.get("max", 0))
        if self._began is None:
            self._began = time.monotonic()
        if self._current is not None and self._current[0] != node:
            done_node = self._current[0]
            self._finished[done_node] = self.plan.sampler_steps.get(done_node, self._current[1])
        self._current = (node, value)
        total = self.plan.total_steps or steps
        done = min(total, sum(self._finished.values()) + value)
        preview, self._preview = self._preview, None
        return Progress(step=value, steps=steps, fraction=round(done / total, 4) if total else 0.0,
                        eta_s=self._eta(done, total), preview=preview)

    def executing(self, node: str) -> Progress | None:
        """An ``executing`` message; a report only for graphs without samplers (their progress is by node)."""
        self._executed.add(node)
        if self.plan.sampler_steps:
            return None
        total = len(self.plan.graph)
        return Progress(step=0, steps=0, fraction=round(min(len(self._executed) - 1, total) / total, 4))

    def _eta(self, done: int, total: int) -> float | None:
        if self._began is None or done <= 1:
            return None
        per_step = (time.monotonic() - self._began) / (done - 1)  # the clock starts at the first step's report
        return round(per_step * (total - done), 2)
