"""The job store across the move to ``jobs/``: a store written by the first schema (revision 0002, statuses as
strings) opens, reads as enums, writes the same strings, and needs no migration."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from common.settings import Settings
from jobs.models import ChannelSettings, JobStatus, TaskStatus
from jobs.service import JobService
from jobs.store.tables import Base, ChannelSettingsRow, TaskRow

# Made by the code before the move (common/store at 8713eb8: its migrations, rows written through its tables)
OLD_STORE = Path(__file__).with_name("data") / "store_0002.sql"


def old_store(data: Path) -> Path:
    data.mkdir()
    path = data / "easel.db"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_STORE.read_text())
    return path


async def test_a_store_from_before_the_move_opens_and_reads(make_settings: Callable[..., Settings],
                                                            tmp_path: Path) -> None:
    path = old_store(tmp_path / "data")
    async with JobService.open(make_settings(data_dir=str(tmp_path / "data")), queue=False) as jobs:
        detail = await jobs.store.job("0123456789abcdef")
        assert detail.status is JobStatus.PARTIAL
        assert [t.status for t in detail.tasks] == [TaskStatus.DONE, TaskStatus.FAILED]
        assert detail.images[0].kept and detail.tasks[1].error == "CUDA out of memory"
        [pending] = await jobs.store.pending_tasks()
        assert (pending.id, pending.status) == ("fedcba9876543210.0", TaskStatus.QUEUED)
        assert [(s.id, s.status) for s in await jobs.store.jobs("cli:ann")] == [
            ("fedcba9876543210", JobStatus.QUEUED), ("0123456789abcdef", JobStatus.PARTIAL)]
        assert (await jobs.store.channel_settings(42)).spoilers
        async with jobs.store.sessions.begin() as session:
            task = await session.get(TaskRow, pending.id)
            assert task is not None
            task.status = TaskStatus.CANCELLED
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("0002",)]
        assert db.execute("SELECT status FROM tasks ORDER BY id").fetchall() == [("done",), ("failed",),
                                                                                 ("cancelled",)]


def test_the_tables_match_the_migrated_schema(tmp_path: Path) -> None:
    """The enum status columns are the same VARCHAR(20) as before: no migration is due."""
    engine = create_engine(f"sqlite:///{old_store(tmp_path / 'data')}")
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    engine.dispose()


async def test_two_front_ends_writing_at_once_wait_for_each_other(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Two front ends (the bot and the web, say) share the store file: a write that lands while another front end's
    transaction is open neither fails nor is lost (WAL + busy_timeout; the driver begins a transaction at its first
    write, so an earlier read holds no stale snapshot that the write would have to upgrade)."""
    settings = make_settings(data_dir=str(tmp_path / "data"))
    async with JobService.open(settings) as bot, JobService.open(settings) as web:
        async with bot.store.sessions.begin() as session:
            row = await session.get(ChannelSettingsRow, 1)
            assert row is None
            other = asyncio.create_task(web.store.set_channel_settings(ChannelSettings(channel_id=2, max_count=3)))
            await asyncio.wait({other}, timeout=0.5)  # it may commit now only if the store lets it (it must not)
            session.add(ChannelSettingsRow(channel_id=1, spoilers=True, updated_ms=1))
        await other
        assert (await web.store.channel_settings(1)).spoilers
        assert (await bot.store.channel_settings(2)).max_count == 3
