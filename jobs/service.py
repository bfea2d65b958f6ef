"""The job service: one per front end, opened with ``async with JobService.open(settings) as jobs:``.

It holds the store and, when the front end has Redis, the queue client, and hands out the parts that work on them:
``jobs.store`` (read, check owners), ``jobs.recording`` (submit, store results, reconcile), ``jobs.curation`` (keep,
delete, derive, export), ``jobs.retention`` (purge), ``jobs.browse`` (pages of jobs, lineage), ``jobs.thumbnails``
(WebP) and :meth:`JobService.track` (follow a live job).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Self

from common.outage import Outage
from common.queue import EaselClient
from common.settings import Settings
from common.tasks import JobRecord
from jobs.browse import Browse
from jobs.curation import Curation
from jobs.models import JobDetail
from jobs.recording import Recording
from jobs.retention import Retention
from jobs.store.job_store import JobStore
from jobs.thumbnails import Thumbnails
from jobs.tracker import JobTracker


class JobService:
    def __init__(self, store: JobStore, client: EaselClient | None, settings: Settings) -> None:
        self.settings = settings
        self.store = store
        self.recording = Recording(store, client, settings)
        self.curation = Curation(store, self.recording)
        self.retention = Retention(store, settings)
        self.browse = Browse(store)
        self.thumbnails = Thumbnails(store)

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: Settings, client: EaselClient | None = None, *,
                   queue: bool = True) -> AsyncIterator[Self]:
        """The store in ``EASEL_DATA_DIR``, with ``client`` or a client of its own (``queue=False``: none, for
        front ends that only read the store and may run where Redis is not configured)."""
        async with JobStore.open(settings) as store:
            if client is not None or not queue:
                yield cls(store, client, settings)
            else:
                async with EaselClient.connect(settings) as own:
                    yield cls(store, own, settings)

    @property
    def client(self) -> EaselClient:
        """The queue client (raises a clear error when the service was opened without one)."""
        return self.recording.client

    def outage(self, what: str) -> Outage:
        """Waits out Redis outages for one long-running part of this front end (``EASEL_REDIS_OUTAGE_S``)."""
        return Outage(what, limit_s=self.settings.redis_outage_s)

    def track(self, job: JobRecord | JobDetail, *, results: bool = False, outage: Outage | None = None) -> JobTracker:
        """A tracker of the live state of a job, as submitted or as stored (see :mod:`jobs.tracker`)."""
        if isinstance(job, JobDetail):
            job_id, task_ids, labels = job.id, [t.id for t in job.tasks], [t.label for t in job.tasks]
        else:
            job_id, task_ids, labels = job.job_id, job.task_ids, job.labels
        return JobTracker(self.client, job_id, task_ids, labels, results=results,
                          outage=outage or self.outage(f"following job {job_id}"))
