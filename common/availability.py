"""Can the live workers serve a request? Checked at submit time so an unknown name never reaches the queue.

A1111 silently replaces an unknown sampler with DPM++ 2M and ignores an unknown LoRA; a user would rather hear
about the typo than get a different picture, so those are refused here with the names that do exist.
"""

from __future__ import annotations

from collections.abc import Sequence

from common.errors import NotAvailable
from common.models import GenerationParams, GenerationRequest, UpscaleRequest, WorkflowRequest
from common.registry import WorkerInfo, union

_SHOWN = 10  # names listed in a refusal


def _choices(names: set[str] | list[str]) -> str:
    ordered = sorted(names)
    more = f" and {len(ordered) - _SHOWN} more" if len(ordered) > _SHOWN else ""
    return ", ".join(ordered[:_SHOWN]) + more


def _sampler_known(sampler: str, samplers: set[str], schedulers: set[str]) -> bool:
    name = sampler.lower()
    if name in samplers:
        return True
    # A1111 1.9+ splits a trailing scheduler word: "DPM++ 2M Karras" = DPM++ 2M + Karras.
    head, _, tail = name.rpartition(" ")
    return bool(head) and head in samplers and tail in schedulers


def _check_params(request: GenerationParams, workers: Sequence[WorkerInfo]) -> None:
    if request.checkpoint is not None:
        holders = [w for w in workers if w.find_checkpoint(request.checkpoint)]
        if not holders:
            titles = {c.model_name for w in workers for c in w.checkpoints}
            raise NotAvailable(
                f"checkpoint: no worker has '{request.checkpoint}'; available: {_choices(titles) or 'none'}"
            )
        workers = holders
    samplers, schedulers = union(workers, "samplers"), union(workers, "schedulers")
    if not _sampler_known(request.sampler, samplers, schedulers):
        shown = {s for w in workers for s in w.samplers}
        raise NotAvailable(f"sampler: '{request.sampler}' is unknown; choose one of {_choices(shown)}")
    if request.scheduler is not None and request.scheduler.lower() not in schedulers:
        shown = {s for w in workers for s in w.schedulers}
        raise NotAvailable(f"scheduler: '{request.scheduler}' is unknown; choose one of {_choices(shown)}")
    if request.hires is not None and request.hires.upscaler is not None:
        _check_upscaler(request.hires.upscaler, workers, field="hires.upscaler")
    loras = union(workers, "loras")
    for lora in request.loras:
        if lora.name.lower() not in loras:
            shown = {s for w in workers for s in w.loras}
            raise NotAvailable(f"prompt: LoRA '{lora.name}' is not installed; available: {_choices(shown) or 'none'}")


def _check_upscaler(name: str, workers: Sequence[WorkerInfo], *, field: str) -> None:
    if name.lower() not in union(workers, "upscalers"):
        shown = {s for w in workers for s in w.upscalers}
        raise NotAvailable(f"{field}: upscaler '{name}' is unknown; choose one of {_choices(shown)}")


def missing_capability(needs: Sequence[str], checkpoint: str | None, workers: Sequence[WorkerInfo]) -> str | None:
    """What keeps the best of ``workers`` from running a task with these needs, in words; None if one can."""
    from common.queue.lanes import capabilities  # local: the queue package imports this module's neighbours

    best: list[str] | None = None
    for worker in workers:
        offered = capabilities(worker)
        lacking = [need for need in needs if need not in offered]
        if checkpoint is not None and worker.find_checkpoint(checkpoint) is None:
            lacking.append(f"checkpoint:{checkpoint}")
        if not lacking:
            return None
        if best is None or len(lacking) < len(best):
            best = lacking
    if best is None or "backend:comfyui" in best:
        return "no live ComfyUI worker"
    kind, _, name = best[0].partition(":")
    what = {"node": "node class", "model": "model", "checkpoint": "checkpoint"}.get(kind, kind)
    return f"no live worker has {what} '{name}'"


def _check_workflow(request: WorkflowRequest, workers: Sequence[WorkerInfo]) -> None:
    missing = missing_capability(request.needs(), request.checkpoint, workers)
    if missing is not None:
        raise NotAvailable(f"workflow: '{request.workflow}' cannot run now: {missing}")


def check_servable(requests: Sequence[GenerationRequest], workers: Sequence[WorkerInfo]) -> None:
    """Raise :class:`NotAvailable` naming the field when no live worker could run one of ``requests``.

    With no live worker at all nothing can be checked; the tasks wait in the queue for one to start.
    """
    if not workers:
        return
    for request in requests:
        if isinstance(request, UpscaleRequest):
            _check_upscaler(request.upscaler, workers, field="upscaler")
        elif isinstance(request, WorkflowRequest):
            _check_workflow(request, workers)
        else:
            _check_params(request, workers)
