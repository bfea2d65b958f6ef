"""The stub WebUI's HTTP surface: A1111's routes and error bodies (or a flavour's, see :mod:`webui_stub.flavours`),
plus ``/stub/*`` controls for tests.

Fault switches (``POST /stub/faults {"mode": ..., "count": n}``) make the next n generation requests answer
500 out-of-memory (``oom``), 500 RuntimeError (``error``), 422 validation (``reject``), never answer (``hang``),
drop the connection (``drop``) or send a body that is not JSON (``malformed``). ``count`` -1 keeps the fault on
until cleared.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from webui_stub import catalog, controls, flavours
from webui_stub.engine import Engine, StubConfig, StubHTTPError, decode_image
from webui_stub.requests import ExtrasRequest, Img2ImgRequest, Txt2ImgRequest

GENERATION_PATHS = ("/sdapi/v1/txt2img", "/sdapi/v1/img2img", "/sdapi/v1/extra-single-image")

ENGINE = web.AppKey("engine", Engine)
FAULTS = web.AppKey("faults", controls.Faults)
RATE = web.AppKey("rate", flavours.RateLimit)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json")


def _flavour(request: web.Request) -> flavours.Flavour:
    return request.app[ENGINE].flavour


def _error(request: web.Request, status: int, error: str, message: str, detail: str = "") -> web.Response:
    """An error other than 422, in the body A1111's api_middleware (or the flavour's) writes."""
    return _json(flavours.error_body(_flavour(request), status, error, message, detail), status)


def _validation_error(request: web.Request, exc: ValidationError) -> web.Response:
    detail = [flavours.validation_item(_flavour(request), error) for error in exc.errors(include_url=False)]
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
        response = _error(request, exc.status, exc.error, str(exc), exc.detail)
    except ValidationError as exc:
        response = _validation_error(request, exc)
    flavour = _flavour(request)
    if flavour.sdnext and not request.app[RATE].allow(request.remote or "", request.path):
        # SD.Next counts the call after running it, then answers 429 instead
        response = _error(request, 429, "HTTPException", "", f"{request.remote}:{request.path}: rate limit exceeded")
    if flavour.process_time_header:
        response.headers["X-Process-Time"] = f"{time.perf_counter() - started:.4f}"
    return response


async def _apply_fault(request: web.Request) -> web.StreamResponse | None:
    if request.path not in GENERATION_PATHS:
        return None
    mode = request.app[FAULTS].take()
    if mode is None:
        return None
    request.app[ENGINE].stats.requests.append(f"fault:{mode}")
    if mode == "oom":
        return _error(request, 500, "OutOfMemoryError", "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; "
                      "23.65 GiB total capacity; 21.02 GiB already allocated; 1.12 GiB free)")
    if mode == "error":
        return _error(request, 500, "RuntimeError", "stub: injected failure")
    if mode == "reject":  # what FastAPI answers for a field out of range
        if _flavour(request).pydantic_v2:
            detail = [{"type": "less_than_equal", "loc": ["body", "steps"],
                       "msg": "Input should be less than or equal to 150", "input": 151, "ctx": {"le": 150}}]
        else:
            detail = [{"loc": ["body", "steps"], "msg": "ensure this value is less than or equal to 150",
                       "type": "value_error.number.not_le", "ctx": {"limit_value": 150}}]
        return _json({"detail": detail}, 422)
    if mode == "malformed":
        return web.Response(text="<html>Bad Gateway</html>{", status=200, content_type="application/json")
    if mode == "drop":
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
    return web.Response(status=204) if _flavour(request).sdnext else _json({})


async def skip(request: web.Request) -> web.Response:
    return web.Response(status=204) if _flavour(request).sdnext else _json(None)


async def internal_progress(request: web.Request) -> web.Response:
    body = await request.json()
    return _json(request.app[ENGINE].internal_progress(int(body.get("id_live_preview", -1))))


async def get_options(request: web.Request) -> web.Response:
    return _json(request.app[ENGINE].options)


async def set_options(request: web.Request) -> web.Response:
    body = await request.json()
    if not isinstance(body, dict):
        raise StubHTTPError(500, "AttributeError", "'list' object has no attribute 'items'")
    await request.app[ENGINE].set_options(body)
    return _json({"updated": [{key: True} for key in body]} if _flavour(request).sdnext else None)


def constant(data: Callable[[], Any]) -> Handler:
    """A handler answering ``data()`` (listings and no-op maintenance routes)."""

    async def handler(request: web.Request) -> web.Response:
        return _json(data())

    return handler


def hold(on: bool) -> Handler:
    """Tests: generations pause after their first step while holding (an interrupt still ends them)."""

    async def handler(request: web.Request) -> web.Response:
        request.app[ENGINE].holding = on
        return web.json_response({"holding": on})

    return handler


def build_app(config: StubConfig | None = None) -> web.Application:
    config = config or StubConfig()
    app = web.Application(middlewares=[a1111_middleware], client_max_size=64 * 1024 * 1024)
    app[ENGINE] = Engine(config)
    app[FAULTS] = controls.Faults()
    app[RATE] = flavours.RateLimit()
    flavour = config.flavour
    app.add_routes([
        web.post("/sdapi/v1/txt2img", txt2img),
        web.post("/sdapi/v1/img2img", img2img),
        web.post("/sdapi/v1/extra-single-image", extras),
        web.get("/sdapi/v1/progress", progress),
        web.post("/sdapi/v1/interrupt", interrupt),
        web.post("/sdapi/v1/skip", skip),
        web.get("/sdapi/v1/options", get_options),
        web.post("/sdapi/v1/options", set_options),
        web.get("/sdapi/v1/sd-models", constant(lambda: catalog.sd_models(with_type=flavour.sdnext))),
        web.get("/sdapi/v1/samplers", constant(lambda: catalog.sampler_listing(aliases=not flavour.sdnext))),
        web.get("/sdapi/v1/schedulers", constant(
            lambda: catalog.SDNEXT_SCHEDULERS if flavour.sdnext else catalog.SCHEDULERS)),
        web.get("/sdapi/v1/upscalers", constant(lambda: catalog.UPSCALERS)),
        web.get("/sdapi/v1/latent-upscale-modes", constant(lambda: [{"name": n} for n in catalog.LATENT_MODES])),
        web.get("/sdapi/v1/loras", constant(catalog.lora_listing)),
        web.post("/sdapi/v1/refresh-checkpoints", constant(lambda: None)),
        web.get("/internal/ping", constant(dict)),
        *controls.routes(lambda r: r.app[FAULTS],
                         lambda r: (r.app[ENGINE].stats, {"loaded": r.app[ENGINE].loaded,
                                                          "holding": r.app[ENGINE].holding})),
        web.post("/stub/hold", hold(True)),
        web.delete("/stub/hold", hold(False)),
    ])
    if flavour.forge:  # Forge lists VAEs and text encoders as modules
        app.add_routes([web.get("/sdapi/v1/sd-modules", constant(lambda: catalog.SD_MODULES))])
    else:
        app.add_routes([web.get("/sdapi/v1/sd-vae", constant(lambda: catalog.SD_VAE))])
    if flavour.sdnext:
        app.add_routes([
            web.get("/sdapi/v1/version", constant(lambda: flavours.SDNEXT_VERSION)),
            web.get("/sdapi/v1/status", constant(lambda: {"status": "idle", "task": "", "timestamp": None})),
            web.post("/internal/progress", internal_progress),
        ])
    return app


def run(host: str, port: int, config: StubConfig) -> None:
    print(f"stub WebUI ({config.flavour.name} {config.flavour.version} API) on http://{host}:{port}", flush=True)
    web.run_app(build_app(config), host=host, port=port, print=None, handle_signals=True)
