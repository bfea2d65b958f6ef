"""The A1111-family backend: A1111 1.10, Forge, Forge Neo and SD.Next behind one :class:`Backend`.

Generation calls are synchronous on these servers, so progress is polled beside the call (every
``progress_interval_s``): ``/sdapi/v1/progress`` on A1111 and Forge, ``/internal/progress`` on SD.Next (see
:mod:`workers.backends.a1111.flavours`). Progress there is global: it shows whatever the server runs, and a worker
runs one task at a time on its server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from common.models import Img2ImgRequest, Txt2ImgRequest, UpscaleRequest, WorkflowRequest
from common.registry import CheckpointInfo
from workers.backends import results
from workers.backends.a1111 import flavours, payloads
from workers.backends.a1111.client import WebUIClient
from workers.backends.a1111.models import GenerationResponse
from workers.backends.base import (
    BackendKind,
    Capabilities,
    Flavour,
    Generated,
    GenerationTask,
    Progress,
    ProgressCallback,
)
from workers.backends.errors import BackendError, BackendRejected, Interrupted, MalformedResponse
from workers.backends.http import DEFAULT_CONNECTION, Connection

log = logging.getLogger(__name__)

_PARAMETERS = {"prompt", "negative_prompt", "seed", "sampler_name", "cfg_scale", "steps", "width", "height",
               "sd_model_name", "sd_model_hash", "denoising_strength", "version"}


class A1111Backend:
    """One A1111-family WebUI. The flavour is detected by :meth:`discover` (``flavour=`` is the starting guess)."""

    kind = BackendKind.A1111

    def __init__(
        self,
        base_url: str,
        *,
        connection: Connection = DEFAULT_CONNECTION,
        flavour: Flavour = Flavour.A1111,
        progress_interval_s: float = 0.5,
    ) -> None:
        self.client = WebUIClient(base_url, auth=connection.auth, connect_timeout=connection.connect_timeout,
                                  read_timeout=connection.read_timeout, transport=connection.transport)
        self.base_url = self.client.base_url
        self.flavour = flavour
        self.version: str | None = None
        self.progress_interval_s = progress_interval_s
        self.loaded: str | None = None
        self._running: str | None = None
        self._interrupted: set[str] = set()

    async def aclose(self) -> None:
        await self.client.aclose()

    # --- what it offers ----------------------------------------------------------------------------------

    async def discover(self) -> Capabilities:
        detected = await flavours.detect(self.client)
        self.flavour, self.version = detected.flavour, detected.version or self.version
        caps = Capabilities(kind=self.kind, flavour=self.flavour, version=self.version)
        caps.checkpoints = [
            CheckpointInfo(title=m.title, model_name=m.model_name, hash=m.hash, filename=m.filename,
                           architecture=flavours.architecture_of(m.title, m.type))
            for m in await self.client.sd_models()
        ]
        caps.samplers = sorted({name for s in await self.client.samplers() for name in (s.name, *s.aliases)})
        if self.flavour != Flavour.SDNEXT:  # SD.Next's /schedulers are its samplers' classes, not schedule types
            with contextlib.suppress(BackendError):  # /schedulers exists from A1111 1.9 on
                caps.schedulers = sorted({
                    name for s in await self.client.schedulers() for name in (s.name, s.label, *(s.aliases or []))
                    if name
                })
        upscalers = {u.name for u in await self.client.upscalers()}
        with contextlib.suppress(BackendError):
            upscalers |= {m.name for m in await self.client.latent_upscale_modes()}
        caps.upscalers = sorted(upscalers)
        with contextlib.suppress(BackendError):  # the Lora extension may be disabled
            caps.loras = sorted({n for lora in await self.client.loras() for n in (lora.name, lora.alias) if n})
        current = await self.client.current_checkpoint()
        match = next((c for c in caps.checkpoints if current and c.matches(current)), None)
        caps.loaded_checkpoint = self.loaded = match.title if match else current
        return caps

    async def health(self) -> None:
        if self.flavour == Flavour.SDNEXT:
            await self.client.internal_progress(id_live_preview=-1)  # free there; /progress is rate-limited
        else:
            await self.client.progress(skip_current_image=True)

    async def load_checkpoint(self, checkpoint: CheckpointInfo) -> None:
        """A1111 loads it before answering; Forge and Neo only select it (the next generation loads it)."""
        await self.client.set_checkpoint(checkpoint.title)
        self.loaded = checkpoint.title

    # --- generation --------------------------------------------------------------------------------------

    async def generate(self, request: GenerationTask, *, task_id: str, on_progress: ProgressCallback) -> Generated:
        self._running = task_id
        poller = asyncio.create_task(self._poll(on_progress), name=f"progress {task_id}")
        try:
            generated = await self._generate(request)
        finally:
            self._running = None
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        if task_id in self._interrupted:  # A1111 answers 200 with what it had; the task still did not finish
            self._interrupted.discard(task_id)
            raise Interrupted("the generation was interrupted")
        return generated

    async def interrupt(self, task_id: str) -> None:
        """A1111's interrupt is global: send it only while this task is the one running here."""
        if self._running != task_id:
            return
        self._interrupted.add(task_id)
        await self.client.interrupt()

    async def _generate(self, request: GenerationTask) -> Generated:
        if isinstance(request, WorkflowRequest):  # routing keeps these away; say so if one arrives anyway
            raise BackendRejected(f"workflow: '{request.workflow}' is a ComfyUI workflow; this worker runs "
                                  f"{self.flavour.value}")
        if isinstance(request, UpscaleRequest):
            extras = await self.client.extra_single_image(payloads.extras_payload(request))
            return Generated([results.upscaled(request, extras.image)],
                             {"upscaler": request.upscaler, "scale": request.scale}, self.loaded)
        response = await self._call(request)
        images = payloads.generated_images(response)
        if not images:
            raise MalformedResponse("the WebUI returned no images")
        self.version = response.info.version or self.version
        return Generated(images, response.info.model_dump(include=_PARAMETERS), self.loaded)

    async def _call(self, request: Txt2ImgRequest | Img2ImgRequest) -> GenerationResponse:
        if isinstance(request, Txt2ImgRequest):
            txt2img = payloads.txt2img_payload(request)
            flavours.adapt(txt2img, self.flavour)
            return await self.client.txt2img(txt2img)
        img2img = payloads.img2img_payload(request)
        flavours.adapt(img2img, self.flavour)
        return await self.client.img2img(img2img)

    async def _poll(self, on_progress: ProgressCallback) -> None:
        """Beside the generation call: report each new step (and preview) the server shows."""
        last: tuple[int, ...] | None = None
        while True:
            await asyncio.sleep(self.progress_interval_s)
            try:
                seen = await self._progress()
            except BackendError as exc:  # best effort; the generation call reports real failures
                log.debug("progress poll failed: %s", exc)
                continue
            if seen is None:
                continue
            key, progress = seen
            if key != last:
                last = key
                await on_progress(progress)

    async def _progress(self) -> tuple[tuple[int, ...], Progress] | None:
        if self.flavour == Flavour.SDNEXT:
            answer = await self.client.internal_progress(id_live_preview=0)
            if not answer.active or answer.step is None:
                return None
            key: tuple[int, ...] = (answer.batch_no or 0, answer.step, answer.id_live_preview or 0)
            return key, Progress(step=answer.step, steps=answer.steps or 0, fraction=answer.progress or 0.0,
                                 eta_s=answer.eta, preview=answer.preview)
        progress = await self.client.progress()
        state = progress.state
        if not progress.active:
            return None
        key = (state.job_no, state.sampling_step)
        return key, Progress(step=state.sampling_step, steps=state.sampling_steps, fraction=round(progress.progress, 4),
                             eta_s=round(progress.eta_relative, 2), preview=progress.current_image)
