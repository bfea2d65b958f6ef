"""Sweep syntax and expansion."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import InvalidRequest
from common.limits import Limits
from common.models import Img2ImgRequest, Txt2ImgRequest
from common.sweep import Axis, SweepSyntaxError, count_tasks, expand, parse_axes, parse_spec
from tests.conftest import png_bytes

BASE = {"kind": "txt2img", "prompt": "a cat", "steps": 10}


def test_parse_axes_with_aliases_and_quotes() -> None:
    axes = parse_axes('cfg=5,7  denoise=0.3,0.5 sampler="Euler a","DPM++ 2M" lora:add_detail=0.4,0.8')
    assert axes == [
        Axis("cfg", ("5", "7")),
        Axis("denoise", ("0.3", "0.5")),
        Axis("sampler", ("Euler a", "DPM++ 2M")),
        Axis("lora:add_detail", ("0.4", "0.8")),
    ]


def test_empty_spec_is_no_axes() -> None:
    assert parse_axes("   ") == []


@pytest.mark.parametrize(
    ("spec", "column", "expected"),
    [
        ("cfg=5,7 steps", 9, "expected name=value"),
        ("cfg=5,,7", 6, "expected a space"),
        ("cfg=5 colour=red", 7, "unknown parameter 'colour'"),
        ("cfg=5 cfg=7", 7, "'cfg' is given twice"),
    ],
)
def test_syntax_errors_point_at_the_column(spec: str, column: int, expected: str) -> None:
    with pytest.raises(SweepSyntaxError) as info:
        parse_axes(spec)
    assert info.value.column + 1 == column
    assert f"at column {column}: {expected}" in str(info.value)


def test_expands_prompts_times_values_in_order() -> None:
    tasks = expand(BASE, ["a cat", "a dog", "a fox"], parse_axes("cfg=5,7"), limits=Limits())
    assert len(tasks) == 6 == count_tasks(["a cat", "a dog", "a fox"], parse_axes("cfg=5,7"))
    labels = [label for label, _ in tasks]
    assert labels[:2] == ["prompt 1 cfg=5", "prompt 1 cfg=7"]
    requests = [r for _, r in tasks]
    assert all(isinstance(r, Txt2ImgRequest) for r in requests)
    assert [(r.prompt, r.cfg_scale) for r in requests][-1] == ("a fox", 7.0)  # type: ignore[union-attr]


def test_img2img_denoise_and_size_axes() -> None:
    base = {"kind": "img2img", "prompt": "x", "init_image": png_bytes()}
    tasks = expand(base, [], parse_axes("denoise=0.3,0.5,0.7 size=512x768,768x512"), limits=Limits())
    assert len(tasks) == 6
    first = tasks[0][1]
    assert isinstance(first, Img2ImgRequest)
    assert (first.denoising_strength, first.width, first.height) == (0.3, 512, 768)


def test_lora_weight_axis_sets_or_adds_the_tag() -> None:
    tasks = expand({**BASE, "prompt": "cat <lora:add_detail:1>"}, [], parse_axes("lora:add_detail=0.2"),
                   limits=Limits())
    assert tasks[0][1].prompt == "cat <lora:add_detail:0.2>"  # type: ignore[union-attr]
    tasks = expand(BASE, [], parse_axes("lora:film_grain=0.5"), limits=Limits())
    assert tasks[0][1].prompt == "a cat, <lora:film_grain:0.5>"  # type: ignore[union-attr]


def test_hires_axis_turns_hires_on() -> None:
    tasks = expand(BASE, [], parse_axes("hires_scale=1.5,2"), limits=Limits())
    assert [r.hires.scale for _, r in tasks] == [1.5, 2.0]  # type: ignore[union-attr]


def test_cap_on_task_count() -> None:
    with pytest.raises(InvalidRequest) as info:
        expand(BASE, ["a", "b", "c"], parse_axes("cfg=1,2,3 steps=10,20,30"), limits=Limits(max_sweep_tasks=20))
    assert info.value.problems == ["sweep: makes 27 tasks; the limit is 20: use fewer prompts or values"]


def test_invalid_values_name_the_task_and_field() -> None:
    with pytest.raises(InvalidRequest) as info:
        expand(BASE, [], parse_axes("cfg=5,40 steps=10,abc"), limits=Limits())
    assert "task 2 (cfg=5 steps=abc): steps: Input should be a valid integer" in info.value.problems[0]
    assert any(p.startswith("task 3 (cfg=40 steps=10): cfg_scale: must be between 1.0 and 30.0") for p in
               info.value.problems)


def test_axis_that_does_not_apply_to_the_kind() -> None:
    with pytest.raises(InvalidRequest) as info:
        expand(BASE, [], parse_axes("denoise=0.5"), limits=Limits())
    assert info.value.problems == ["task 1 (denoise=0.5): denoising_strength: is not a known option"]


def test_full_spec_with_prompts_and_axes() -> None:
    prompts, axes = parse_spec('a red fox | a [cat|dog] <lora:add_detail:1> :: cfg=5,7 sampler="Euler a"')
    assert prompts == ["a red fox", "a [cat|dog] <lora:add_detail:1>"]  # "|" inside brackets is A1111's own
    assert axes == [Axis("cfg", ("5", "7")), Axis("sampler", ("Euler a",))]


@pytest.mark.parametrize(
    ("spec", "column", "expected"),
    [("a | | b", 4, "a prompt between the '|' separators"), ("a (b", 5, "a closing bracket"),
     ("a) b", 2, "')' closes nothing"), ("fox :: cfg=5 x", 14, "expected name=value")],
)
def test_spec_errors_point_at_the_column(spec: str, column: int, expected: str) -> None:
    with pytest.raises(SweepSyntaxError) as info:
        parse_spec(spec)
    assert f"at column {column}: {expected}" in str(info.value)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab =,:|()[]<>\"'x1.5 ")), max_size=40))
def test_any_text_parses_or_says_where_it_went_wrong(text: str) -> None:
    try:
        prompts, axes = parse_spec(text)
    except SweepSyntaxError as exc:
        assert 0 <= exc.column <= len(text)
    else:
        assert all(p.strip() for p in prompts) and all(axis.values for axis in axes)


@pytest.mark.parametrize(
    ("spec", "column", "expected"),
    [
        ("size=512x512,768x768 width=512", 22, "'width' and 'size' both set width; keep one of them"),
        ("height=512 size=512x768", 12, "'size' and 'height' both set height; keep one of them"),
        ("model=a checkpoint=b", 9, "'checkpoint' and 'model' both set checkpoint; keep one of them"),
        ("denoise=0.3 strength=0.5", 13, "'strength' and 'denoise' both set denoising_strength; keep one of them"),
        ("cfg=5 cfg_scale=7", 7, "'cfg_scale' and 'cfg' both set cfg_scale; keep one of them"),
        ("lora:grain=0.2 steps=3 lora:grain=0.4", 24, "'lora:grain' is given twice; list all its values once"),
    ],
)
def test_two_axes_that_set_one_field_are_refused(spec: str, column: int, expected: str) -> None:
    with pytest.raises(SweepSyntaxError) as info:
        parse_axes(spec)
    assert f"at column {column}: {expected}" in str(info.value)


def test_axes_that_set_different_fields_go_together() -> None:
    axes = parse_axes("size=512x768 scale=2 hires_scale=1.5 lora:a=1 lora:b=2 denoise=0.5")
    assert [axis.name for axis in axes] == ["size", "scale", "hires_scale", "lora:a", "lora:b", "denoise"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("a fox :: cfg=5\x1csteps=3", "sweep: contains a control character U+001C at position 15; remove it"),
        ("a fox\x00 | a wolf", "sweep: contains a control character U+0000 at position 6; remove it"),
        ("a fox :: sampler=\"Euler\udcff\"", "sweep: contains a lone surrogate U+DCFF at position 24"),
    ],
)
def test_control_characters_and_lone_surrogates_in_a_spec_are_refused(spec: str, expected: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_spec(spec)
    assert info.value.problems[0].startswith(expected)
