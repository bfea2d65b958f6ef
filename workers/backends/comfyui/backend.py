"""The ComfyUI backend: Easel requests as built-in workflows, followed over the WebSocket, results from the history.

One task: resolve its names against what the server has (refusing what it lacks, naming the field), upload an init
image, build the graph (:mod:`~workers.backends.comfyui.workflows`), ``POST /prompt`` with our own ``prompt_id``,
then follow that prompt's events until ``execution_success`` (the outputs known from its ``executed`` messages) or
``executing {node: null}`` (then read ``/history/{prompt_id}``); fetch the images from ``/view`` and write A1111
infotext into them (ComfyUI's ``prompt`` chunk stays). A quiet spell, or a reconnected WebSocket, makes it read the
history (and the queue) to learn what happened meanwhile.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import logging
import random
import uuid
from dataclasses import dataclass, field

from PIL import Image

from common.models import Img2ImgRequest, UpscaleRequest, WorkflowRequest
from common.registry import CheckpointInfo
from common.tasks import ImageOut
from common.workflow_models import InputType
from workers.backends import results
from workers.backends.base import (
    BackendKind,
    Capabilities,
    Flavour,
    Generated,
    GenerationTask,
    Progress,
    ProgressCallback,
)
from workers.backends.comfyui import discovery, infotext, refusals, workflows
from workers.backends.comfyui.catalog import Catalog
from workers.backends.comfyui.client import ComfyClient, PromptRefused
from workers.backends.comfyui.models import ErrorDetail, HistoryEntry, HistoryStatus, NodeOutput, PromptRefusal
from workers.backends.comfyui.progress import Tracker
from workers.backends.comfyui.socket import ComfySocket, Dropped, Event, Message, Preview, Reconnected, Removed
from workers.backends.errors import (
    BackendServerError,
    BackendTimeout,
    BackendUnreachable,
    Interrupted,
    MalformedResponse,
)
from workers.backends.http import DEFAULT_CONNECTION, Connection

log = logging.getLogger(__name__)

SEED_RANGE = 4294967294  # what A1111 draws a random seed from
_NO_OUTPUT = NodeOutput()


@dataclass
class _Run:
    """One task on this server."""

    task_id: str
    prompt_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    events: asyncio.Queue[Event] | None = None
    submitted: bool = False
    cancelled: bool = False


class ComfyUIBackend:
    kind = BackendKind.COMFYUI
    flavour = Flavour.COMFYUI

    def __init__(
        self,
        base_url: str,
        *,
        connection: Connection = DEFAULT_CONNECTION,
        check_interval_s: float = 5.0,
        history_wait_s: float = 5.0,
    ) -> None:
        self.client = ComfyClient(base_url, connection)
        self.base_url = self.client.base_url
        self.socket = ComfySocket(self.base_url, f"easel-{uuid.uuid4().hex}",
                                  connect_timeout=connection.connect_timeout, auth=connection.auth)
        self.read_timeout = connection.read_timeout
        self.check_interval_s = check_interval_s
        self.history_wait_s = history_wait_s
        self.version: str | None = None
        self.selected: CheckpointInfo | None = None
        self._catalog: Catalog | None = None
        self._runs: dict[str, _Run] = {}

    async def aclose(self) -> None:
        await self.socket.aclose()
        await self.client.aclose()

    # --- what it offers ----------------------------------------------------------------------------------

    async def discover(self) -> Capabilities:
        caps, self._catalog = await discovery.discover(self.client)
        self.version = caps.version
        if self.selected is not None and not any(c.title == self.selected.title for c in caps.checkpoints):
            self.selected = None  # the file went away
        caps.loaded_checkpoint = self.selected.title if self.selected else None
        return caps

    async def health(self) -> None:
        await self.client.system_stats()

    async def load_checkpoint(self, checkpoint: CheckpointInfo) -> None:
        """ComfyUI loads a checkpoint when a workflow needs it: remember it for the next workflows."""
        self.selected = checkpoint

    # --- generation --------------------------------------------------------------------------------------

    async def generate(self, request: GenerationTask, *, task_id: str, on_progress: ProgressCallback) -> Generated:
        run = self._runs[task_id] = _Run(task_id)
        try:
            if self._catalog is None:
                await self.discover()
            catalog = self._catalog
            assert catalog is not None
            if isinstance(request, WorkflowRequest):
                request = request.with_seeds(lambda: random.randrange(SEED_RANGE))
            elif not isinstance(request, UpscaleRequest) and request.seed == -1:
                request = request.model_copy(update={"seed": random.randrange(SEED_RANGE)})
            plan = await self._plan(request, catalog, run)
            await self.socket.start()
            run.events = self.socket.watch(run.prompt_id)
            try:
                await self._submit(plan, run)
                entry = await self._follow(plan, run, on_progress)
            finally:
                self.socket.unwatch(run.prompt_id)
            self._raise_for(entry, plan)
            checkpoint = plan.names.checkpoint if plan.names is not None else self.selected
            return Generated(await self._images(request, plan, entry), self._parameters(request, plan, run),
                             checkpoint.title if checkpoint else None)
        finally:
            self._runs.pop(task_id, None)

    async def interrupt(self, task_id: str) -> None:
        """Delete the prompt from ComfyUI's queue if it waits there, interrupt it if it runs; nothing else stops."""
        run = self._runs.get(task_id)
        if run is None:
            return
        run.cancelled = True
        if run.submitted:  # otherwise generate() sees the flag when its POST returns
            await self._stop(run)

    async def _stop(self, run: _Run) -> None:
        await self.client.delete_queued([run.prompt_id])  # a no-op once it runs
        await self.client.interrupt(run.prompt_id)  # a no-op unless it is the running prompt
        queue = await self.client.queue()
        if not (queue.running(run.prompt_id) or queue.pending(run.prompt_id)):
            if await self.client.history(run.prompt_id) is None and run.events is not None:
                run.events.put_nowait(Removed())  # deleted while pending: ComfyUI will never mention it again

    async def _plan(self, request: GenerationTask, catalog: Catalog, run: _Run) -> workflows.Plan:
        prefix = f"easel/{run.task_id}"
        if isinstance(request, WorkflowRequest):
            plan = workflows.custom(request, await self._server_values(request, catalog))
        elif isinstance(request, UpscaleRequest):
            upscaler = catalog.upscaler(request.upscaler, "upscaler", latent=False)
            image = await self._upload(request.image)
            plan = workflows.upscale(request, upscaler, image, prefix)
        else:
            checkpoint = catalog.checkpoint(request.checkpoint, self.selected)
            sampler = catalog.sampler(request.sampler)
            text, loras = catalog.lora_uses(request.prompt)
            names = workflows.Resolved(
                checkpoint=checkpoint, sampler=sampler, scheduler=catalog.scheduler(request.scheduler, sampler),
                prompt=text, loras=loras, prefix=prefix,
                hires_upscaler=catalog.upscaler(request.hires.upscaler, "hires.upscaler", latent=True)
                if request.hires is not None else None,
                init_image=await self._upload(request.init_image) if isinstance(request, Img2ImgRequest) else None,
            )
            plan = workflows.generation(request, names)
        if run.cancelled:
            raise Interrupted("the generation was interrupted before it started")
        return plan

    async def _server_values(self, request: WorkflowRequest, catalog: Catalog) -> dict[str, str]:
        """Values as this server names them: images uploaded (their file names), checkpoints by file name (a user
        may write ``rand_sd15`` for ``rand_sd15.safetensors``)."""
        named: dict[str, str] = {}
        for declared in request.definition.inputs:
            value = str(request.values[declared.name])
            if declared.type == InputType.IMAGE:
                named[declared.name] = await self._upload(base64.b64decode(value))
            elif declared.type == InputType.CHECKPOINT:
                found = catalog.checkpoint(value, None)
                named[declared.name] = found.filename or found.title
        return named

    async def _upload(self, image: bytes) -> str:
        """Upload under a name derived from the content, so a re-upload reuses the file and names never clash."""
        with Image.open(io.BytesIO(image)) as img:  # checked at submit; only its format is wanted here
            extension = (img.format or "png").lower().replace("jpeg", "jpg")
        name = f"easel-{hashlib.sha256(image).hexdigest()[:20]}.{extension}"
        return (await self.client.upload_image(image, name)).load_name

    async def _submit(self, plan: workflows.Plan, run: _Run) -> None:
        try:
            accepted = await self.client.submit(plan.graph.to_api(), client_id=self.socket.client_id,
                                                prompt_id=run.prompt_id)
        except PromptRefused as exc:
            raise refusals.refused(exc.refusal, plan.graph) from exc
        run.submitted = True
        if run.cancelled:  # interrupt() came while the POST was under way
            await self._stop(run)
        if accepted.node_errors:  # only part of the graph validated: do not run a half workflow
            await self.client.delete_queued([run.prompt_id])
            refusal = PromptRefusal(error=ErrorDetail(message="some outputs failed validation"),
                                    node_errors=accepted.node_errors)
            raise refusals.refused(refusal, plan.graph)

    async def _follow(self, plan: workflows.Plan, run: _Run, on_progress: ProgressCallback) -> HistoryEntry:
        """Events of this prompt until it is done; the history entry it left."""
        assert run.events is not None
        tracker = Tracker(plan)
        outputs: dict[str, NodeOutput] = {}  # from ``executed`` messages: what the history will say
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.read_timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                await self.interrupt(run.task_id)
                raise BackendTimeout(f"ComfyUI at {self.base_url} did not finish the task in {self.read_timeout:.0f} s")
            try:
                event = await asyncio.wait_for(run.events.get(), min(self.check_interval_s, left))
            except TimeoutError:
                event = None
            if event is None or isinstance(event, Reconnected):
                entry = await self._check(run)  # a quiet spell or a gap: what happened meanwhile?
                if entry is not None:
                    return entry
            elif isinstance(event, Removed):
                raise Interrupted("the task was removed from ComfyUI's queue before it started")
            elif isinstance(event, Preview):
                tracker.preview(event.image)
            elif isinstance(event, Message):
                done = await self._done_by(event, plan, run, outputs)
                if done is not None:
                    return done
                progress = self._progress_of(event, tracker)
                if progress is not None:
                    await on_progress(progress)
            elif isinstance(event, Dropped):
                log.warning("ComfyUI's WebSocket dropped (%s) while task %s ran; reconnecting", event.reason,
                            run.task_id)

    async def _done_by(self, event: Message, plan: workflows.Plan, run: _Run,
                       outputs: dict[str, NodeOutput]) -> HistoryEntry | None:
        """The entry once ``event`` says the prompt is done; collects what ``executed`` messages say on the way."""
        if event.type == "executing" and event.data.get("node") is None:
            return await self._history(run)
        if event.type == "executed":
            outputs[str(event.data.get("node"))] = NodeOutput.model_validate(event.data.get("output") or {})
        elif event.type == "execution_success" and all(node in outputs for node in plan.outputs):
            # Done, and the WebSocket said what every output wrote: the history would say no more (one request less)
            return HistoryEntry(outputs=outputs, status=HistoryStatus(status_str="success", completed=True))
        return None

    @staticmethod
    def _progress_of(event: Message, tracker: Tracker) -> Progress | None:
        if event.type == "progress":
            return tracker.step(event.data)
        if event.type == "executing":
            return tracker.executing(str(event.data.get("node")))
        return None

    async def _check(self, run: _Run) -> HistoryEntry | None:
        """The history entry if the prompt finished; None while it is queued or runs; an error if it vanished."""
        entry = await self.client.history(run.prompt_id)
        if entry is not None:
            return entry
        queue = await self.client.queue()
        if queue.running(run.prompt_id) or queue.pending(run.prompt_id):
            return None
        if run.cancelled:
            raise Interrupted("the task was removed from ComfyUI's queue before it started")
        raise BackendUnreachable(f"ComfyUI at {self.base_url} lost the task (it restarted or its queue was cleared)")

    async def _history(self, run: _Run) -> HistoryEntry:
        """The entry, which ComfyUI writes just before it says the prompt is done (poll briefly if not yet)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.history_wait_s
        while True:
            entry = await self.client.history(run.prompt_id)
            if entry is not None:
                return entry
            if loop.time() > deadline:
                raise MalformedResponse(f"ComfyUI said prompt {run.prompt_id} is done but has no history for it")
            await asyncio.sleep(0.05)

    def _raise_for(self, entry: HistoryEntry, plan: workflows.Plan) -> None:
        status = entry.status
        if status.status_str == "success":
            return
        if status.last("execution_interrupted") is not None:
            raise Interrupted("the generation was interrupted")
        error = status.last("execution_error")
        if error is not None:
            raise refusals.execution_failed(error, plan.graph)
        raise BackendServerError(f"ComfyUI ended the task with status '{status.status_str or 'unknown'}'")

    async def _images(self, request: GenerationTask, plan: workflows.Plan, entry: HistoryEntry) -> list[ImageOut]:
        if isinstance(request, WorkflowRequest):
            return await self._custom_images(request, plan, entry)
        refs = []
        for node_id in plan.outputs:
            output = entry.outputs.get(node_id)
            if output is None or not output.images:
                raise MalformedResponse(f"ComfyUI's history has no image from {plan.graph.title(node_id)}")
            refs.append(output.images[0])
        pngs = await asyncio.gather(*(self.client.view(ref) for ref in refs))
        if isinstance(request, UpscaleRequest):
            return [results.upscaled(request, png) for png in pngs]
        return [
            results.image_out(png, seed=seed, infotext=infotext.generation(request, plan, seed=seed,
                                                                            version=self.version))
            for png, seed in zip(pngs, plan.seeds, strict=True)
        ]

    async def _custom_images(self, request: WorkflowRequest, plan: workflows.Plan,
                             entry: HistoryEntry) -> list[ImageOut]:
        """Every image every SaveImage node of an admin's workflow wrote, in node order."""
        refs = [ref for node_id in plan.outputs for ref in (entry.outputs.get(node_id) or _NO_OUTPUT).images]
        if not refs:
            raise MalformedResponse(f"ComfyUI's history has no image from workflow '{request.workflow}'")
        pngs = await asyncio.gather(*(self.client.view(ref) for ref in refs))
        seed = request.seed
        text = infotext.custom(request, seed=seed, version=self.version)
        return [results.image_out(png, seed=seed, infotext=text) for png in pngs]

    def _parameters(self, request: GenerationTask, plan: workflows.Plan, run: _Run) -> dict[str, object]:
        if isinstance(request, WorkflowRequest):
            shown = {i.name for i in request.definition.inputs if i.type != InputType.IMAGE}
            return {"workflow": request.workflow, **{k: v for k, v in request.values.items() if k in shown},
                    "version": f"ComfyUI {self.version}" if self.version else "ComfyUI", "prompt_id": run.prompt_id}
        if isinstance(request, UpscaleRequest) or plan.names is None:
            return {"upscaler": getattr(request, "upscaler", None), "scale": getattr(request, "scale", None),
                    "prompt_id": run.prompt_id}
        checkpoint = plan.names.checkpoint.model_name
        return {
            "prompt": request.prompt, "negative_prompt": request.negative_prompt, "seed": request.seed,
            "sampler_name": request.sampler, "cfg_scale": request.cfg_scale, "steps": request.steps,
            "width": request.width, "height": request.height, "sd_model_name": checkpoint,
            "denoising_strength": getattr(request, "denoising_strength", None),
            "version": f"ComfyUI {self.version}" if self.version else "ComfyUI", "prompt_id": run.prompt_id,
        }
