"""Model affinity over the fair order (pure policy)."""

from __future__ import annotations

from common.scheduling import TaskMeta
from workers.picking import Candidate, choose

A, B, C = "a.safetensors [1]", "b.safetensors [2]", "c.safetensors [3]"
NOW = 1_000_000


def task(i: int, checkpoint: str | None, waited_ms: int = 1000, passed_ms: int | None = None) -> Candidate:
    meta = TaskMeta(task_id=f"t{i}", job_id="j", owner="u", kind="txt2img", checkpoint=checkpoint,
                    enqueue_ms=NOW - waited_ms, work=1)
    return Candidate(meta, NOW - waited_ms, None if passed_ms is None else NOW - passed_ms)


def pick(candidates: list[Candidate], loaded: str | None, holders: dict[str, int] | None = None,
         **kwargs: object) -> list[str]:
    choice = choose(candidates, loaded=loaded, resolve=lambda q: q, holders=holders or {}, now_ms=NOW,
                    max_pass_over_ms=60_000, **kwargs)  # type: ignore[arg-type]
    return choice.order


def test_prefers_the_loaded_checkpoint() -> None:
    assert pick([task(0, B), task(1, A), task(2, A)], loaded=A)[:2] == ["t1", "t2"]


def test_follows_fair_order_without_affinity() -> None:
    assert pick([task(0, B), task(1, A)], loaded=A, affinity=False) == ["t0", "t1"]


def test_tasks_for_any_checkpoint_suit_the_loaded_one() -> None:
    assert pick([task(0, B), task(1, None)], loaded=A)[0] == "t1"


def test_switches_when_other_demand_is_much_higher() -> None:
    candidates = [task(0, B, 9000), task(1, B, 9000), task(2, B, 9000), task(3, A, 1000)]
    assert pick(candidates, loaded=A)[0] == "t0"


def test_does_not_switch_where_other_workers_already_serve() -> None:
    candidates = [task(0, B, 3000), task(1, B, 3000), task(2, A, 2000)]
    assert pick(candidates, loaded=A, holders={B: 3})[0] == "t2"


def test_switches_when_nothing_for_the_loaded_checkpoint_waits() -> None:
    assert pick([task(0, C), task(1, B, 5000)], loaded=A)[0] == "t1"  # the longest waiting group


def test_a_task_passed_over_too_long_goes_first() -> None:
    candidates = [task(0, B, 120_000, passed_ms=61_000), task(1, A), task(2, A)]
    assert pick(candidates, loaded=A)[0] == "t0"


def test_reports_what_it_passes_over() -> None:
    choice = choose([task(0, B), task(1, C), task(2, A)], loaded=A, resolve=lambda q: q, holders={}, now_ms=NOW,
                    max_pass_over_ms=60_000)
    assert choice.order[0] == "t2" and choice.passed_over == ["t0", "t1"]
