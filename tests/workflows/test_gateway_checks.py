"""The gateway holds a volunteer node's answer to a workflow task to what the workflow declares."""

from __future__ import annotations

import io

from PIL import Image

from common.models import WorkflowRequest
from common.nodes import NodeRecord
from common.tasks import ImageOut, TaskResult, TaskSpec
from common.workflow_models import WorkflowDef
from gateway.checks import MAX_WORKFLOW_IMAGES, check_result, over_limits


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(out, "PNG")
    return out.getvalue()


def _result(*sizes: tuple[int, int]) -> TaskResult:
    images = [ImageOut(png=_png(w, h), seed=1, infotext="x", width=w, height=h) for w, h in sizes]
    return TaskResult(task_id="j.0", job_id="j", worker="n", images=images, seeds=[1] * len(images),
                      started_ms=1, finished_ms=2)


def test_a_workflow_result_is_held_to_its_declared_size_and_a_sane_count(sd15: WorkflowDef) -> None:
    request = WorkflowRequest(workflow=sd15.name, definition=sd15, values={"width": 64, "height": 64})
    spec = TaskSpec(task_id="j.0", job_id="j", index=0, owner="cli:ann", label="x", request=request)
    assert check_result(spec, _result((64, 64)), max_image_bytes=10**6) is None
    assert "asked for 64x64" in (check_result(spec, _result((512, 512)), max_image_bytes=10**6) or "")
    assert "may return 1 to" in (check_result(spec, _result(), max_image_bytes=10**6) or "")
    many = _result(*[(64, 64)] * (MAX_WORKFLOW_IMAGES + 1))
    assert "may return 1 to" in (check_result(spec, many, max_image_bytes=10**6) or "")


def test_a_pixel_limited_node_gets_a_workflow_task_only_within_its_limit(sd15: WorkflowDef) -> None:
    request = WorkflowRequest(workflow=sd15.name, definition=sd15, values={"width": 512, "height": 512})
    limited = NodeRecord(name="n", token_hash="0" * 64, max_pixels=256 * 256)
    assert "over its limit" in (over_limits(limited, request) or "")
    assert over_limits(limited.model_copy(update={"max_pixels": 512 * 512}), request) is None
