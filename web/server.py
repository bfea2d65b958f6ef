"""Serving the web app with uvicorn: ``easel web`` (behind a reverse proxy, Discord login) or ``easel web --local``
(127.0.0.1 only, a one-time login link as the CLI's user, a session key kept in the data folder)."""

from __future__ import annotations

import getpass
import os
import secrets
from collections.abc import Callable
from functools import partial
from pathlib import Path

import uvicorn
from pydantic import SecretStr

from common.settings import Settings
from web.app import create_app
from web.auth import LocalLogins

LOCAL_HOST = "127.0.0.1"


def local_owner() -> str:
    """The owner the CLI acts as by default (``easel jobs --as``): the local user's jobs are theirs in the web too."""
    return f"cli:{getpass.getuser()}"


def local_secret(data_dir: str) -> SecretStr:
    """The session key of ``--local``: made once and kept (mode 600) in the data folder, so logins survive restarts."""
    path = Path(data_dir) / "web-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
    return SecretStr(path.read_text().strip())


def serve(settings: Settings, *, local: bool, host: str | None = None, port: int | None = None,
          say: Callable[[str], None] | None = None) -> None:
    """Run until interrupted."""
    say = say or partial(print, flush=True)
    logins = None
    if local:
        host = LOCAL_HOST
        if settings.web_secret is None:
            settings = settings.model_copy(update={"web_secret": local_secret(settings.data_dir)})
        logins = LocalLogins(local_owner(), settings.web_login_ttl_s)
    host, port = host or settings.web_host, settings.web_port if port is None else port
    app = create_app(settings, logins=logins)
    base = f"http://{host}:{port}"
    say(f"Easel web on {base} (job store {Path(settings.data_dir).absolute()}"
        f"{'' if settings.redis_url else ', no queue: REDIS_URL is not set'})")
    if logins is not None:
        minutes = settings.web_login_ttl_s / 60
        say(f"Log in (one-time link, works for {minutes:g} min): {base}/login/local?token={logins.issue()}")
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=not local)
