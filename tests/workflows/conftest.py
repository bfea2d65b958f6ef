"""The example workflow (examples/workflows/sd15_txt2img*.json), as an admin registers it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from common.workflow_models import WorkflowDef

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "workflows"
GRAPH = EXAMPLES / "sd15_txt2img.json"
INPUTS = EXAMPLES / "sd15_txt2img.inputs.json"


def example_data(name: str = "sd15") -> dict[str, Any]:
    return {"name": name, "graph": json.loads(GRAPH.read_text()), "inputs": json.loads(INPUTS.read_text())}


@pytest.fixture
def sd15() -> WorkflowDef:
    return WorkflowDef.model_validate(example_data())
