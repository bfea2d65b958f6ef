"""The ComfyUI stub's HTTP and WebSocket surface, as ComfyUI 0.3.64 answers (../shared/reference/comfyui-api.md).

Every route is also served under ``/api``. Routes that return nothing answer 200 with an empty body; errors other
than ``/prompt`` validation are bare status codes; an unhandled exception is a ``text/plain`` 500. ``/stub/faults``
and ``/stub/stats`` are the stub's own: the fault switches of the A1111 stub (``oom``, ``error``, ``reject``,
``hang``, ``drop``, ``malformed``) for the next ``count`` prompts.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from webui_stub import controls
from webui_stub.comfyui import catalog
from webui_stub.comfyui.engine import ComfyConfig, Engine, Item
from webui_stub.comfyui.hub import Client
from webui_stub.comfyui.validation import validate_prompt

ENGINE = web.AppKey("comfy_engine", Engine)
TROUBLE = "500 Internal Server Error\n\nServer got itself in trouble"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json")


@web.middleware
async def comfy_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:  # aiohttp's own answer to an unhandled exception in ComfyUI's server
        return web.Response(text=TROUBLE, status=500, content_type="text/plain")


def _engine(request: web.Request) -> Engine:
    return request.app[ENGINE]


def _image_exists(engine: Engine, name: str) -> bool:
    subfolder, _, filename = name.rpartition("/")
    filename = filename.removesuffix(" [input]")
    return ("input", subfolder, filename) in engine.files


def _inputs(engine: Engine) -> list[str]:
    return [f"{sub}/{name}" if sub else name for (kind, sub, name) in engine.files if kind == "input"]


# --- prompts -----------------------------------------------------------------------------------------------


async def post_prompt(request: web.Request) -> web.Response:
    engine = _engine(request)
    body = await request.json()  # not JSON: the middleware answers 500, as ComfyUI does
    if "number" in body:
        number = float(body["number"])
    else:
        number = float(-engine.number if body.get("front") else engine.number)
        engine.number += 1  # consumed by every POST that parses, refused ones too
    if "prompt" not in body:
        missing = {"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided",
                   "extra_info": {}}
        return _json({"error": missing, "node_errors": {}}, 400)
    fault = engine.faults.take(("reject", "malformed"))
    if fault == "malformed":
        return web.Response(text="<html>Bad Gateway</html>{", content_type="application/json")
    prompt, prompt_id = body["prompt"], str(body.get("prompt_id", uuid.uuid4()))
    info = catalog.object_info(_inputs(engine))
    valid, error, outputs, node_errors = validate_prompt(prompt, info, lambda name: _image_exists(engine, name))
    if fault == "reject":
        valid = False
        error, node_errors = _injected_refusal(prompt)
    if not valid:
        return _json({"error": error, "node_errors": node_errors}, 400)
    extra = dict(body.get("extra_data") or {})
    if "client_id" in body:
        extra["client_id"] = body["client_id"]
    number_out: float | int = number if "number" in body else int(number)
    await engine.enqueue(Item(number_out, prompt_id, prompt, extra, outputs))
    return _json({"prompt_id": prompt_id, "number": number_out, "node_errors": node_errors})


def _injected_refusal(prompt: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``reject`` fault: the first sampler's steps out of range, as ComfyUI words it."""
    node_id = next((n for n, node in prompt.items() if node.get("class_type") == "KSampler"), next(iter(prompt)))
    output = next((n for n, node in prompt.items() if node.get("class_type") in ("SaveImage", "PreviewImage")),
                  node_id)
    config = ["INT", {"default": 20, "min": 1, "max": 10000}]
    error = {"type": "value_bigger_than_max", "message": "Value 10001 bigger than max of 10000", "details": "steps",
             "extra_info": {"input_name": "steps", "input_config": config, "received_value": 10001}}
    top = {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation", "details": "",
           "extra_info": {}}
    return top, {node_id: {"errors": [error], "dependent_outputs": [output],
                           "class_type": prompt.get(node_id, {}).get("class_type", "KSampler")}}


async def get_prompt(request: web.Request) -> web.Response:
    return _json(_engine(request).queue_info())


