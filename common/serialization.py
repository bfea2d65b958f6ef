"""arq's serializer: JSON on both sides, never pickle.

Job payloads and results are plain JSON made by ``model_dump(mode="json")``. A task that fails raises
:class:`~common.errors.TaskFailed`; arq stores the exception in the result, so exceptions are written as a tagged
object and read back as ``TaskFailed`` — any other type becomes a ``TaskFailed`` with code ``internal``.
"""

from __future__ import annotations

import json
from typing import Any

from common.errors import FailureCode, TaskFailed

_ERROR_TAG = "__easel_error__"


def _default(value: Any) -> Any:
    if isinstance(value, TaskFailed):
        return {_ERROR_TAG: value.to_json()}
    if isinstance(value, BaseException):
        # arq's own failures (timeout, "max retries exceeded", cancellation) and unexpected bugs.
        text = str(value) or type(value).__name__
        return {_ERROR_TAG: {"message": f"{type(value).__name__}: {text}", "code": FailureCode.INTERNAL}}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _object_hook(obj: dict[str, Any]) -> Any:
    if _ERROR_TAG in obj and len(obj) == 1:
        error = obj[_ERROR_TAG]
        return TaskFailed(error.get("message", "the task failed"), error.get("code", FailureCode.INTERNAL))
    return obj


def serialize(value: Any) -> bytes:
    return json.dumps(value, default=_default, separators=(",", ":")).encode()


def deserialize(data: bytes) -> Any:
    return json.loads(data, object_hook=_object_hook)
