"""Warnings on the terminal: a command that waits out a Redis outage says so in one line (``easel: ...``), printed
through the command's console so it lands above any live progress bars instead of tearing them."""

from __future__ import annotations

import logging

from rich.console import Console


class _ConsoleHandler(logging.Handler):
    def __init__(self, console: Console) -> None:
        super().__init__(logging.WARNING)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        self.console.print(f"easel: {record.getMessage()}", style="yellow", markup=False, highlight=False)


def show_warnings(console: Console) -> None:
    """Print this process's warnings (e.g. "Redis does not answer ...; waiting") on ``console``."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _ConsoleHandler)]:
        root.removeHandler(handler)
    root.addHandler(_ConsoleHandler(console))
