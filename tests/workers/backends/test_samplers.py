"""A1111 <-> ComfyUI sampler and scheduler names: one table, both ways."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from workers.backends import samplers

# ComfyUI 0.3.64's KSampler lists (/object_info on the rig)
COMFY_SAMPLERS = [
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "dpm_2", "dpm_2_ancestral",
    "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp", "dpmpp_sde", "dpmpp_sde_gpu",
    "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu",
    "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm", "ipndm_v", "deis", "res_multistep",
    "res_multistep_cfg_pp", "res_multistep_ancestral", "res_multistep_ancestral_cfg_pp", "gradient_estimation",
    "gradient_estimation_cfg_pp", "er_sde", "seeds_2", "seeds_3", "sa_solver", "sa_solver_pece", "ddim", "uni_pc",
    "uni_pc_bh2",
]
COMFY_SCHEDULERS = ["simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal",
                    "linear_quadratic", "kl_optimal"]


@given(st.sampled_from(list(samplers.SAMPLERS)), st.sampled_from([str.lower, str.upper, lambda s: s]))
def test_a1111_sampler_names_round_trip(name: str, case: object) -> None:
    comfy = samplers.to_comfy_sampler(case(name), COMFY_SAMPLERS)  # type: ignore[operator]
    assert comfy in COMFY_SAMPLERS and samplers.to_a1111_sampler(comfy) == name


@given(st.sampled_from(COMFY_SAMPLERS))
def test_comfyui_sampler_names_round_trip(comfy: str) -> None:
    assert samplers.to_comfy_sampler(samplers.to_a1111_sampler(comfy), COMFY_SAMPLERS) == comfy
    assert samplers.to_comfy_sampler(comfy, COMFY_SAMPLERS) == comfy  # ComfyUI's own names are accepted too


@given(st.sampled_from(COMFY_SCHEDULERS), st.sampled_from(list(samplers.SAMPLERS)))
def test_schedulers_round_trip(comfy: str, sampler: str) -> None:
    label = samplers.to_a1111_scheduler(comfy)
    assert samplers.to_comfy_scheduler(label, sampler, COMFY_SCHEDULERS) == comfy
    assert samplers.to_comfy_scheduler(label.upper(), sampler, COMFY_SCHEDULERS) == comfy


def test_the_familiar_pairs() -> None:
    assert samplers.to_comfy_sampler("DPM++ 2M") == "dpmpp_2m"
    assert samplers.to_comfy_sampler("k_euler_a") == "euler_ancestral"
    assert samplers.to_comfy_scheduler("Karras", "DPM++ 2M") == "karras"
    assert samplers.to_a1111_sampler("dpmpp_2m") == "DPM++ 2M" and samplers.to_a1111_scheduler("karras") == "Karras"


def test_automatic_is_the_samplers_own_default_as_in_a1111() -> None:
    assert samplers.to_comfy_scheduler(None, "DPM++ 2M") == "karras"
    assert samplers.to_comfy_scheduler("Automatic", "DPM++ 3M SDE") == "exponential"
    assert samplers.to_comfy_scheduler(None, "Euler a") == "normal"
    assert samplers.schedule_label(None, "DPM++ 2M") == "Karras"
    assert samplers.schedule_label(None, "Euler a") == "Automatic"


def test_names_a_server_lacks_are_none() -> None:
    assert samplers.to_comfy_sampler("Restart", COMFY_SAMPLERS) is None
    assert samplers.to_comfy_scheduler("Uniform", "Euler", COMFY_SCHEDULERS) is None
    assert samplers.to_comfy_scheduler("Align Your Steps", "Euler", COMFY_SCHEDULERS) is None
