"""Request bounds: every refusal names the field and what is allowed."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from pydantic import TypeAdapter, ValidationError

from common.errors import InvalidRequest
from common.limits import Limits
from common.models import GenerationRequest, Img2ImgRequest, Txt2ImgRequest, UpscaleRequest
from tests.conftest import png_bytes

LIMITS = Limits(max_pixels=1024 * 1024, max_steps=60, max_batch=4, max_prompt_length=200)


def problems(data: dict, limits: Limits | None = LIMITS) -> list[str]:
    with pytest.raises(ValidationError) as info:
        TypeAdapter(GenerationRequest).validate_python(data, context={"limits": limits})
    return InvalidRequest.from_validation(info.value).problems


def test_defaults_are_a_valid_txt2img() -> None:
    request = Txt2ImgRequest(prompt="a cat")
    assert (request.width, request.height, request.steps, request.seed, request.batch_size) == (512, 512, 20, -1, 1)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("width", 513, "width: must be a multiple of 8, got 513 (try 512 or 520)"),
        ("height", 32, "height: must be between 64 and 4096, got 32"),
        ("steps", 0, "steps: must be between 1 and 60, got 0"),
        ("steps", 61, "steps: must be between 1 and 60, got 61"),
        ("batch_size", 5, "batch_size: must be between 1 and 4, got 5"),
        ("cfg_scale", 31, "cfg_scale: must be between 1.0 and 30.0, got 31.0"),
        ("seed", -2, "seed: must be between -1 and 4294967295, got -2"),
    ],
)
def test_out_of_range_values_name_field_and_range(field: str, value: int, expected: str) -> None:
    assert problems({"kind": "txt2img", "prompt": "x", field: value}) == [expected]


def test_pixel_cap_names_size_and_limit() -> None:
    [message] = problems({"kind": "txt2img", "prompt": "x", "width": 2048, "height": 1024})
    assert "2048x1024" in message and "1048576" in message


def test_hires_final_size_is_capped() -> None:
    limits = Limits(max_hires_pixels=1024 * 1024)
    [message] = problems({"kind": "txt2img", "prompt": "x", "hires": {"scale": 2.5}}, limits)
    assert message.startswith("hires.scale:")


@pytest.mark.parametrize("prompt", ["", "   "])
def test_empty_prompt_is_refused(prompt: str) -> None:
    assert problems({"kind": "txt2img", "prompt": prompt}) == [
        "prompt: must not be empty: describe the image you want"
    ]


def test_over_long_prompt_is_refused_with_length_and_limit() -> None:
    assert problems({"kind": "txt2img", "prompt": "x" * 201}) == [
        "prompt: is 201 characters long; the limit is 200: shorten it"
    ]


def test_several_problems_are_all_reported() -> None:
    found = problems({"kind": "txt2img", "prompt": "", "steps": 500, "width": 100})
    assert {p.split(":")[0] for p in found} == {"prompt", "steps", "width"}


def test_unknown_fields_and_kinds_are_named() -> None:
    assert problems({"kind": "txt2img", "prompt": "x", "stepz": 3}) == ["stepz: is not a known option"]
    assert "kind" in problems({"kind": "paint", "prompt": "x"})[0]


def test_workers_skip_deployment_limits_but_keep_absolute_bounds() -> None:
    data = {"kind": "txt2img", "prompt": "x", "steps": 120, "width": 2048, "height": 2048}
    assert TypeAdapter(GenerationRequest).validate_python(data, context={"limits": None}).steps == 120
    assert problems({**data, "steps": 151}, limits=None) == ["steps: must be between 1 and 150, got 151"]


def test_lora_tags_are_parsed_from_prompt() -> None:
    request = Txt2ImgRequest(prompt="fox <lora:add_detail:0.6>, <lora:film_grain>")
    assert [(lora.name, lora.weight) for lora in request.loras] == [("add_detail", 0.6), ("film_grain", 1.0)]


# --- images -----------------------------------------------------------------------------------------------


def test_img2img_takes_its_size_from_the_init_image_fitted_to_the_cap() -> None:
    request = Img2ImgRequest(prompt="x", init_image=png_bytes(1200, 2000))
    assert request.width % 8 == 0 and request.height % 8 == 0
    assert request.width * request.height <= 1024 * 1024
    assert abs(request.width / request.height - 0.6) < 0.02


def test_init_image_that_is_not_an_image() -> None:
    found = problems({"kind": "img2img", "prompt": "x", "init_image": b"hello, not a png", "width": 64, "height": 64})
    assert found == ["init_image: the file is not an image Easel can read; send a PNG, JPEG or WebP"]


def test_truncated_init_image() -> None:
    data = png_bytes(256, 256, (10, 200, 30))
    noisy = Image.effect_noise((256, 256), 80).convert("RGB")
    out = io.BytesIO()
    noisy.save(out, format="PNG")
    data = out.getvalue()
    [message] = problems({"kind": "img2img", "prompt": "x", "init_image": data[: len(data) // 2]})
    assert message.startswith("init_image: the image is damaged or truncated")


def _bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG header declaring a huge canvas (a decompression bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_before_decoding() -> None:
    [message] = problems({"kind": "upscale", "image": _bomb_png(12000, 12000)})
    assert message == "image: the image is 12000x12000 (144,000,000 pixels); the limit is 16,777,216"
    [message] = problems({"kind": "upscale", "image": _bomb_png(60000, 60000)})
    assert message == "image: the image declares a size too large to open safely; the limit is 16,777,216 pixels"


def test_images_travel_as_base64_in_json() -> None:
    request = UpscaleRequest(image=png_bytes())
    payload = request.model_dump(mode="json")
    assert isinstance(payload["image"], str)
    assert UpscaleRequest.model_validate(payload).image == request.image


def test_upscale_output_size_is_capped() -> None:
    [message] = problems({"kind": "upscale", "image": png_bytes(2048, 2048), "scale": 4}, Limits())
    assert message.startswith("scale: 2048x2048 at x4.0 makes 8192x8192")


# --- fuzzing: whatever comes in, the answer is a valid request or a ValidationError ----------------------

_values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=30))


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["prompt", "steps", "width", "height", "seed", "cfg_scale", "batch_size", "sampler",
                         "hires", "kind", "checkpoint"]),
        _values,
    )
)
def test_arbitrary_input_never_crashes_validation(data: dict) -> None:
    data.setdefault("kind", "txt2img")
    try:
        TypeAdapter(GenerationRequest).validate_python(data, context={"limits": LIMITS})
    except ValidationError as exc:
        assert InvalidRequest.from_validation(exc).problems