async def get_queue(request: web.Request) -> web.Response:
    engine = _engine(request)
    running = [engine.running.as_list()] if engine.running else []
    return _json({"queue_running": running, "queue_pending": [i.as_list() for i in engine.pending]})


async def post_queue(request: web.Request) -> web.Response:
    engine, body = _engine(request), await request.json()
    if body.get("clear"):
        await engine.delete([i.prompt_id for i in engine.pending])
    if "delete" in body:
        await engine.delete([str(p) for p in body["delete"]])
    return web.Response()


async def post_interrupt(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        body = {}
    prompt_id = body.get("prompt_id") if isinstance(body, dict) else None
    _engine(request).interrupt(str(prompt_id) if prompt_id else None)
    return web.Response()


async def get_history(request: web.Request) -> web.Response:
    engine, prompt_id = _engine(request), request.match_info.get("prompt_id")
    if prompt_id is not None:
        entry = engine.history.get(prompt_id)
        return _json({prompt_id: entry} if entry is not None else {})
    items = list(engine.history.items())
    if "max_items" in request.query:
        count = int(request.query["max_items"])
        offset = int(request.query["offset"]) if "offset" in request.query else max(0, len(items) - count)
        items = items[offset:offset + count]
    return _json(dict(items))


async def post_history(request: web.Request) -> web.Response:
    engine, body = _engine(request), await request.json()
    if body.get("clear"):
        engine.history.clear()
    for prompt_id in body.get("delete", []):
        engine.history.pop(prompt_id, None)
    return web.Response()


# --- files -------------------------------------------------------------------------------------------------


async def upload_image(request: web.Request) -> web.Response:
    engine, post = _engine(request), await request.post()
    image, kind = post.get("image"), str(post.get("type") or "input")
    if kind not in ("input", "temp", "output"):
        raise ValueError(kind)  # 500, as ComfyUI answers type=bogus
    if not isinstance(image, web.FileField) or not image.filename:
        return web.Response(status=400)
    subfolder = str(post.get("subfolder", ""))
    if ".." in subfolder.split("/") or subfolder.startswith("/"):
        return web.Response(status=400)
    data, name = image.file.read(), image.filename
    stem, dot, ext = name.rpartition(".")
    if str(post.get("overwrite")) not in ("true", "1"):
        i = 1
        while (kind, subfolder, name) in engine.files:
            if hashlib.sha256(engine.files[(kind, subfolder, name)]).digest() == hashlib.sha256(data).digest():
                return _json({"name": name, "subfolder": subfolder, "type": kind})  # same content: reused
            name = f"{stem} ({i}){dot}{ext}" if dot else f"{name} ({i})"
            i += 1
    engine.files[(kind, subfolder, name)] = data
    return _json({"name": name, "subfolder": subfolder, "type": kind})


async def view(request: web.Request) -> web.Response:
    engine, query = _engine(request), request.query
    filename = query.get("filename", "")
    kind = query.get("type", "output")
    for annotated in ("input", "output", "temp"):
        if filename.endswith(f" [{annotated}]"):
            filename, kind = filename[: -len(annotated) - 3], annotated
    if not filename:
        return web.Response(status=404)
    if filename.startswith("/") or ".." in filename:
        return web.Response(status=400)
    data = engine.files.get((kind, query.get("subfolder", ""), filename.rsplit("/", 1)[-1]))
    if data is None:
        return web.Response(status=404)
    return web.Response(body=data, content_type="image/png",
                        headers={"Content-Disposition": f'filename="{filename}"'})


# --- info --------------------------------------------------------------------------------------------------


async def system_stats(request: web.Request) -> web.Response:
    device = {"name": "cuda:0 NVIDIA GeForce RTX 4090 (stub)", "type": "cuda", "index": 0,
              "vram_total": 25756696576, "vram_free": 24000000000, "torch_vram_total": 0, "torch_vram_free": 0}
    return _json({"system": {"os": "posix", "ram_total": 67108864000, "ram_free": 60000000000,
                             "comfyui_version": catalog.VERSION, "required_frontend_version": "1.27.10",
                             "python_version": "3.11.7", "pytorch_version": "2.13.0+cu126", "embedded_python": False,
                             "argv": ["main.py", "--preview-method", "latent2rgb"]},
                  "devices": [device]})


async def object_info(request: web.Request) -> web.Response:
    info = catalog.object_info(_inputs(_engine(request)))
    node = request.match_info.get("node")
    if node is not None:
        return _json({node: info[node]} if node in info else {})
    return _json(info)


async def models(request: web.Request) -> web.Response:
    folder = request.match_info.get("folder")
    if folder is None:
        return _json(catalog.FOLDERS)
    if folder not in catalog.FOLDERS:
        return web.Response(status=404)
    return _json(catalog.MODELS.get(folder, []))


async def view_metadata(request: web.Request) -> web.Response:
    folder, filename = request.match_info["folder"], request.query.get("filename", "")
    metadata = catalog.METADATA.get((folder, filename))
    if not filename.endswith(".safetensors") or metadata is None:
        return web.Response(status=404)
    return _json(metadata)


def constant(data: Any) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return _json(data)

    return handler


async def empty(request: web.Request) -> web.Response:
    return web.Response()


# --- WebSocket ---------------------------------------------------------------------------------------------


async def websocket(request: web.Request) -> web.WebSocketResponse:
    engine = _engine(request)
    ws = web.WebSocketResponse(max_msg_size=0)
    await ws.prepare(request)
    sid = request.query.get("clientId") or uuid.uuid4().hex
    engine.hub.clients[sid] = client = Client(ws, request)  # the same id again replaces the old socket
    try:
        await engine.hub.send("status", {"status": engine.queue_info(), "sid": sid}, sid)
        if engine.client_id == sid and engine.last_node is not None:
            await engine.hub.send("executing", {"node": engine.last_node}, sid)
        first = True
        async for msg in ws:
            if first and msg.type.name == "TEXT":
                body = json.loads(msg.data)
                if body.get("type") == "feature_flags":
                    client.flags = dict(body.get("data") or {})
                    await engine.hub.send("feature_flags", {"supports_preview_metadata": True,
                                                            "max_upload_size": 104857600}, sid)
            first = False
    finally:
        if engine.hub.clients.get(sid) is client:
            del engine.hub.clients[sid]
    return ws


def build_app(config: ComfyConfig | None = None) -> web.Application:
    app = web.Application(middlewares=[comfy_errors], client_max_size=100 * 1024 * 1024)
    app[ENGINE] = engine = Engine(config or ComfyConfig())

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        engine.start()
        yield
        await engine.stop()

    app.cleanup_ctx.append(lifetime)

    async def close_sockets(app: web.Application) -> None:  # so a shutdown does not wait for them
        for client in list(engine.hub.clients.values()):
            await client.ws.close(code=1001, message=b"server shutdown")

    app.on_shutdown.append(close_sockets)
    routes: list[tuple[str, str, Handler]] = [
        ("POST", "/prompt", post_prompt), ("GET", "/prompt", get_prompt),
        ("GET", "/queue", get_queue), ("POST", "/queue", post_queue),
        ("POST", "/interrupt", post_interrupt), ("POST", "/free", empty),
        ("GET", "/history", get_history), ("GET", "/history/{prompt_id}", get_history),
        ("POST", "/history", post_history),
        ("POST", "/upload/image", upload_image), ("GET", "/view", view),
        ("GET", "/system_stats", system_stats),
        ("GET", "/features", constant({"supports_preview_metadata": True, "max_upload_size": 104857600})),
        ("GET", "/object_info", object_info), ("GET", "/object_info/{node}", object_info),
        ("GET", "/models", models), ("GET", "/models/{folder}", models),
        ("GET", "/view_metadata/{folder}", view_metadata), ("GET", "/embeddings", constant([])),
        ("GET", "/ws", websocket),
    ]
    for prefix in ("", "/api"):  # ComfyUI serves every route under /api too
        app.add_routes([web.route(method, prefix + path, handler) for method, path, handler in routes])
    app.add_routes(controls.routes(lambda r: _engine(r).faults,
                                   lambda r: (_engine(r).stats, {"loaded": _engine(r).loaded})))
    return app


def run(host: str, port: int, config: ComfyConfig) -> None:
    print(f"stub ComfyUI ({catalog.VERSION} API) on http://{host}:{port}", flush=True)
    web.run_app(build_app(config), host=host, port=port, print=None, handle_signals=True)
