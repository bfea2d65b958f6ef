"""arq payloads and results are JSON, never pickle."""

import pickle

import pytest

from common import serialization
from common.errors import FailureCode, TaskFailed


def test_round_trip_is_plain_json() -> None:
    data = {"t": 1, "f": "run_task", "a": [{"x": [1, 2]}], "k": {}}
    raw = serialization.serialize(data)
    assert raw.startswith(b"{") and serialization.deserialize(raw) == data


def test_task_failures_come_back_as_task_failed() -> None:
    raw = serialization.serialize({"r": TaskFailed("the GPU ran out of memory", FailureCode.OUT_OF_MEMORY)})
    error = serialization.deserialize(raw)["r"]
    assert isinstance(error, TaskFailed)
    assert (str(error), error.code) == ("the GPU ran out of memory", FailureCode.OUT_OF_MEMORY)


def test_other_exceptions_become_internal_failures() -> None:
    error = serialization.deserialize(serialization.serialize({"r": TimeoutError()}))["r"]
    assert isinstance(error, TaskFailed) and error.code == FailureCode.INTERNAL and "TimeoutError" in str(error)


def test_pickle_is_refused() -> None:
    with pytest.raises(ValueError):
        serialization.deserialize(pickle.dumps({"a": 1}))


def test_unknown_objects_are_not_silently_stringified() -> None:
    with pytest.raises(TypeError):
        serialization.serialize({"x": object()})
