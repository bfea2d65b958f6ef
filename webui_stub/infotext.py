"""A1111's infotext layout (processing.py create_infotext), for the stub's images."""

from __future__ import annotations

import json
from typing import Any

# Keys in A1111's order; extra generation params follow, then Version.
_ORDER = (
    "Steps", "Sampler", "Schedule type", "CFG scale", "Image CFG scale", "Seed", "Face restoration", "Size",
    "Model hash", "Model", "VAE hash", "VAE", "Variation seed", "Variation seed strength", "Seed resize from",
    "Denoising strength", "Conditional mask weight", "Clip skip", "ENSD", "Init image hash", "RNG", "Tiling",
)


def quote(value: Any) -> str:
    text = str(value)
    if "," not in text and ":" not in text and "\n" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def format_infotext(
    prompt: str, negative_prompt: str, params: dict[str, Any], extra: dict[str, Any], version: str
) -> str:
    """``prompt\\nNegative prompt: ...\\nKey: value, ...`` with nulls skipped and A1111's key order."""
    pairs = {k: params[k] for k in _ORDER if params.get(k) is not None}
    pairs.update({k: v for k, v in extra.items() if v is not None})
    pairs["Version"] = version
    line = ", ".join(f"{k}: {quote(v)}" for k, v in pairs.items())
    negative = f"\nNegative prompt: {negative_prompt}" if negative_prompt else ""
    return f"{prompt}{negative}\n{line}"
