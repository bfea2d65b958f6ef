"""The ``/stub/*`` routes every stub flavour has, for tests and benchmarks (not part of any real server's API).

``POST /stub/faults {"mode": ..., "count": n}`` makes the next n generations fail in ``mode`` (``count`` -1: until
``DELETE /stub/faults``); what each mode does is the flavour's to say. ``GET /stub/stats`` reports busy time and
checkpoint loads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

FAULT_MODES = ("oom", "error", "reject", "hang", "drop", "malformed")


@dataclass
class Fault:
    mode: str
    count: int


@dataclass
class Stats:
    """Counters for tests and benchmarks."""

    generations: int = 0
    busy_s: float = 0.0
    loads: int = 0
    first_start: float | None = None
    last_end: float | None = None
    requests: list[str] = field(default_factory=list)


class Faults:
    """The one active fault switch."""

    def __init__(self) -> None:
        self.active: Fault | None = None

    def take(self, modes: tuple[str, ...] = FAULT_MODES) -> str | None:
        """The mode to apply to this request, if one of ``modes`` is on; counts it down."""
        fault = self.active
        if fault is None or fault.mode not in modes:
            return None
        if fault.count > 0:
            fault.count -= 1
            if fault.count == 0:
                self.active = None
        return fault.mode


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json")


def routes(faults: Callable[[web.Request], Faults], stats: Callable[[web.Request], tuple[Stats, dict[str, Any]]]
           ) -> list[web.RouteDef]:
    """The routes, given how to find the app's faults and (stats, the flavour's own fields: loaded checkpoint...)."""

    async def set_fault(request: web.Request) -> web.Response:
        body = await request.json()
        mode, count = body.get("mode"), int(body.get("count", 1))
        if mode not in FAULT_MODES:
            return _json({"detail": f"mode must be one of {', '.join(FAULT_MODES)}"}, 400)
        faults(request).active = Fault(mode, count)
        return _json({"mode": mode, "count": count})

    async def clear_faults(request: web.Request) -> web.Response:
        faults(request).active = None
        return _json({})

    async def get_stats(request: web.Request) -> web.Response:
        counters, extra = stats(request)
        return _json({
            "generations": counters.generations, "busy_s": counters.busy_s, "loads": counters.loads,
            "window_s": (counters.last_end or 0) - (counters.first_start or 0), **extra,
        })

    return [web.post("/stub/faults", set_fault), web.delete("/stub/faults", clear_faults),
            web.get("/stub/stats", get_stats)]
