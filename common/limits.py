"""Deployment bounds on requests.

The request models check these through pydantic's validation context (``context={"limits": limits}``); the
defaults here equal the settings' defaults, so a model validated without a context gets the stock bounds.
Workers validate with ``context={"limits": None}``: the front end already applied the deployment's bounds, and a
worker configured differently must not refuse what was accepted.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo

# Absolute bounds, whatever the settings say (A1111's own UI ranges).
MIN_SIDE = 64
MAX_SIDE = 4096
SIDE_MULTIPLE = 8
HARD_MAX_STEPS = 150
HARD_MAX_BATCH = 16
SEED_MAX = 2**32 - 1


class Limits(BaseModel):
    """Bounds a deployment puts on requests (see :class:`common.settings.Settings` for each)."""

    model_config = ConfigDict(frozen=True)

    max_pixels: int = 1024 * 1024
    max_hires_pixels: int = 2048 * 2048
    max_steps: int = 100
    max_batch: int = 4
    max_prompt_length: int = 1500
    max_sweep_tasks: int = 64
    max_upscale_scale: float = 4.0
    max_upscale_pixels: int = 4096 * 4096
    max_image_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 4096 * 4096


DEFAULT_LIMITS = Limits()


def limits_from(info: ValidationInfo) -> Limits | None:
    """The limits to check against: the context's, the defaults without one, None when the caller opts out."""
    context: Any = info.context
    if isinstance(context, dict) and "limits" in context:
        limits = context["limits"]
        return limits if isinstance(limits, Limits) or limits is None else Limits.model_validate(limits)
    return DEFAULT_LIMITS
