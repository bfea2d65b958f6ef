"""The ComfyUI stub's queue and executor: one prompt at a time, lowest ``number`` first, with ComfyUI's WebSocket
sequence, history, output files, cache and interrupt semantics (../shared/reference/comfyui-api.md §3-9).

Timing follows the stub's config: ``step_ms`` per sampler step, ``load_ms`` for a checkpoint not loaded yet.
Faults (set through ``/stub/faults``) apply to the next prompts: ``oom`` and ``error`` fail the first sampler with
an ``execution_error``, ``hang`` makes it stall until interrupted, ``drop`` cuts every WebSocket as the prompt
starts (it still runs); ``reject`` and ``malformed`` act on ``POST /prompt`` (see the server).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import time
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageOps, PngImagePlugin

from webui_stub import draw
from webui_stub.comfyui.hub import Hub
from webui_stub.comfyui.nodes import NODES, NodeFailure
from webui_stub.controls import Faults, Stats

OOM_MESSAGE = ("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 23.65 GiB of which "
               "1.12 GiB is free. Of the allocated memory 21.02 GiB is allocated by PyTorch")
OOM_TIPS = ("This error means you ran out of memory on your GPU.\n\nTIPS: If the workflow worked before you might "
            "have accidentally set the batch_size to a large number.")


@dataclass
class ComfyConfig:
    step_ms: float = 30.0
    load_ms: float = 1000.0
    previews: bool = True  # as with --preview-method latent2rgb (the real default, none, sends no previews)
    preview_size: int = 512


@dataclass
class Item:
    number: float
    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    outputs: list[str]

    def as_list(self) -> list[Any]:
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


class Interrupted(Exception):
    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.node_id = node_id


class Engine:
    def __init__(self, config: ComfyConfig) -> None:
        self.config = config
        self.hub = Hub()
        self.pending: list[Item] = []
        self.running: Item | None = None
        self.history: dict[str, dict[str, Any]] = {}
        self.files: dict[tuple[str, str, str], bytes] = {}  # (type, subfolder, filename) -> bytes
        self.number = 0
        self.loaded: str | None = None
        self.cache: dict[str, tuple[tuple[Any, ...], dict[str, Any] | None]] = {}
        self.interrupted = False
        self.faults = Faults()
        self.stats = Stats()
        self.client_id: str | None = None  # of the prompt running now
        self.last_node: str | None = None
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._worker = asyncio.create_task(self._work(), name="comfyui stub executor")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    # --- queue -------------------------------------------------------------------------------------------

    def queue_info(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": len(self.pending) + (1 if self.running else 0)}}

    async def enqueue(self, item: Item) -> None:
        self.pending.append(item)
        for _ in range(2):  # 0.3.64 sends the status twice per accepted prompt
            await self.hub.send("status", {"status": self.queue_info()})
        self._wake.set()

    async def delete(self, prompt_ids: list[str]) -> None:
        before = len(self.pending)
        self.pending = [item for item in self.pending if item.prompt_id not in prompt_ids]
        if len(self.pending) != before:
            await self.hub.send("status", {"status": self.queue_info()})

    def interrupt(self, prompt_id: str | None) -> None:
        """Global without a prompt id; otherwise only if that prompt is the running one."""
        if prompt_id is None or (self.running is not None and self.running.prompt_id == prompt_id):
            self.interrupted = True

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.pending:
                item = min(self.pending, key=lambda i: i.number)
                self.pending.remove(item)
                self.running = item
                began = time.monotonic()
                self.stats.first_start = self.stats.first_start or began
                try:
                    await Execution(self, item).run()
                finally:
                    self.running, self.client_id, self.last_node = None, None, None
                    self.stats.last_end = time.monotonic()
                    self.stats.busy_s += self.stats.last_end - began
                    self.stats.generations += 1

    # --- files -------------------------------------------------------------------------------------------

    def save(self, images: list[Image.Image], prefix: str, kind: str, texts: dict[str, str]) -> list[dict[str, str]]:
        subfolder, _, base = prefix.rpartition("/")
        numbers = [name[len(base) + 1:len(base) + 6] for (t, sub, name) in self.files
                   if t == kind and sub == subfolder and name.startswith(f"{base}_")]
        counter = max((int(n) for n in numbers if n.isdigit()), default=0) + 1  # past the highest, as ComfyUI does
        refs = []
        for offset, image in enumerate(images):
            name = f"{base}_{counter + offset:05}_.png"
            meta = PngImagePlugin.PngInfo()
            for key, value in texts.items():
                meta.add_text(key, value)
            out = io.BytesIO()
            image.save(out, format="PNG", pnginfo=meta, compress_level=4)
            self.files[(kind, subfolder, name)] = out.getvalue()
            refs.append({"filename": name, "subfolder": subfolder, "type": kind})
        return refs


class Execution:
    """One prompt's run: the node order, the cache, the messages, the history entry."""

    def __init__(self, engine: Engine, item: Item) -> None:
        self.engine, self.item = engine, item
        self.prompt = item.prompt
        self.sid: str | None = item.extra_data.get("client_id")
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.executed: list[str] = []
        self.states: dict[str, dict[str, Any]] = {}
        self.ui: dict[str, dict[str, Any]] = {}

    async def _message(self, event: str, data: dict[str, Any], *, broadcast: bool = False) -> None:
        data = {**data, "timestamp": int(time.time() * 1000)}
        self.messages.append((event, data))
        if self.sid is not None or broadcast:
            await self.engine.hub.send(event, data, self.sid)

    async def _lifecycle(self, event: str, data: dict[str, Any]) -> None:
        """Sent only to the submitting client (nobody gets it when the prompt had no client_id)."""
        if self.sid is not None:
            await self.engine.hub.send(event, data, self.sid)

    async def _progress_state(self, node_id: str, value: float, maximum: float, state: str) -> None:
        self.states[node_id] = {"value": value, "max": maximum, "state": state, "node_id": node_id,
                                "prompt_id": self.item.prompt_id, "display_node_id": node_id,
                                "parent_node_id": None, "real_node_id": node_id}
        await self.engine.hub.send("progress_state", {"prompt_id": self.item.prompt_id, "nodes": dict(self.states)},
                                   self.sid)

    async def run(self) -> None:
        engine, prompt_id = self.engine, self.item.prompt_id
        engine.interrupted, engine.client_id = False, self.sid
        fault = engine.faults.take(("oom", "error", "hang", "drop"))
        await self._message("execution_start", {"prompt_id": prompt_id})
        if fault == "drop":
            engine.hub.drop_all()
        order = self._order()
        signatures = self._signatures(order)
        cached = [n for n in self.prompt if n in order and signatures[n] in engine.cache]
        await self._message("execution_cached", {"nodes": cached, "prompt_id": prompt_id})
        values: dict[str, tuple[Any, ...]] = {}
        kept: dict[str, tuple[tuple[Any, ...], dict[str, Any] | None]] = {}
        try:
            for node_id in order:
                await self._node(node_id, signatures[node_id], cached, values, kept, fault)
            await self._message("execution_success", {"prompt_id": prompt_id})
            status = {"status_str": "success", "completed": True}
        except Interrupted as stop:
            await self._message("execution_interrupted", {
                "prompt_id": prompt_id, "node_id": stop.node_id, "node_type": self._class(stop.node_id),
                "executed": list(self.executed)}, broadcast=True)
            status = {"status_str": "error", "completed": False}
        except Exception as exc:  # a node failed: ComfyUI reports any exception as execution_error
            await self._failed(exc, order, kept)
            status = {"status_str": "error", "completed": False}
        engine.cache = kept
        engine.history[prompt_id] = {
            "prompt": self.item.as_list(), "outputs": self.ui,
            "status": {**status, "messages": [[e, d] for e, d in self.messages]},
            "meta": {n: {"node_id": n, "display_node": n, "parent_node": None, "real_node_id": n} for n in self.ui},
        }
        engine.running = None
        await engine.hub.send("status", {"status": engine.queue_info()})
        await self._lifecycle("executing", {"node": None, "prompt_id": prompt_id})

    async def _node(self, node_id: str, signature: str, cached: list[str], values: dict[str, tuple[Any, ...]],
                    kept: dict[str, Any], fault: str | None) -> None:
        engine, prompt_id = self.engine, self.item.prompt_id
        if node_id in cached:
            values[node_id], ui = engine.cache[signature]
            kept[signature] = (values[node_id], ui)
            if ui is not None:
                self.ui[node_id] = ui
                await self._lifecycle("executed", {"node": node_id, "display_node": node_id, "output": ui,
                                                   "prompt_id": prompt_id})
                await self._progress_state(node_id, 1, 1, "finished")
            return
        await self._progress_state(node_id, 0.0, 1.0, "running")
        await self._lifecycle("executing", {"node": node_id, "display_node": node_id, "prompt_id": prompt_id})
        engine.last_node = node_id
        if engine.interrupted:
            raise Interrupted(node_id)
        class_type = self._class(node_id)
        inputs = {k: values[v[0]][v[1]] if isinstance(v, list) else v
                  for k, v in self.prompt[node_id]["inputs"].items()}
        context = _Context(self, node_id, fault if class_type == "KSampler" else None)
        outputs, ui = await NODES[class_type](context, node_id, **inputs)
        values[node_id] = outputs
        kept[signature] = (outputs, ui)
        self.executed.append(node_id)
        if ui is not None:
            self.ui[node_id] = ui
            await self._lifecycle("executed", {"node": node_id, "display_node": node_id, "output": ui,
                                               "prompt_id": prompt_id})
        state = self.states[node_id]
        await self._progress_state(node_id, state["value"] if state["value"] else 1.0,
                                   state["max"] if state["value"] else 1.0, "finished")

    async def _failed(self, exc: Exception, order: list[str], kept: dict[str, Any]) -> None:
        node_id = self.engine.last_node or order[0]
        oom = isinstance(exc, NodeFailure) and exc.kind == "torch.OutOfMemoryError"
        kind = exc.kind if isinstance(exc, NodeFailure) else type(exc).__name__
        inputs = {k: [repr(v)[:200]] for k, v in self.prompt[node_id]["inputs"].items() if not isinstance(v, list)}
        await self._message("execution_error", {
            "prompt_id": self.item.prompt_id, "node_id": node_id, "node_type": self._class(node_id),
            "executed": list(self.executed), "exception_message": f"{exc}\n{OOM_TIPS if oom else ''}",
            "exception_type": kind, "traceback": ['  File "execution.py", line 496, in execute\n'],
            "current_inputs": inputs, "current_outputs": list(self.prompt)})

    def _class(self, node_id: str) -> str:
        return str(self.prompt[node_id]["class_type"])

    def _order(self) -> list[str]:
        """Nodes the outputs need, each after its inputs."""
        order: list[str] = []

        def visit(node_id: str) -> None:
            if node_id in order:
                return
            for value in self.prompt[node_id]["inputs"].values():
                if isinstance(value, list):
                    visit(str(value[0]))
            order.append(node_id)

        for output in self.item.outputs:
            visit(output)
        return order

    def _signatures(self, order: list[str]) -> dict[str, str]:
        """A node's cache key: its class, its literal inputs, and its inputs' keys (so changes flow downstream)."""
        signatures: dict[str, str] = {}
        for node_id in order:
            node = self.prompt[node_id]
            inputs = {k: signatures[str(v[0])] + f":{v[1]}" if isinstance(v, list) else v
                      for k, v in sorted(node["inputs"].items())}
            text = json.dumps([node["class_type"], inputs], sort_keys=True, default=str)
            signatures[node_id] = hashlib.sha256(text.encode()).hexdigest()
        return signatures


