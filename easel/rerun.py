"""``easel workers ban NAME --rerun SINCE``: make again, in the job store's record, what a banned node made."""

from __future__ import annotations

from datetime import datetime

from common.settings import Settings


async def rerun_made_by(settings: Settings, worker: str, since: datetime) -> int:
    """Queue again every task ``worker`` finished since ``since`` (same seeds); returns how many."""
    from jobs.service import JobService

    async with JobService.open(settings) as service:
        records = await service.curation.redo_made_by(worker, int(since.timestamp() * 1000))
    return sum(len(r.task_ids) for r in records)
