"""The stub WebUI's HTTP surface: A1111's routes and error bodies, plus ``/stub/*`` controls for tests.

Fault switches (``POST /stub/faults {"mode": ..., "count": n}``) make the next n generation requests answer
500 out-of-memory (``oom``), 500 RuntimeError (``error``), 422 validation (``reject``), never answer (``hang``),
drop the connection (``drop``) or send a body that is not JSON (``malformed``). ``count`` -1 keeps the fault on
until cleared. ``POST /stub/hold`` pauses generations after their first step (a test can look at a running task for
as long as it needs); ``DELETE /stub/hold`` lets them go on. An interrupt still ends a held generation.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from webui_stub import catalog
from webui_stub.engine import Engine, StubConfig, StubHTTPError, decode_image
from webui_stub.requests import ExtrasRequest, Img2ImgRequest, Txt2ImgRequest

FAULT_MODES = ("oom", "error", "reject", "hang", "drop", "malformed")
GENERATION_PATHS = ("/sdapi/v1/txt2img", "/sdapi/v1/img2img", "/sdapi/v1/extra-single-image")

ENGINE = web.AppKey("engine", Engine)
FAULTS = web.AppKey("faults", dict)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Fault:
    mode: str
    count: int


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json")


def _error_body(exc: StubHTTPError) -> web.Response:
    # A1111's api_middleware body for errors other than 422
    return _json({"error": exc.error, "detail": exc.detail, "body": "", "errors": str(exc)}, exc.status)


def _validation_error(exc: ValidationError) -> web.Response:
    # FastAPI's (pydantic v1) 422 shape
    detail = [
        {"loc": ["body", *error["loc"]], "msg": error["msg"], "type": error["type"]}
        for error in exc.errors(include_url=False)
    ]
    return _json({"detail": detail}, 422)


async def _parse(request: web.Request, model: type[BaseModel]) -> Any:
    try:
        body = await request.json()
    except json.JSONDecodeError:
        raise web.HTTPUnprocessableEntity(
            text=json.dumps(
                {"detail": [{"loc": ["body"], "msg": "Expecting value", "type": "value_error.jsondecode"}]}
            ),
            content_type="application/json",
        ) from None
    return model.model_validate(body)


@web.middleware
async def a1111_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    try:
        response = await _apply_fault(request) or await handler(request)
    except StubHTTPError as exc:
        response = _error_body(exc)
    except ValidationError as exc:
        response = _validation_error(exc)
    response.headers["X-Process-Time"] = f"{time.perf_counter() - started:.4f}"
    return response


async def _apply_fault(request: web.Request) -> web.StreamResponse | None:
    if request.path not in GENERATION_PATHS:
        return None
    fault: Fault | None = request.app[FAULTS].get("active")
    if fault is None:
        return None
    if fault.count > 0:
        fault.count -= 1
        if fault.count == 0:
            request.app[FAULTS].pop("active")
    request.app[ENGINE].stats.requests.append(f"fault:{fault.mode}")
    if fault.mode == "oom":
        return _json({"error": "OutOfMemoryError", "detail": "", "body": "",
                      "errors": "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 23.65 GiB total capacity; "
                                "21.02 GiB already allocated; 1.12 GiB free)"}, 500)
    if fault.mode == "error":
        return _json({"error": "RuntimeError", "detail": "", "body": "", "errors": "stub: injected failure"}, 500)
    if fault.mode == "reject":  # what FastAPI answers for a field out of range
        detail = [{"loc": ["body", "steps"], "msg": "ensure this value is less than or equal to 150",
                   "type": "value_error.number.not_le", "ctx": {"limit_value": 150}}]
        return _json({"detail": detail}, 422)
    if fault.mode == "malformed":
        return web.Response(text="<html>Bad Gateway</html>{", status=200, content_type="application/json")
    if fault.mode == "drop":
        await request.read()
        assert request.transport is not None
        request.transport.close()
        raise asyncio.CancelledError  # aiohttp treats this as a dropped request; nothing is sent
    # hang: never answer, until the client gives up (aiohttp does not cancel handlers on disconnect)
    while request.transport is not None and not request.transport.is_closing():  # noqa: ASYNC110 (no event for it)
        await asyncio.sleep(0.05)
    raise asyncio.CancelledError


async def txt2img(request: web.Request) -> web.Response:
    body = await _parse(request, Txt2ImgRequest)
    return _json(await request.app[ENGINE].generate(body))


async def img2img(request: web.Request) -> web.Response:
    body: Img2ImgRequest = await _parse(request, Img2ImgRequest)
    if not body.init_images:
        raise StubHTTPError(404, "HTTPException", "", detail="Init image not found")
    images = [decode_image(data) for data in body.init_images]
    return _json(await request.app[ENGINE].generate(body, images))


async def extras(request: web.Request) -> web.Response:
    body: ExtrasRequest = await _parse(request, ExtrasRequest)
    return _json(await request.app[ENGINE].upscale(body, decode_image(body.image)))


async def progress(request: web.Request) -> web.Response:
    skip = request.query.get("skip_current_image", "false").lower() == "true"
    return _json(request.app[ENGINE].progress(skip))


async def interrupt(request: web.Request) -> web.Response:
    request.app[ENGINE].interrupt()
    return _json({})


async def get_options(request: web.Request) -> web.Response:
    return _json(request.app[ENGINE].options)


async def set_options(request: web.Request) -> web.Response:
    body = await request.json()
    if not isinstance(body, dict):
        raise StubHTTPError(500, "AttributeError", "'list' object has no attribute 'items'")
    await request.app[ENGINE].set_options(body)
    return _json(None)


def constant(data: Callable[[], Any]) -> Handler:
    """A handler answering ``data()`` (listings and no-op maintenance routes)."""

    async def handler(request: web.Request) -> web.Response:
        return _json(data())

    return handler


async def set_fault(request: web.Request) -> web.Response:
    body = await request.json()
    mode, count = body.get("mode"), int(body.get("count", 1))
    if mode not in FAULT_MODES:
        return _json({"detail": f"mode must be one of {', '.join(FAULT_MODES)}"}, 400)
    request.app[FAULTS]["active"] = Fault(mode, count)
    return _json({"mode": mode, "count": count})


async def clear_faults(request: web.Request) -> web.Response:
    request.app[FAULTS].clear()
    return _json({})


def hold(on: bool) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        request.app[ENGINE].holding = on
        return _json({"holding": on})

    return handler


async def stats(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    return _json({
        "generations": engine.stats.generations,
        "busy_s": engine.stats.busy_s,
        "loads": engine.stats.loads,
        "loaded": engine.loaded,
        "holding": engine.holding,
        "window_s": (engine.stats.last_end or 0) - (engine.stats.first_start or 0),
    })


def build_app(config: StubConfig | None = None) -> web.Application:
    app = web.Application(middlewares=[a1111_middleware], client_max_size=64 * 1024 * 1024)
    app[ENGINE] = Engine(config or StubConfig())
    app[FAULTS] = {}
    app.add_routes([
        web.post("/sdapi/v1/txt2img", txt2img),
        web.post("/sdapi/v1/img2img", img2img),
        web.post("/sdapi/v1/extra-single-image", extras),
        web.get("/sdapi/v1/progress", progress),
        web.post("/sdapi/v1/interrupt", interrupt),
        web.post("/sdapi/v1/skip", constant(lambda: None)),
        web.get("/sdapi/v1/options", get_options),
        web.post("/sdapi/v1/options", set_options),
        web.get("/sdapi/v1/sd-models", constant(lambda: catalog.CHECKPOINTS)),
        web.get("/sdapi/v1/samplers", constant(lambda: catalog.SAMPLERS)),
        web.get("/sdapi/v1/schedulers", constant(lambda: catalog.SCHEDULERS)),
        web.get("/sdapi/v1/upscalers", constant(lambda: catalog.UPSCALERS)),
        web.get("/sdapi/v1/latent-upscale-modes", constant(lambda: [{"name": n} for n in catalog.LATENT_MODES])),
        web.get("/sdapi/v1/loras", constant(catalog.lora_listing)),
        web.post("/sdapi/v1/refresh-checkpoints", constant(lambda: None)),
        web.get("/internal/ping", constant(dict)),
        web.post("/stub/faults", set_fault),
        web.delete("/stub/faults", clear_faults),
        web.get("/stub/stats", stats),
        web.post("/stub/hold", hold(True)),
        web.delete("/stub/hold", hold(False)),
    ])
    return app


def run(host: str, port: int, config: StubConfig) -> None:
    print(f"stub WebUI (A1111 {catalog.VERSION} API) on http://{host}:{port}", flush=True)
    web.run_app(build_app(config), host=host, port=port, print=None, handle_signals=True)
