"""The bot is no hub: only its entry point imports ``bot.app`` at run time, and the buttons and views reach submission
and delivery through ``bot.ports``, never importing them or the bot, not even for typing (no import circle)."""

from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).parent.parent.parent / "bot"


def imports(path: Path, *, typing: bool = False) -> set[str]:
    """The modules (and ``module.name``s) ``path`` imports; with ``typing``, those under TYPE_CHECKING too."""
    tree = ast.parse(path.read_text(), filename=str(path))
    typing_only = set() if typing else {
        id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
        and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING" for node in ast.walk(block)}
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_only_the_entry_point_imports_the_bot() -> None:
    importers = sorted(p.name for p in BOT.rglob("*.py") if "bot.app" in imports(p))
    assert importers == ["main.py"]


def test_buttons_and_views_do_not_import_the_parts_they_use() -> None:
    for name in ("buttons.py", "views.py", "ports.py", "answers.py", "render.py", "imaging.py"):
        wrong = imports(BOT / name, typing=True) & {"bot.delivery", "bot.submission", "bot.app"}
        assert not wrong, (name, wrong)
