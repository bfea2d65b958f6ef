"""Imports go one way: ``bot/ -> common/ <- workers/``, the gateway is a front end of the queue like the bot,
and the job layer (``jobs/``) serves front ends only (``bot/``, ``web/``, the CLI)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
NEVER = {  # package -> packages it must not import
    "common": {"jobs", "bot", "easel", "workers", "gateway"},
    "workers": {"jobs", "bot", "easel", "gateway"},
    "jobs": {"bot", "easel", "workers"},
    "bot": {"workers", "easel", "gateway"},
    "gateway": {"workers", "bot", "jobs", "easel"},
    "web": {"workers", "bot", "easel", "gateway"},
}


def imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    return {name.split(".")[0] for name in names}


@pytest.mark.parametrize("package", sorted(NEVER))
def test_imports_go_one_way(package: str) -> None:
    wrong = {str(path.relative_to(ROOT)): sorted(imported(path) & NEVER[package])
             for path in (ROOT / package).rglob("*.py")}
    assert {path: names for path, names in wrong.items() if names} == {}
