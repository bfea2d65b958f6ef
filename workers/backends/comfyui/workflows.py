"""Easel's built-in ComfyUI workflows: txt2img, img2img, hires fix, LoRA chains and upscales, for SD1.5 and SDXL.

Each image of a batch gets its own sampler chain with seed + i (ComfyUI draws a batch's noise from one seed, so
image i of a batch would not be reproducible on its own; A1111 guarantees it is). The chains share the loaders and
the prompt encodings, which ComfyUI runs once. SDXL checkpoints get ``CLIPTextEncodeSDXL`` with A1111's size
conditioning (original = target = the image size, no crop).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.images import image_size
from common.models import Img2ImgRequest, Txt2ImgRequest, UpscaleRequest, WorkflowRequest
from common.registry import CheckpointInfo
from common.workflow_models import OUTPUT_CLASSES, SAMPLER_CLASSES
from workers.backends.base import SDXL
from workers.backends.comfyui.catalog import LoraUse, Upscaler
from workers.backends.comfyui.graph import Graph, In, Node, Out
from workers.backends.errors import BackendRejected

# A1111's img2img resize modes that ImageScale can do (2, "resize and fill", has no built-in node)
_CROP = {0: "disabled", 1: "center"}


@dataclass
class Plan:
    """A graph and what the backend needs to follow it: sampler steps (for progress) and outputs in image order."""

    graph: Graph
    sampler_steps: dict[str, int] = field(default_factory=dict)  # KSampler node id -> steps, in execution order
    outputs: list[str] = field(default_factory=list)  # SaveImage node ids, image i first
    seeds: list[int] = field(default_factory=list)
    names: Resolved | None = None  # what a generation resolved its names to (None for an upscale)
    custom: str | None = None  # the name of an admin's workflow (every image of every output is kept)

    @property
    def total_steps(self) -> int:
        return sum(self.sampler_steps.values())


@dataclass(frozen=True)
class Resolved:
    """The request's names as this server calls them (see :class:`~workers.backends.comfyui.catalog.Catalog`)."""

    checkpoint: CheckpointInfo
    sampler: str
    scheduler: str
    prompt: str  # without LoRA tags
    loras: list[LoraUse]
    hires_upscaler: Upscaler | None = None
    init_image: str | None = None  # name returned by /upload/image
    prefix: str = "easel/easel"


@dataclass
class _Models:
    model: Out
    clip: Out
    vae: Out


def generation(request: Txt2ImgRequest | Img2ImgRequest, names: Resolved) -> Plan:
    graph = Graph()
    plan = Plan(graph, names=names)
    models = _load(graph, names)
    positive = _encode(graph, models.clip, In(names.prompt, "prompt"), request, names, "positive prompt")
    negative = _encode(graph, models.clip, In(request.negative_prompt, "negative_prompt"), request, names,
                       "negative prompt")
    if isinstance(request, Img2ImgRequest):
        latent, denoise = _init_latent(graph, request, names, models.vae), In(request.denoising_strength,
                                                                             "denoising_strength")
    else:
        latent = graph.add("EmptyLatentImage", title="empty latent", width=In(request.width, "width"),
                           height=In(request.height, "height"), batch_size=1).out()
        denoise = In(1.0, "denoising_strength")
    seed = request.seed  # resolved (not -1) by the backend, so the infotext can name it
    for i in range(request.batch_size):
        plan.seeds.append(seed + i)
        common = {"model": models.model, "seed": In(seed + i, "seed"), "cfg": In(request.cfg_scale, "cfg_scale"),
                  "sampler_name": In(names.sampler, "sampler"), "scheduler": In(names.scheduler, "scheduler"),
                  "positive": positive, "negative": negative}
        sampled = graph.add("KSampler", title=f"sampler {i + 1}", **common, steps=In(request.steps, "steps"),
                            latent_image=latent, denoise=denoise)
        plan.sampler_steps[sampled.id] = request.steps
        samples = sampled.out()
        if isinstance(request, Txt2ImgRequest) and request.hires is not None:
            samples = _hires(plan, request, names, models, samples, common, i)
        image = graph.add("VAEDecode", title=f"decode {i + 1}", samples=samples, vae=models.vae).out()
        plan.outputs.append(_save(graph, image, names.prefix, i).id)
    return plan


def custom(request: WorkflowRequest, uploaded: dict[str, str]) -> Plan:
    """An admin's workflow with the request's values bound into the declared node inputs (``uploaded``: image
    inputs' file names on the server). Outputs are its SaveImage nodes; its samplers' steps drive progress."""
    definition = request.definition
    graph = Graph.from_api(definition.graph)
    for declared in definition.inputs:
        value = uploaded.get(declared.name, request.values[declared.name])
        graph.fill(declared.node, declared.input, value, declared.name)
    plan = Plan(graph, custom=request.workflow, seeds=[request.seed])
    for node_id, node in graph.nodes().items():
        steps = node["inputs"].get("steps")
        if node["class_type"] in SAMPLER_CLASSES and isinstance(steps, int):
            plan.sampler_steps[node_id] = steps
        if node["class_type"] in OUTPUT_CLASSES:
            plan.outputs.append(node_id)
    plan.outputs.sort(key=lambda nid: (len(nid), nid))
    return plan


