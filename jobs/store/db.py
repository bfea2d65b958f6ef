"""Opening the job store: migrate the schema (Alembic), then hand out async sessions (SQLAlchemy + aiosqlite)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(sync_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sync_url)
    return config


def migrate(sync_url: str) -> None:
    """Bring the schema to the newest revision (a no-op when it is there already)."""
    command.upgrade(alembic_config(sync_url), "head")


def sqlite_urls(path: Path) -> tuple[str, str]:
    """(async URL, sync URL) of a SQLite file."""
    return f"sqlite+aiosqlite:///{path}", f"sqlite:///{path}"


def open_engine(async_url: str) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(async_url)
    if async_url.startswith("sqlite"):
        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")  # cascades
            cursor.execute("PRAGMA journal_mode=WAL")  # several front ends on one host read while one writes
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()
    return engine, async_sessionmaker(engine, expire_on_commit=False)
