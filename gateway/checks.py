"""What the gateway checks before a node's word reaches the queue: results, events, previews, limits.

A node is not trusted: a result must be decodable PNGs of the size and count the task asked for, under the size
cap; events and previews must be about a task it runs now; a task beyond its token's limits never reaches it.
"""

from __future__ import annotations

import hashlib
import hmac
import io

from PIL import Image

from common.events import EventType, TaskEvent
from common.models import GenerationRequest, Img2ImgRequest, Txt2ImgRequest, UpscaleRequest
from common.nodes import NodeRecord
from common.tasks import TaskResult, TaskSpec

RUNNING_EVENTS = {EventType.STARTED, EventType.SWITCHING, EventType.PROGRESS}
SETTLED_EVENTS = {EventType.FINISHED, EventType.FAILED, EventType.CANCELLED, EventType.RETRYING}
MAX_PREVIEW_BYTES = 256 * 1024
MAX_EVENT_MESSAGE = 500
SIZE_SLACK = 8  # A1111 rounds a hires or upscaled size to its own grid; allow that much either way


def pseudonym(owner: str, secret: bytes) -> str:
    """What a node sees as a task's owner: stable per owner, never the Discord id."""
    return "user-" + hmac.new(secret, owner.encode(), hashlib.sha256).hexdigest()[:16]


def over_limits(record: NodeRecord, request: GenerationRequest) -> str | None:
    """Why this node's token may not run ``request``, or None."""
    if isinstance(request, UpscaleRequest):
        width, height = _upscaled(request)
    else:
        width, height = expected_size(request)
    if record.max_pixels is not None and width * height > record.max_pixels:
        return f"{width}x{height} is over its limit of {record.max_pixels} pixels"
    if record.checkpoints and not isinstance(request, UpscaleRequest):
        allowed = {c.lower() for c in record.checkpoints}
        if request.checkpoint is None or request.checkpoint.lower() not in allowed:
            return f"checkpoint {request.checkpoint!r} is not one it may run"
    return None


def expected_size(request: Txt2ImgRequest | Img2ImgRequest) -> tuple[int, int]:
    if isinstance(request, Txt2ImgRequest) and request.hires is not None:
        return int(request.width * request.hires.scale), int(request.height * request.hires.scale)
    return request.width, request.height


def _upscaled(request: UpscaleRequest) -> tuple[int, int]:
    with Image.open(io.BytesIO(request.image)) as img:
        return int(img.width * request.scale), int(img.height * request.scale)


def check_result(spec: TaskSpec, result: TaskResult, *, max_image_bytes: int) -> str | None:
    """Why ``result`` is not an honest answer to ``spec``, or None."""
    if result.task_id != spec.task_id or result.job_id != spec.job_id:
        return "the result is for another task"
    request = spec.request
    count = 1 if isinstance(request, UpscaleRequest) else request.batch_size
    if len(result.images) != count:
        return f"{len(result.images)} images where the task asked for {count}"
    want = _upscaled(request) if isinstance(request, UpscaleRequest) else expected_size(request)
    for i, image in enumerate(result.images):
        if len(image.png) > max_image_bytes:
            return f"image {i} is {len(image.png)} bytes, over the cap of {max_image_bytes}"
        try:
            with Image.open(io.BytesIO(image.png)) as img:
                fmt, size = img.format, img.size
                img.load()  # decodes every pixel: a truncated or forged file fails here
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            return f"image {i} is not a decodable image ({type(exc).__name__})"
        if fmt != "PNG":
            return f"image {i} is {fmt}, not PNG"
        if size != (image.width, image.height):
            return f"image {i} says {image.width}x{image.height} but is {size[0]}x{size[1]}"
        if abs(size[0] - want[0]) > SIZE_SLACK or abs(size[1] - want[1]) > SIZE_SLACK:
            return f"image {i} is {size[0]}x{size[1]} where the task asked for {want[0]}x{want[1]}"
    return None


def check_event(event: TaskEvent, *, running: bool, settled: bool) -> str | None:
    """Why the node may not publish ``event`` about this task (``running``: it runs it now), or None."""
    if event.type in RUNNING_EVENTS and running:
        return None
    if event.type in SETTLED_EVENTS and settled:
        return None
    return f"a {event.type.value} event about a task it does not run"


def check_preview(jpeg: bytes) -> str | None:
    if len(jpeg) > MAX_PREVIEW_BYTES:
        return f"the preview is {len(jpeg)} bytes, over {MAX_PREVIEW_BYTES}"
    try:
        with Image.open(io.BytesIO(jpeg)) as img:
            if img.format != "JPEG" or img.width > 512 or img.height > 512:
                return "the preview is not a small JPEG"
            img.load()
    except (OSError, ValueError, Image.DecompressionBombError):
        return "the preview is not a decodable image"
    return None