def upscale(request: UpscaleRequest, upscaler: Upscaler, image_name: str, prefix: str) -> Plan:
    """Enlarge an uploaded image to ``scale`` times its size: an upscale model then a resize, or a plain resize."""
    graph = Graph()
    plan = Plan(graph)
    width, height = image_size(request.image)
    loaded = graph.add("LoadImage", title="image", image=In(image_name, "image")).out()
    enlarged = _enlarge(graph, loaded, upscaler, "upscaler", (int(width * request.scale), int(height * request.scale)))
    plan.outputs.append(_save(graph, enlarged, prefix, 0).id)
    return plan


# --- pieces ------------------------------------------------------------------------------------------------


def _load(graph: Graph, names: Resolved) -> _Models:
    file = names.checkpoint.filename or names.checkpoint.title
    ckpt = graph.add("CheckpointLoaderSimple", title="checkpoint", ckpt_name=In(file, "checkpoint"))
    model, clip = ckpt.out(0), ckpt.out(1)
    for i, lora in enumerate(names.loras):
        node = graph.add("LoraLoader", title=f"lora {i + 1}", model=model, clip=clip,
                         lora_name=In(lora.file, f"prompt (<lora:{lora.name}>)"),
                         strength_model=In(lora.unet, f"prompt (<lora:{lora.name}>)"),
                         strength_clip=In(lora.te, f"prompt (<lora:{lora.name}>)"))
        model, clip = node.out(0), node.out(1)
    return _Models(model, clip, ckpt.out(2))


def _encode(graph: Graph, clip: Out, text: In, request: Txt2ImgRequest | Img2ImgRequest, names: Resolved,
            title: str) -> Out:
    if names.checkpoint.architecture != SDXL:
        return graph.add("CLIPTextEncode", title=title, text=text, clip=clip).out()
    size = {"width": request.width, "height": request.height, "target_width": request.width,
            "target_height": request.height, "crop_w": 0, "crop_h": 0}
    return graph.add("CLIPTextEncodeSDXL", title=title, clip=clip, text_g=text, text_l=text, **size).out()


def _init_latent(graph: Graph, request: Img2ImgRequest, names: Resolved, vae: Out) -> Out:
    if request.resize_mode not in _CROP:
        raise BackendRejected("resize_mode: 'resize and fill' (2) is not available on ComfyUI workers; use 0 "
                              "(resize) or 1 (crop and resize)", field="resize_mode")
    assert names.init_image is not None
    loaded = graph.add("LoadImage", title="init image", image=In(names.init_image, "init_image")).out()
    fitted = graph.add("ImageScale", title="init resize", image=loaded, upscale_method="lanczos",
                       width=In(request.width, "width"), height=In(request.height, "height"),
                       crop=In(_CROP[request.resize_mode], "resize_mode")).out()
    return graph.add("VAEEncode", title="init latent", pixels=fitted, vae=vae).out()


def _hires(plan: Plan, request: Txt2ImgRequest, names: Resolved, models: _Models, samples: Out,
           common: dict[str, object], i: int) -> Out:
    """A1111's hires fix: enlarge the first pass (in latent or pixel space), then a second, partial pass."""
    hires = request.hires
    assert hires is not None and names.hires_upscaler is not None
    graph, upscaler = plan.graph, names.hires_upscaler
    if upscaler.latent_method is not None:
        bigger = graph.add("LatentUpscaleBy", title=f"hires upscale {i + 1}", samples=samples,
                           upscale_method=In(upscaler.latent_method, "hires.upscaler"),
                           scale_by=In(hires.scale, "hires.scale")).out()
    else:
        pixels = graph.add("VAEDecode", title=f"hires decode {i + 1}", samples=samples, vae=models.vae).out()
        size = (int(request.width * hires.scale), int(request.height * hires.scale))
        enlarged = _enlarge(graph, pixels, upscaler, "hires.upscaler", size)
        bigger = graph.add("VAEEncode", title=f"hires encode {i + 1}", pixels=enlarged, vae=models.vae).out()
    steps = hires.second_pass_steps or request.steps
    second = graph.add("KSampler", title=f"hires sampler {i + 1}", **common,
                       steps=In(steps, "hires.second_pass_steps" if hires.second_pass_steps else "steps"),
                       latent_image=bigger, denoise=In(hires.denoising_strength, "hires.denoising_strength"))
    plan.sampler_steps[second.id] = steps
    return second.out()


def _enlarge(graph: Graph, image: Out, upscaler: Upscaler, where: str, size: tuple[int, int]) -> Out:
    """The image resized to ``size``: by an upscale model (which enlarges by its own factor, often 4) and then
    lanczos to the size, as A1111 does; or by a plain resize."""
    method = In(upscaler.pixel_method, where) if upscaler.pixel_method is not None else "lanczos"
    if upscaler.pixel_method is None:
        if upscaler.model is None:
            raise BackendRejected(f"{where}: latent upscalers apply to the hires fix only", field=where)
        loader = _node(graph, "UpscaleModelLoader", "upscale model", model_name=In(upscaler.model, where))
        image = graph.add("ImageUpscaleWithModel", title="upscale with model", upscale_model=loader,
                          image=image).out()
    return graph.add("ImageScale", title="resize", image=image, upscale_method=method, width=size[0],
                     height=size[1], crop="disabled").out()


def _node(graph: Graph, class_type: str, title: str, **inputs: object) -> Out:
    """The node titled ``title``, added once (shared by the chains of a batch)."""
    try:
        return Out(graph.node_id(title))
    except KeyError:
        return graph.add(class_type, title=title, **inputs).out()


def _save(graph: Graph, image: Out, prefix: str, i: int) -> Node:
    return graph.add("SaveImage", title=f"output {i + 1}", images=image, filename_prefix=prefix)
