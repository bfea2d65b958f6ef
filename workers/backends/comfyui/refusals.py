"""ComfyUI's failures in Easel's words: validation refusals and execution errors, naming the Easel field at fault.

``node_errors`` are keyed by node id and input name; the :class:`~workers.backends.comfyui.graph.Graph` knows which
Easel field filled that input, so "value_not_in_list on node 4 input sampler_name" becomes "sampler: ...".
"""

from __future__ import annotations

from typing import Any

from workers.backends.comfyui.graph import Graph
from workers.backends.comfyui.models import ErrorDetail, PromptRefusal
from workers.backends.errors import BackendError, BackendRejected, BackendServerError, OutOfMemory, is_out_of_memory


def refused(refusal: PromptRefusal, graph: Graph) -> BackendRejected:
    """One rejection for a ``POST /prompt`` refusal: the first bad input, named by field where it can be."""
    for node_id, node in refusal.node_errors.items():
        for error in node.errors:
            field = graph.field_of(node_id, error.input_name) if error.input_name else None
            what = _describe(error)
            if field is not None:
                return BackendRejected(f"{field}: {what}", status=400, field=field)
            return BackendRejected(
                f"ComfyUI refused the workflow at {graph.title(node_id)} ({node.class_type}): {what}", status=400
            )
    top = refusal.error
    detail = f" ({top.details})" if top.details else ""
    return BackendRejected(f"ComfyUI refused the workflow: {top.message}{detail}", status=400)


def _describe(error: ErrorDetail) -> str:
    received = error.extra_info.get("received_value")
    if error.type == "value_not_in_list":
        return f"'{received}' is not one this ComfyUI server has ({error.details})"
    if error.type in ("value_smaller_than_min", "value_bigger_than_max"):
        return f"{error.message.replace('Value', 'the value', 1)}"
    if error.type == "custom_validation_failed":
        return error.details
    return f"{error.message}: {error.details}" if error.details else error.message


def execution_failed(error: dict[str, Any], graph: Graph) -> BackendError:
    """An ``execution_error`` (WebSocket or history): out of memory, a file the request named, or a server error."""
    node_id = str(error.get("node_id", ""))
    kind = str(error.get("exception_type", ""))
    message = str(error.get("exception_message", "")).strip()
    first_line = message.splitlines()[0] if message else kind
    if is_out_of_memory(f"{kind} {message}"):
        return OutOfMemory(f"the GPU ran out of memory: {first_line}")
    field = graph.field_of(node_id)
    if field is not None and kind.endswith("FileNotFoundError"):  # a loader did not find the file a field named
        return BackendRejected(f"{field}: {first_line}", field=field)
    where = f"{graph.title(node_id)} ({error.get('node_type', graph.class_type(node_id))})"
    return BackendServerError(f"ComfyUI failed in {where}: {kind}: {first_line}")
