"""Plain arq, for comparison: a worker with arq's defaults (poll every 0.5 s, job_timeout 300 s, FIFO) that sends
each job to a WebUI. Two deviations, both neutral for the figures: JSON instead of pickle (Easel never pickles),
and max_jobs=1 (one GPU runs one generation at a time; arq's default of 10 would just queue them in the WebUI).

Run as ``python -m bench.arq_baseline REDIS_URL QUEUE WEBUI_URL NAME``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import httpx
from arq.connections import RedisSettings
from arq.worker import run_worker

from common import serialization

STARTED_PREFIX = "bench:arq-started:"


async def generate(ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    started = int(time.time() * 1000)
    await ctx["redis"].set(STARTED_PREFIX + ctx["job_id"], json.dumps({"ms": started, "worker": ctx["name"]}),
                           ex=3600)
    async with httpx.AsyncClient(timeout=600) as http:
        response = await http.post(f"{ctx['webui']}/sdapi/v1/txt2img", json=payload)
    return {"status": response.status_code, "started_ms": started}


def main() -> None:
    redis_url, queue, webui, name = sys.argv[1:5]
    settings = {
        "functions": [generate],
        "redis_settings": RedisSettings.from_dsn(redis_url),
        "queue_name": queue,
        "max_jobs": 1,
        "job_serializer": serialization.serialize,
        "job_deserializer": serialization.deserialize,
        "ctx": {"webui": webui, "name": name},
    }
    run_worker(settings)


if __name__ == "__main__":
    main()
