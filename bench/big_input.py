"""``python -m bench.big_input``: a 64-task denoise sweep over one ~15 MB init image, queued by ``easel submit``.

Prints, as JSON: seconds from starting the CLI to "queued", the CLI's peak RSS (VmHWM) at that point, what the job
added to Redis's memory, and the image's size. No worker runs: the tasks stay queued while Redis is measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from PIL import Image

from easel.stack import LocalStack

SIDE = 2240  # random RGB noise compresses badly: ~14.4 MiB as PNG
TASKS = 64


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def used_memory(client: redis.Redis) -> int:
    info: dict[str, int] = client.info("memory")  # type: ignore[assignment]
    return int(info["used_memory"])


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="easel-big-"))
    image = folder / "big.png"
    Image.frombytes("RGB", (SIDE, SIDE), os.urandom(SIDE * SIDE * 3)).save(image)
    with LocalStack(embedded=True, workers=0) as stack:
        client = redis.Redis.from_url(stack.redis_url or "")
        before = used_memory(client)
        denoise = ",".join(f"{0.1 + i * 0.012:.3f}" for i in range(TASKS))
        env = {**os.environ, "REDIS_URL": stack.redis_url or "", "EASEL_REDIS_PREFIX": stack.prefix,
               "EASEL_DATA_DIR": str(folder / "data")}
        began = time.monotonic()
        cli = subprocess.Popen(
            [sys.executable, "-m", "easel", "submit", "watercolor", "--init-image", str(image), "--steps", "2",
             "--sweep", f"denoise={denoise}", "--out", str(folder / "out")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        assert cli.stdout is not None
        for line in cli.stdout:
            if "queued" in line:
                break
        queued_s = time.monotonic() - began
        rss = peak_rss_mb(cli.pid)
        cli.terminate()
        cli.wait()
        added = used_memory(client) - before
        blobs = len(list(client.scan_iter(match=f"{stack.prefix}blob:*")))
        client.close()
    print(json.dumps({"image_mb": round(image.stat().st_size / 2**20, 1), "tasks": TASKS,
                      "queue_s": round(queued_s, 2), "cli_peak_rss_mb": round(rss, 1),
                      "redis_added_mb": round(added / 2**20, 1), "blobs": blobs}))


if __name__ == "__main__":
    main()
