"""Thumbnails of stored images: WebP, made once on first request and cached beside the image store.

An image's PNG never changes once stored (deterministic name, written once), so a thumbnail is keyed by the image
id and size alone, and its ETag can be too: a browser that has it gets a 304 without the file being read.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from dataclasses import dataclass

from PIL import Image

from common.errors import NotFound
from jobs.store.job_store import JobStore
from jobs.store.tables import ImageRow

SIZES = (256, 512)  # longest side, pixels; the web asks for one of these
QUALITY = 80


@dataclass(frozen=True)
class Thumbnail:
    data: bytes
    etag: str


def etag_of(image_id: str, size: int) -> str:
    return '"' + hashlib.sha256(f"{image_id}/{size}/{QUALITY}".encode()).hexdigest()[:20] + '"'


def thumbnail_path(job_id: str, image_id: str, size: int) -> str:
    """Where an image's cached thumbnail lives, relative to the image store."""
    return f"thumbs/{job_id}/{image_id}-{size}.webp"


def make_webp(png: bytes, size: int) -> bytes:
    with Image.open(io.BytesIO(png)) as image:
        image.thumbnail((size, size))
        out = io.BytesIO()
        image.convert("RGB").save(out, format="WEBP", quality=QUALITY, method=4)
    return out.getvalue()


class Thumbnails:
    def __init__(self, store: JobStore) -> None:
        self.store = store

    async def get(self, image: ImageRow, size: int) -> Thumbnail:
        """The thumbnail of a stored image (the caller has checked who may see it)."""
        if size not in SIZES:
            raise NotFound(f"no thumbnail size {size}; sizes: {', '.join(map(str, SIZES))}")
        files = self.store.files
        cached = thumbnail_path(image.job_id, image.id, size)
        if await asyncio.to_thread(files.exists, cached):
            return Thumbnail(await asyncio.to_thread(files.read, cached), etag_of(image.id, size))
        try:
            png = await asyncio.to_thread(files.read, image.path)
        except FileNotFoundError as exc:
            raise NotFound(f"the file of image {image.id} is gone (purged)") from exc
        data = await asyncio.to_thread(make_webp, png, size)
        await asyncio.to_thread(files.write, cached, data)
        return Thumbnail(data, etag_of(image.id, size))
