"""The A1111 stub's flavours: A1111 1.10, Forge Neo and SD.Next, with what a client can observe of each
(../shared/reference/webui-api.md §5-7; Forge Neo from Haoming02/sd-webui-forge-classic, branch neo; SD.Next from
vladmandic/sdnext 058a7f0c).

- **forge-neo**: no ``X-Process-Time`` (its API middleware is commented out); errors as FastAPI's ``{"detail"}`` or
  ``{"error", "detail", "body", "message"}``; pydantic v2 422 items; ``forge_*`` options without the old memory keys,
  so sending ``forge_inference_memory`` (as an option or an override) is a 500 KeyError; ``/sdapi/v1/sd-modules``
  instead of ``/sd-vae``; a checkpoint option only selects (the next generation loads it); infotext
  ``Version: neo`` and ``Hires CFG Scale``.
- **sdnext**: ``/sdapi/v1/version`` (``{"app": "sd.next", ...}``) and ``/status``; ``/sdapi/v1/progress`` costs 60
  of the 300 units a client may spend on a route a minute (the sixth call within a minute is a 429),
  ``/internal/progress`` is free; unknown samplers are a 404 "Sampler not found"; samplers without aliases,
  "schedulers" that are its sampler classes; model ``type`` in ``/sd-models``; interrupt and skip answer 204; option
  posts answer ``{"updated"}``; errors ``{"error", "code", "detail", "body", "errors"}``; its own infotext keys.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

FLAVORS = ("a1111", "forge-neo", "sdnext")


@dataclass(frozen=True)
class Flavour:
    name: str = "a1111"
    version: str = "v1.10.1"  # what infotext's Version says
    process_time_header: bool = True
    error_shape: str = "a1111"  # a1111 | forge | sdnext
    pydantic_v2: bool = False  # the shape of 422 items
    lazy_checkpoint: bool = False  # a checkpoint option only selects; the next generation loads it
    extra_options: dict[str, Any] = field(default_factory=dict)

    @property
    def forge(self) -> bool:
        return self.name == "forge-neo"

    @property
    def sdnext(self) -> bool:
        return self.name == "sdnext"


A1111 = Flavour()
FORGE_NEO = Flavour(
    name="forge-neo", version="neo", process_time_header=False, error_shape="forge", pydantic_v2=True,
    lazy_checkpoint=True,
    extra_options={"forge_preset": "sd", "forge_additional_modules": [], "forge_unet_storage_dtype": "Automatic"},
)
SDNEXT = Flavour(name="sdnext", version="058a7f0c", error_shape="sdnext", pydantic_v2=True)
_BY_NAME = {f.name: f for f in (A1111, FORGE_NEO, SDNEXT)}

SDNEXT_VERSION = {"app": "sd.next", "updated": "2025-12-02", "commit": "058a7f0c", "branch": "master",
                  "url": "https://github.com/vladmandic/sdnext/tree/master", "ui": "main", "kanvas": "unavailable"}


def named(name: str) -> Flavour:
    if name not in _BY_NAME:
        raise ValueError(f"flavor must be one of {', '.join(FLAVORS)} (comfyui has its own stub), got {name!r}")
    return _BY_NAME[name]


def error_body(flavour: Flavour, status: int, error: str, message: str, detail: str) -> dict[str, Any]:
    """A non-422 error as the flavour's middleware (or FastAPI's default) words it."""
    if flavour.error_shape == "sdnext":
        return {"error": error, "code": status, "detail": detail, "body": "", "errors": message}
    if flavour.error_shape == "forge":
        if error == "HTTPException":
            return {"detail": detail or message}
        return {"error": error, "detail": detail, "body": "", "message": message}
    return {"error": error, "detail": detail, "body": "", "errors": message}


def validation_item(flavour: Flavour, error: Mapping[str, Any]) -> dict[str, Any]:
    """One 422 ``detail`` item: pydantic v1 (A1111's FastAPI) or v2 (Forge Neo, SD.Next)."""
    loc = ["body", *error["loc"]]
    if flavour.pydantic_v2:
        return {"type": error["type"], "loc": loc, "msg": error["msg"], "input": error.get("input")}
    return {"loc": loc, "msg": error["msg"], "type": error["type"]}


class RateLimit:
    """SD.Next's sliding window per client and route: 300 units a minute; a /sdapi/v1/progress call costs 60."""

    COSTS: ClassVar[dict[str, int]] = {"/sdapi/v1/progress": 60, "/sdapi/v1/status": 60, "/sdapi/v1/txt2img": 5,
                                       "/sdapi/v1/img2img": 5}
    FREE = ("/internal/progress", "/sdapi/v1/version")

    def __init__(self, per_minute: int = 300) -> None:
        self.per_minute = per_minute
        self._spent: dict[tuple[str, str], deque[tuple[float, int]]] = {}

    def allow(self, client: str, path: str) -> bool:
        if path in self.FREE:
            return True
        now, cost = time.monotonic(), self.COSTS.get(path, 1)
        spent = self._spent.setdefault((client, path), deque())
        while spent and spent[0][0] < now - 60:
            spent.popleft()
        if sum(c for _, c in spent) + cost > self.per_minute:
            return False
        spent.append((now, cost))
        return True
