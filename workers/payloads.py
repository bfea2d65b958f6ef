"""Moved to :mod:`workers.backends.a1111.payloads`; these names stay until the runner is wired to the backends."""

from workers.backends.a1111.payloads import (
    extras_payload,
    generated_images,
    img2img_payload,
    txt2img_payload,
    upscaled_image,
)

__all__ = ["extras_payload", "generated_images", "img2img_payload", "txt2img_payload", "upscaled_image"]