class _Context:
    """What a node may ask of the engine (see :class:`webui_stub.comfyui.nodes.Context`)."""

    def __init__(self, execution: Execution, node_id: str, fault: str | None) -> None:
        self.execution, self.engine, self.fault = execution, execution.engine, fault

    async def load(self, checkpoint: str) -> None:
        if self.engine.loaded != checkpoint:
            await asyncio.sleep(self.engine.config.load_ms / 1000)
            self.engine.loaded = checkpoint
            self.engine.stats.loads += 1

    async def sample(self, node_id: str, steps: int, final: Image.Image, seed: int) -> None:
        engine, execution = self.engine, self.execution
        if self.fault == "oom":
            raise NodeFailure("torch.OutOfMemoryError", OOM_MESSAGE)
        if self.fault == "error":
            raise NodeFailure("RuntimeError", "stub: injected failure")
        while self.fault == "hang" and not engine.interrupted:  # noqa: ASYNC110 (the flag is all there is)
            await asyncio.sleep(0.01)
        for step in range(1, steps + 1):
            await asyncio.sleep(engine.config.step_ms / 1000)
            if engine.interrupted:  # the sampler's progress hook checks the flag after each step
                raise Interrupted(node_id)
            await execution._progress_state(node_id, step, steps, "running")
            preview = self._preview(final, seed, step / steps) if engine.config.previews else None
            meta = {"node_id": node_id, "prompt_id": execution.item.prompt_id, "display_node_id": node_id,
                    "parent_node_id": None, "real_node_id": node_id}
            if preview is not None:
                await engine.hub.send_preview(preview, meta, execution.sid, before_progress=True)
            await engine.hub.send("progress", {"value": step, "max": steps, "prompt_id": execution.item.prompt_id,
                                               "node": node_id}, execution.sid)
            if preview is not None:
                await engine.hub.send_preview(preview, meta, execution.sid, before_progress=False)

    def _preview(self, final: Image.Image, seed: int, fraction: float) -> bytes:
        size = self.engine.config.preview_size
        image = ImageOps.contain(draw.partial(final, seed, fraction), (size, size), Image.Resampling.BILINEAR)
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=95)
        return out.getvalue()

    def save(self, images: list[Image.Image], prefix: str, kind: str) -> list[dict[str, str]]:
        texts = {"prompt": json.dumps(self.execution.prompt)}
        for key, value in (self.execution.item.extra_data.get("extra_pnginfo") or {}).items():
            texts[key] = json.dumps(value)
        if kind == "temp":
            prefix = f"{prefix}_{hashlib.sha256(str(time.time()).encode()).hexdigest()[:5]}"
        return self.engine.save(images, prefix, kind, texts)

    def input_image(self, name: str) -> Image.Image:
        subfolder, _, filename = name.rpartition("/")
        return Image.open(io.BytesIO(self.engine.files[("input", subfolder, filename)]))
