"""The image store: PNG files under one folder, written atomically, and content-addressed input images."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path


class ImageFiles:
    """``root/images/<job id>/<task>-<n>-<seed>.png``, ``root/inputs/<sha256>`` and cached thumbnails under
    ``root/thumbs/<job id>/``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def image_path(self, task_id: str, n: int, seed: int) -> str:
        job_id, _, index = task_id.rpartition(".")
        return f"images/{job_id}/{index}-{n}-{seed}.png"

    def write(self, relative: str, data: bytes) -> None:
        """Write via a temporary file and a rename, so a reader (or a crash) never sees half a file."""
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def read(self, relative: str) -> bytes:
        return (self.root / relative).read_bytes()

    def exists(self, relative: str) -> bool:
        return (self.root / relative).is_file()

    def size(self, relatives: list[str]) -> int:
        """Bytes taken by those of the files that exist."""
        return sum((self.root / r).stat().st_size for r in relatives if self.exists(r))

    def remove(self, relative: str) -> None:
        (self.root / relative).unlink(missing_ok=True)

    def remove_job(self, job_id: str) -> None:
        shutil.rmtree(self.root / "images" / job_id, ignore_errors=True)
        shutil.rmtree(self.root / "thumbs" / job_id, ignore_errors=True)

    def remove_thumbnails(self, job_id: str, image_id: str) -> None:
        """The cached thumbnails of one image (``thumbs/<job id>/<image id>-<size>.webp``), when it is purged."""
        for thumb in (self.root / "thumbs" / job_id).glob(f"{image_id}-*.webp"):
            thumb.unlink(missing_ok=True)

    def put_input(self, data: bytes) -> str:
        """Store an input image once, however many tasks use it; returns its ``sha256:<hex>`` reference."""
        digest = hashlib.sha256(data).hexdigest()
        relative = f"inputs/{digest}"
        if not self.exists(relative):
            self.write(relative, data)
        return f"sha256:{digest}"

    def get_input(self, ref: str) -> bytes:
        return self.read(f"inputs/{ref.removeprefix('sha256:')}")
