"""What a job's Discord message says at each stage: queued (place and ETA), running (progress), done, failed.

Pure functions of the job's state, so unchanged state renders the same text and no edit is sent for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jobs.models import JobDetail

BAR = 12


@dataclass
class LiveState:
    """What the event stream told us about a job's tasks since its last render."""

    steps: dict[str, tuple[int, int]] = field(default_factory=dict)  # task id -> (step, steps)
    positions: dict[str, int | None] = field(default_factory=dict)
    eta_ms: int | None = None
    running: set[str] = field(default_factory=set)
    preview: bytes | None = None  # the newest progress preview (small JPEG)
    preview_sent: bytes | None = None  # the one the message shows


def bar(fraction: float) -> str:
    filled = max(0, min(BAR, round(fraction * BAR)))
    return "█" * filled + "░" * (BAR - filled)


def headline(detail: JobDetail) -> str:
    first = detail.tasks[0] if detail.tasks else None
    what = detail.spec or (first.label if first else "")
    parent = f" (from job `{detail.parent_job_id}`)" if detail.parent_job_id else ""
    return f"**{detail.action}** `{detail.id}`{parent}\n> {what[:300]}"


def status_line(detail: JobDetail, live: LiveState) -> str:
    total = len(detail.tasks)
    done = sum(1 for t in detail.tasks if t.status == "done")
    failed = [t for t in detail.tasks if t.status in ("failed", "cancelled")]
    if detail.status == "done":
        return f"✅ done: {sum(len(t.images) for t in detail.tasks)} image(s)"
    if detail.status in ("failed", "cancelled", "partial"):
        reasons = sorted({t.error or t.status for t in failed})
        head = {"failed": "❌ failed", "cancelled": "🚫 cancelled", "partial": f"⚠️ {done}/{total} done"}[detail.status]
        return f"{head}: " + "; ".join(reasons)[:500]
    if live.steps:
        step, steps = max(live.steps.values(), key=lambda s: s[0] / max(1, s[1]))
        fraction = (done + step / max(1, steps)) / total
        tasks = f" · task {done + 1}/{total}" if total > 1 else ""
        return f"🎨 rendering {bar(fraction)} step {step}/{steps}{tasks}"
    if live.running:
        return "🎨 starting" + (f" · {done}/{total} done" if total > 1 else "")
    waiting = [p for p in live.positions.values() if p]
    place = f"#{min(waiting)} in line" if waiting else "queued"
    eta = f", starts <t:{live.eta_ms // 1000}:R>" if live.eta_ms else ""
    return f"⏳ {place}{eta}" + (f" · {done}/{total} done" if done else "")


def content(detail: JobDetail, live: LiveState) -> str:
    return f"{headline(detail)}\n{status_line(detail, live)}"[:2000]
