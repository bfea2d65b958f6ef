"""Sampler and scheduler names: A1111's (what Easel users write) and ComfyUI's, mapped both ways in one table.

A1111's ``DPM++ 2M`` + ``Karras`` is ComfyUI's ``dpmpp_2m`` + ``karras``. ComfyUI samplers and schedulers without an
A1111 twin keep their own names (a user may ask for ``ipndm`` directly), so every ComfyUI name round-trips. A1111's
"Automatic" schedule is the sampler's own default there (Karras for DPM++ 2M, exponential for the SDE ones, else
the model's plain schedule, ComfyUI's ``normal``).
"""

from __future__ import annotations

# A1111 sampler name -> ComfyUI sampler_name (sd_samplers_kdiffusion.py / compvis samplers <-> comfy/samplers.py)
SAMPLERS: dict[str, str] = {
    "Euler": "euler",
    "Euler a": "euler_ancestral",
    "Heun": "heun",
    "DPM2": "dpm_2",
    "DPM2 a": "dpm_2_ancestral",
    "LMS": "lms",
    "DPM fast": "dpm_fast",
    "DPM adaptive": "dpm_adaptive",
    "DPM++ 2S a": "dpmpp_2s_ancestral",
    "DPM++ SDE": "dpmpp_sde",
    "DPM++ 2M": "dpmpp_2m",
    "DPM++ 2M SDE": "dpmpp_2m_sde",
    "DPM++ 2M SDE Heun": "dpmpp_2m_sde_heun",
    "DPM++ 3M SDE": "dpmpp_3m_sde",
    "DDPM": "ddpm",
    "LCM": "lcm",
    "DDIM": "ddim",
    "UniPC": "uni_pc",
}

# A1111 aliases (k_* names) accepted on the way in
SAMPLER_ALIASES: dict[str, str] = {
    "k_euler": "Euler", "k_euler_a": "Euler a", "k_euler_ancestral": "Euler a", "k_heun": "Heun", "k_dpm_2": "DPM2",
    "k_dpm_2_a": "DPM2 a", "k_lms": "LMS", "k_dpm_fast": "DPM fast", "k_dpm_ad": "DPM adaptive",
    "k_dpmpp_2s_a": "DPM++ 2S a", "k_dpmpp_sde": "DPM++ SDE", "k_dpmpp_2m": "DPM++ 2M",
    "k_dpmpp_2m_sde": "DPM++ 2M SDE", "k_dpmpp_2m_sde_heun": "DPM++ 2M SDE Heun", "k_dpmpp_3m_sde": "DPM++ 3M SDE",
}

# A1111 schedule type label -> ComfyUI scheduler
SCHEDULERS: dict[str, str] = {
    "Karras": "karras",
    "Exponential": "exponential",
    "SGM Uniform": "sgm_uniform",
    "KL Optimal": "kl_optimal",
    "Simple": "simple",
    "Normal": "normal",
    "DDIM": "ddim_uniform",
    "Beta": "beta",
}
AUTOMATIC = "Automatic"

# What "Automatic" means for a sampler in A1111 (the sampler's `scheduler` option); the rest use the model's own.
_DEFAULT_SCHEDULE: dict[str, str] = {
    "DPM++ 2M": "karras", "DPM++ SDE": "karras", "DPM++ 2S a": "karras", "DPM2": "karras", "DPM2 a": "karras",
    "DPM++ 2M SDE": "exponential", "DPM++ 2M SDE Heun": "exponential", "DPM++ 3M SDE": "exponential",
}
_PLAIN_SCHEDULE = "normal"

_TO_A1111_SAMPLER = {comfy: a1111 for a1111, comfy in SAMPLERS.items()}
_TO_A1111_SCHEDULER = {comfy: label for label, comfy in SCHEDULERS.items()}


def _a1111_sampler(name: str) -> str | None:
    lowered = name.strip().lower()
    for a1111 in SAMPLERS:
        if a1111.lower() == lowered:
            return a1111
    return SAMPLER_ALIASES.get(lowered)


def to_comfy_sampler(name: str, available: list[str] | None = None) -> str | None:
    """ComfyUI's sampler_name for an A1111 name or alias (any case), or a ComfyUI name as it is.

    With ``available`` (the server's list), None when that server does not have it.
    """
    a1111 = _a1111_sampler(name)
    return _offered(SAMPLERS[a1111] if a1111 else name.strip(), available)


def to_a1111_sampler(comfy: str) -> str:
    """The A1111 name of a ComfyUI sampler, or the ComfyUI name itself when A1111 has no twin."""
    return _TO_A1111_SAMPLER.get(comfy, comfy)


def to_comfy_scheduler(label: str | None, sampler: str, available: list[str] | None = None) -> str | None:
    """ComfyUI's scheduler for an A1111 schedule type (None or "Automatic": the sampler's default) or a ComfyUI name.

    With ``available`` (the server's list), None when that server does not have it.
    """
    if _is_automatic(label):
        comfy = _DEFAULT_SCHEDULE.get(_a1111_sampler(sampler) or to_a1111_sampler(sampler), _PLAIN_SCHEDULE)
    else:
        assert label is not None
        lowered = label.strip().lower()
        comfy = next((c for lbl, c in SCHEDULERS.items() if lbl.lower() == lowered), label.strip())
    return _offered(comfy, available)


def _offered(comfy: str, available: list[str] | None) -> str | None:
    """``comfy`` as the server spells it (any case), None if it does not have it; as is without a list."""
    if available is None:
        return comfy
    return next((name for name in available if name.lower() == comfy.lower()), None)


def _is_automatic(label: str | None) -> bool:
    return label is None or label.strip().lower() in ("", AUTOMATIC.lower())


def to_a1111_scheduler(comfy: str) -> str:
    """The A1111 label of a ComfyUI scheduler, or the ComfyUI name itself."""
    return _TO_A1111_SCHEDULER.get(comfy, comfy)


def schedule_label(label: str | None, sampler: str) -> str:
    """The "Schedule type" A1111 would write in infotext for this request."""
    if _is_automatic(label):
        default = _DEFAULT_SCHEDULE.get(_a1111_sampler(sampler) or to_a1111_sampler(sampler))
        return to_a1111_scheduler(default) if default else AUTOMATIC
    comfy = to_comfy_scheduler(label, sampler)
    return to_a1111_scheduler(comfy) if comfy else str(label)


def advertised_samplers(comfy_names: list[str]) -> list[str]:
    """What a ComfyUI server's samplers are called in Easel: A1111 names where they exist, its own names too."""
    names = {to_a1111_sampler(c) for c in comfy_names} | set(comfy_names)
    return sorted(names)


def advertised_schedulers(comfy_names: list[str]) -> list[str]:
    """A ComfyUI server's schedulers as A1111 labels (plus "Automatic") and its own names."""
    names = {to_a1111_scheduler(c) for c in comfy_names} | set(comfy_names) | {AUTOMATIC}
    return sorted(names)
