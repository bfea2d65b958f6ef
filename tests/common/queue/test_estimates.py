"""Wait-time estimates (a bounded simulation, then extrapolation from the place) and task work units."""

from __future__ import annotations

from common.models import Img2ImgRequest, Txt2ImgRequest, UpscaleRequest
from common.queue.estimates import estimate
from common.queue.fairness import SpeedTable, work_of
from common.queue.models import QueuedTask, TaskMeta
from common.registry import CheckpointInfo, WorkerInfo, WorkerState
from tests.conftest import png_bytes

NOW = 10_000_000
V15 = CheckpointInfo(title="v15 [1]", model_name="v15")
XL = CheckpointInfo(title="xl [2]", model_name="xl")


def queued(i: int, work: float = 10, checkpoint: str | None = None, running: bool = False) -> QueuedTask:
    meta = TaskMeta(task_id=f"t{i}", job_id="j", owner="u", kind="txt2img", checkpoint=checkpoint,
                    enqueue_ms=NOW, work=work)
    return QueuedTask(meta=meta, running=running, place=0 if running else i)


def worker(name: str, current: str | None = None, started: int | None = None, loaded: str = "v15 [1]",
           checkpoints: tuple[CheckpointInfo, ...] = (V15,)) -> WorkerInfo:
    return WorkerInfo(name=name, node="n", webui_url="u", state=WorkerState.BUSY if current else WorkerState.IDLE,
                      current_task=current, task_started_ms=started, loaded_checkpoint=loaded,
                      checkpoints=list(checkpoints))


def test_one_worker_takes_tasks_in_fair_order_at_measured_speed() -> None:
    speeds = SpeedTable({"txt2img": 0.1})  # 0.1 s per unit of work: 1 s per task below
    tasks = [queued(1), queued(2), queued(3)]
    result = estimate([queued(0, running=True)], tasks, [worker("w", current="t0", started=NOW - 400)], speeds,
                      now_ms=NOW)
    assert result["t0"].position == 0
    assert [result[f"t{i}"].position for i in (1, 2, 3)] == [1, 2, 3]
    assert [result[f"t{i}"].start_ms for i in (1, 2, 3)] == [NOW + 600, NOW + 1600, NOW + 2600]


def test_per_worker_speed_wins_over_the_average() -> None:
    speeds = SpeedTable({"txt2img": 0.1, "txt2img:w:fast": 0.01})
    result = estimate([], [queued(1), queued(2)], [worker("fast")], speeds, now_ms=NOW)
    assert result["t2"].start_ms == NOW + 100


def test_two_workers_share_the_queue_and_loads_cost_time() -> None:
    speeds = SpeedTable({"txt2img": 0.1, "load": 3.0})
    tasks = [queued(1), queued(2, checkpoint="xl"), queued(3)]
    workers = [worker("a", checkpoints=(V15, XL)), worker("b", checkpoints=(V15, XL))]
    result = estimate([], tasks, workers, speeds, now_ms=NOW)
    assert result["t1"].start_ms == NOW and result["t2"].start_ms == NOW
    assert result["t3"].start_ms == NOW + 1000  # a is free after t1; b is loading xl for t2


def test_tasks_no_worker_can_run_say_why() -> None:
    result = estimate([], [queued(1, checkpoint="xl")], [worker("a")], SpeedTable({}), now_ms=NOW)
    assert result["t1"].start_ms is None and result["t1"].reason == "no worker has model xl"
    assert estimate([], [queued(1)], [], SpeedTable({}), now_ms=NOW)["t1"].reason == "no worker is online"


def test_unhealthy_and_draining_workers_are_not_counted() -> None:
    sick = worker("a")
    sick.state = WorkerState.UNHEALTHY
    assert estimate([], [queued(1)], [sick], SpeedTable({}), now_ms=NOW)["t1"].start_ms is None


def test_tasks_beyond_the_window_are_placed_from_their_rank() -> None:
    speeds = SpeedTable({"txt2img": 0.1})  # 1 s per task
    window = [queued(i) for i in range(1, 5)]
    far = queued(1000)
    workers = [worker("a"), worker("b")]
    result = estimate([], window, workers, speeds, beyond={"t1000": (1000, far.meta)}, now_ms=NOW)
    assert result["t1000"].position == 1000
    # after the window (two workers free at NOW + 2 s), 995 tasks ahead at 1 s each, shared by two workers
    assert result["t1000"].start_ms == NOW + 2000 + 995 * 1000 // 2
    nobody = estimate([], window, [], speeds, beyond={"t1000": (1000, far.meta)}, now_ms=NOW)
    assert nobody["t1000"].start_ms is None and nobody["t1000"].reason == "no worker is online"


def test_work_scales_with_steps_size_and_images() -> None:
    base = work_of(Txt2ImgRequest(prompt="x", steps=20, width=512, height=512))
    assert work_of(Txt2ImgRequest(prompt="x", steps=40, width=512, height=512)) == 2 * base
    assert work_of(Txt2ImgRequest(prompt="x", steps=20, width=1024, height=512, batch_size=2)) == 4 * base
    img2img = Img2ImgRequest(prompt="x", steps=20, width=512, height=512, init_image=png_bytes(),
                             denoising_strength=0.5)
    assert work_of(img2img) == base / 2
    assert work_of(UpscaleRequest(image=png_bytes(), scale=2)) > 0
