"""``python -m bench [--json]``: the worker pool against its targets, and plain arq measured in the same run.

``python -m bench --scale [--json] [--depths 1000,10000]``: the queue at community scale (see bench/scale.py).

``python -m bench --gateway [--json]``: volunteer nodes through the worker gateway (see bench/gateway.py).
``python -m bench --comfyui [--json]``: the ComfyUI path: Easel's overhead per task (the server done -> the result
stored) and the duty cycle of one worker on the ComfyUI stub.

``python -m bench --web [--json] [--screenshots]``: the web gallery (see bench/web.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import scale, scenarios

TARGETS = {
    "pickup_p50_ms": ("<=", 10),
    "pickup_p99_ms": ("<=", 50),
    "duty_cycle": (">=", 0.98),
    "redelivery_s": ("<=", 10),
}


async def measure() -> dict[str, Any]:
    pickups = await scenarios.pickup()
    duty = await scenarios.duty_cycle()
    redelivery = await scenarios.redelivery()
    affinity = await scenarios.switches(affinity=True)
    fifo = await scenarios.switches(affinity=False)
    light_wait, task_s = await scenarios.fairness()
    eta = await scenarios.eta_error()
    arq_pickups = await scenarios.arq_pickup()
    return {
        "pickup_p50_ms": round(scenarios.percentile(pickups, 50), 2),
        "pickup_p99_ms": round(scenarios.percentile(pickups, 99), 2),
        "duty_cycle": round(duty, 4),
        "redelivery_s": round(redelivery, 2),
        "switches_affinity": affinity,
        "switches_fifo": fifo,
        "light_user_wait_s": round(light_wait, 3),
        "task_s": round(task_s, 3),
        "eta_error": round(eta, 4),
        "baseline": {
            "pickup_p50_ms": round(scenarios.percentile(arq_pickups, 50), 2),
            "pickup_p99_ms": round(scenarios.percentile(arq_pickups, 99), 2),
            "duty_cycle": round(await scenarios.arq_duty_cycle(), 4),
            "redelivery_s": round(await scenarios.arq_redelivery(), 2),
        },
    }


COMFYUI_TARGETS = {"duty_cycle": (">=", 0.98)}


async def measure_comfyui() -> dict[str, Any]:
    overheads, duty = await scenarios.comfyui()
    a1111_duty = await scenarios.duty_cycle()  # the same load on the A1111 stub, in the same run, to compare
    return {
        "overhead_p50_ms": round(scenarios.percentile(overheads, 50), 1),
        "overhead_p99_ms": round(scenarios.percentile(overheads, 99), 1),
        "overhead_max_ms": round(max(overheads), 1),
        "duty_cycle": round(duty, 4),
        "a1111_duty_cycle": round(a1111_duty, 4),
        "tasks": len(overheads),
    }


def show_comfyui(figures: dict[str, Any], seconds: float) -> None:
    table = Table(title=f"Easel on the ComfyUI stub ({seconds:.0f} s; {figures['tasks']} tasks of 25 x 20 ms steps)")
    for column in ("figure", "Easel", "target", ""):
        table.add_column(column)
    for key, value in figures.items():
        op_bound = COMFYUI_TARGETS.get(key)
        target, mark = "", ""
        if op_bound is not None:
            target = f"{op_bound[0]} {op_bound[1]}"
            mark = "[green]ok[/]" if value >= op_bound[1] else "[red]MISSED[/]"
        table.add_row(key, str(value), target, mark)
    Console().print(table)
    Console().print("overhead: ms from ComfyUI's execution_success (its history entry complete) to Easel's finished "
                    "event (the result stored): WebSocket, /view, infotext, Redis. a1111_duty_cycle: the same tasks "
                    "on the A1111 stub in this run, for comparison on this machine's load.")


def checks(figures: dict[str, Any]) -> dict[str, bool]:
    ok = {key: (figures[key] <= bound if op == "<=" else figures[key] >= bound) for key, (op, bound) in TARGETS.items()}
    ok["switches_affinity"] = figures["switches_affinity"] <= figures["switches_fifo"] / 4
    ok["light_user_wait_s"] = figures["light_user_wait_s"] <= 2 * figures["task_s"]
    ok["eta_error"] = figures["eta_error"] <= 0.2
    return ok


def show(figures: dict[str, Any], seconds: float) -> None:
    ok = checks(figures)
    targets = {**{k: f"{op} {bound}" for k, (op, bound) in TARGETS.items()},
               "switches_affinity": f"<= switches_fifo / 4 = {figures['switches_fifo'] / 4:g}",
               "light_user_wait_s": f"<= 2 x task_s = {2 * figures['task_s']:.3f}", "eta_error": "<= 0.2"}
    table = Table(title=f"Easel worker pool benchmark ({seconds:.0f} s)")
    for column in ("figure", "Easel", "target", "", "plain arq"):
        table.add_column(column)
    for key, value in figures.items():
        if key == "baseline":
            continue
        mark = "" if key not in ok else ("[green]ok[/]" if ok[key] else "[red]MISSED[/]")
        table.add_row(key, str(value), targets.get(key, ""), mark, str(figures["baseline"].get(key, "")))
    Console().print(table)
    Console().print("plain arq: its defaults (0.5 s poll, FIFO, job_timeout 300 s) with max_jobs=1 and JSON; "
                    "its redelivery is read off the in-progress key's TTL (waiting it out takes over 5 minutes).")


SCALE_COLUMNS = (
    ("depth", "depth"), ("workers", "workers"), ("pick_calls", "calls/pick"), ("pick_cpu_us", "cpu us/pick"),
    ("pick_p50_ms", "pick p50 ms"), ("pick_p99_ms", "pick p99 ms"), ("submit_calls", "calls/submit"),
    ("submit_cpu_us", "cpu us/submit"), ("submit_p50_ms", "submit p50 ms"), ("load_pick_p50_ms", "loaded pick p50"),
    ("load_pick_p99_ms", "loaded pick p99"), ("cpu_per_task_ms", "cpu ms/task"), ("redis_cpu_pct", "redis cpu %"),
    ("tasks_per_s", "tasks/s"), ("ideal_tasks_per_s", "ideal/s"), ("bytes_per_task", "bytes/task"),
    ("starved", "starved"), ("misreported", "misreported"),
)


def show_scale(figures: dict[str, Any], seconds: float) -> None:
    console = Console()
    for title, rows in (("Easel", figures["easel"]), ("plain arq, same server build", figures["arq"])):
        table = Table(title=f"{title} at scale ({seconds:.0f} s)")
        columns = [(key, name) for key, name in SCALE_COLUMNS if any(key in row for row in rows)]
        for _, name in columns:
            table.add_column(name, justify="right")
        for row in rows:
            table.add_row(*(_cell(row.get(key)) for key, _ in columns))
        console.print(table)
    for check, ok in figures["checks"].items():
        console.print(f"{check}: {'[green]ok[/]' if ok else '[red]MISSED[/]'}")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object with the figures")
    parser.add_argument("--scale", action="store_true", help="the scale run instead of the pool benchmark")
    parser.add_argument("--comfyui", action="store_true", help="the ComfyUI path instead of the pool benchmark")
    parser.add_argument("--web", action="store_true",
                        help="the web gallery: a 1,000-image job page and memory with 50 live pages (bench/web.py)")
    parser.add_argument("--screenshots", action="store_true",
                        help="with --web: also save docs/screenshots/job-grid.png and queue.png")
    parser.add_argument("--depths", default=",".join(str(d) for d in scale.DEPTHS),
                        help="with --scale: queue depths to measure (default 1000,10000,100000)")
    parser.add_argument("--gateway", action="store_true", help="the worker gateway benchmark (bench/gateway.py)")
    args = parser.parse_args()
    started = time.monotonic()
    if args.web:
        from bench import web

        figures = asyncio.run(web.measure(screenshots=args.screenshots))
        print(json.dumps(figures) if args.json else json.dumps(figures, indent=2))
        return 0
    if args.gateway:
        from bench import gateway

        found = asyncio.run(gateway.measure())
        if args.json:
            print(json.dumps(found))
        else:
            gateway.show(found, time.monotonic() - started)
        return 0 if all(gateway.checks(found).values()) else 1
    if args.scale:
        results = asyncio.run(scale.measure(tuple(int(d) for d in args.depths.split(","))))
        if args.json:
            print(json.dumps(results))
        else:
            show_scale(results, time.monotonic() - started)
        return 0 if all(results["checks"].values()) else 1
    if args.comfyui:
        comfy = asyncio.run(measure_comfyui())
        if args.json:
            print(json.dumps(comfy))
        else:
            show_comfyui(comfy, time.monotonic() - started)
        return 0 if comfy["duty_cycle"] >= COMFYUI_TARGETS["duty_cycle"][1] else 1
    figures = asyncio.run(measure())
    if args.json:
        print(json.dumps(figures))
    else:
        show(figures, time.monotonic() - started)
    return 0 if all(checks(figures).values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
