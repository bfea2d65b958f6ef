"""`easel workers invite|ls|revoke` from the command line."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from common.nodes import TOKEN_PREFIX
from common.settings import Settings
from easel.cli import main


def test_cli_invite_ls_revoke(make_settings: Callable[..., Settings], capsys: pytest.CaptureFixture[str]) -> None:
    settings = make_settings()
    flags = ["--redis-url", settings.redis_url or "", "--prefix", settings.redis_prefix]
    assert main(["workers", "invite", "erin", "--max-pixels", "1048576", "--checkpoints", "a,b", *flags]) == 0
    assert TOKEN_PREFIX in capsys.readouterr().out
    assert main(["workers", "ls", *flags]) == 0
    listed = capsys.readouterr().out
    assert "erin" in listed and "active" in listed and "checkpoints=a,b" in listed
    assert main(["workers", "revoke", "erin", *flags]) == 0
    assert main(["workers", "ls", *flags]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["workers", "revoke", "nobody", *flags]) == 1
    assert main(["workers", "invite", "bad name!", *flags]) == 1
