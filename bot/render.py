"""What a job's Discord message says at each stage: queued (place and ETA), running (progress), done, failed.

Pure functions of the job's state, so unchanged state renders the same text and no edit is sent for it.
"""

from __future__ import annotations

from bot.keys import IMAGE_BUTTONS
from jobs.models import ImageDetail, JobDetail, JobStatus, LiveJob, TaskStatus

BAR = 12


def bar(fraction: float) -> str:
    filled = max(0, min(BAR, round(fraction * BAR)))
    return "█" * filled + "░" * (BAR - filled)


def headline(detail: JobDetail) -> str:
    first = detail.tasks[0] if detail.tasks else None
    what = detail.spec or (first.label if first else "")
    parent = f" (from job `{detail.parent_job_id}`)" if detail.parent_job_id else ""
    return f"**{detail.action}** `{detail.id}`{parent}\n> {what[:300]}"


def status_line(detail: JobDetail, live: LiveJob | None) -> str:
    total = len(detail.tasks)
    done = sum(1 for t in detail.tasks if t.status == TaskStatus.DONE)
    failed = [t for t in detail.tasks if t.status in (TaskStatus.FAILED, TaskStatus.CANCELLED)]
    if detail.status == JobStatus.DONE:
        return f"✅ done: {sum(len(t.images) for t in detail.tasks)} image(s)"
    if not detail.status.pending:
        reasons = sorted({t.error or t.status.value for t in failed})
        head = {JobStatus.FAILED: "❌ failed", JobStatus.CANCELLED: "🚫 cancelled",
                JobStatus.PARTIAL: f"⚠️ {done}/{total} done"}[detail.status]
        return f"{head}: " + "; ".join(reasons)[:500]
    tasks = list(live.tasks.values()) if live else []
    rendering = [t for t in tasks if t.status == TaskStatus.RUNNING and t.steps]
    if rendering:
        task = max(rendering, key=lambda t: t.step / max(1, t.steps))
        fraction = (done + task.step / max(1, task.steps)) / total
        of = f" · task {done + 1}/{total}" if total > 1 else ""
        return f"🎨 rendering {bar(fraction)} step {task.step}/{task.steps}{of}"
    if any(t.status == TaskStatus.RUNNING for t in tasks):
        return "🎨 starting" + (f" · {done}/{total} done" if total > 1 else "")
    waiting = [t.position for t in tasks if t.status == TaskStatus.QUEUED and t.position]
    place = f"#{min(waiting)} in line" if waiting else "queued"
    eta = f", starts <t:{live.eta_ms // 1000}:R>" if live and live.eta_ms else ""
    return f"⏳ {place}{eta}" + (f" · {done}/{total} done" if done else "")


def content(detail: JobDetail, live: LiveJob | None = None, page: int | None = None) -> str:
    """The message of a job: as stored, with the live view of its tasks while it runs (and, for a finished job of
    more than four images, which page of them it shows)."""
    text = f"{headline(detail)}\n{status_line(detail, live)}"
    if page is not None and is_paged(detail) and not detail.status.pending:
        text += "\n" + page_line(detail, page)
    return text[:2000]


# --- paging: a job of more than four images shows them four at a time --------------------------------------------

def is_paged(detail: JobDetail) -> bool:
    return len(detail.images) > IMAGE_BUTTONS


def page_count(detail: JobDetail) -> int:
    return max(1, -(-len(detail.images) // IMAGE_BUTTONS))


def clamp_page(detail: JobDetail, page: int) -> int:
    """A page that exists (images may have been purged since a button was made)."""
    return min(max(1, page), page_count(detail))


def on_page(detail: JobDetail, page: int) -> list[tuple[int, ImageDetail]]:
    """The images of ``page`` (1-based), each with its number in the job (1-based; deleted ones keep theirs)."""
    first = (clamp_page(detail, page) - 1) * IMAGE_BUTTONS
    return list(enumerate(detail.images[first:first + IMAGE_BUTTONS], start=first + 1))

def page_line(detail: JobDetail, page: int) -> str:
    """``page k of n``, the numbers shown, and which of them are kept or deleted."""
    page = clamp_page(detail, page)
    shown = on_page(detail, page)
    marks = [f"#{n} {'deleted' if i.deleted else 'kept'}" for n, i in shown if i.deleted or i.kept]
    kept = sum(1 for i in detail.images if i.kept and not i.deleted)
    line = (f"📄 page {page} of {page_count(detail)} · images {shown[0][0]}–{shown[-1][0]} of {len(detail.images)}"
            f" · {kept} kept in all")
    return line + (" · " + ", ".join(marks) if marks else "")
