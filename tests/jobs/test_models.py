"""A job's status follows from its tasks' statuses."""

from __future__ import annotations

import pytest

from jobs.models import JobStatus, TaskStatus

Q, R, D, F, C = (TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.CANCELLED)


@pytest.mark.parametrize(("tasks", "job"), [
    ([Q, Q], JobStatus.QUEUED),
    ([Q, R], JobStatus.RUNNING),
    ([D, Q], JobStatus.RUNNING),  # under way: one is done
    ([F, Q], JobStatus.QUEUED),
    ([D, D], JobStatus.DONE),
    ([C, C], JobStatus.CANCELLED),
    ([D, F], JobStatus.PARTIAL),
    ([D, C], JobStatus.PARTIAL),
    ([F, C], JobStatus.FAILED),
])
def test_job_status_of_its_tasks(tasks: list[TaskStatus], job: JobStatus) -> None:
    assert JobStatus.of(tasks) is job
    assert job.pending == any(t.pending for t in tasks)
