"""Request bounds: every refusal names the field and what is allowed."""

from __future__ import annotations

import io
import struct
import unicodedata
import zlib
from collections.abc import Callable

import pytest
from arq.jobs import deserialize_job, serialize_job
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydantic import TypeAdapter, ValidationError

from common import serialization
from common.errors import InvalidRequest
from common.images import read_infotext, with_infotext
from common.infotext import parse_infotext
from common.limits import Limits
from common.models import GenerationRequest, Img2ImgRequest, Txt2ImgRequest, UpscaleRequest
from common.queue.keys import TASK_FUNCTION
from common.tasks import TaskSpec
from tests.conftest import png_bytes
from webui_stub.infotext import format_infotext

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


# --- text hygiene: control characters and lone surrogates are refused, all other text round-trips ---------------

# Any character (surrogates included), with the troublesome ones often enough to matter.
_chars = st.one_of(st.characters(), st.characters(categories=["Cs"]), st.characters(categories=["Cc"]),
                   st.sampled_from(["\t", "\n", "\r", " ", "\x00", "\x7f", "\x85", "\udcff"]))
_text = st.text(_chars, max_size=40)


def first_forbidden(text: str) -> int | None:
    """Index of the first character the models must refuse (an independent statement of the rule)."""
    for index, char in enumerate(text):
        category = unicodedata.category(char)
        if category == "Cs" or (category == "Cc" and char not in "\t\n\r"):
            return index
    return None


# field -> how to put text into a request; "x" keeps fields that must not be empty non-empty
_FIELDS: dict[str, Callable[[str], dict]] = {
    "prompt": lambda t: {"kind": "txt2img", "prompt": "x" + t},
    "negative_prompt": lambda t: {"kind": "txt2img", "prompt": "x", "negative_prompt": t},
    "checkpoint": lambda t: {"kind": "txt2img", "prompt": "x", "checkpoint": t},
    "sampler": lambda t: {"kind": "txt2img", "prompt": "x", "sampler": "x" + t},
    "scheduler": lambda t: {"kind": "txt2img", "prompt": "x", "scheduler": t},
    "hires.upscaler": lambda t: {"kind": "txt2img", "prompt": "x", "hires": {"upscaler": t}},
    "upscaler": lambda t: {"kind": "upscale", "image": png_bytes(), "upscaler": "x" + t},
}


@pytest.mark.parametrize("field", list(_FIELDS))
@settings(max_examples=150, deadline=None)
@given(text=_text)
def test_free_text_is_accepted_iff_it_has_no_control_character_or_lone_surrogate(field: str, text: str) -> None:
    data = _FIELDS[field](text)
    offset = 1 if field in ("prompt", "sampler", "upscaler") else 0  # the "x" in front
    bad = first_forbidden(text)
    try:
        TypeAdapter(GenerationRequest).validate_python(data, context={"limits": None})
    except ValidationError as exc:
        assert bad is not None, f"clean text refused: {exc}"
        [problem] = InvalidRequest.from_validation(exc).problems
        where = f"U+{ord(text[bad]):04X} at position {bad + offset + 1}"
        assert problem.startswith(f"{field}: contains a ") and where in problem, problem
    else:
        assert bad is None, f"{text!r} was accepted"


_clean_text = _text.map(lambda text: "".join(c for c in text if first_forbidden(c) is None))


@settings(max_examples=200, deadline=None)
@given(prompt=_clean_text, negative=_clean_text, label=_clean_text)
def test_accepted_text_round_trips_through_json_the_arq_payload_and_infotext(prompt: str, negative: str,
                                                                             label: str) -> None:
    request = Txt2ImgRequest(prompt="x " + prompt, negative_prompt=negative)
    spec = TaskSpec(task_id="j.0", job_id="j", index=0, owner="cli:ann", label=label, request=request)
    assert Txt2ImgRequest.model_validate_json(request.model_dump_json()) == request
    payload = serialize_job(TASK_FUNCTION, (spec.model_dump(mode="json"),), {}, None, 0,
                            serializer=serialization.serialize)
    assert TaskSpec.model_validate(deserialize_job(payload, deserializer=serialization.deserialize).args[0]) == spec
    # A1111's infotext cannot tell a prompt line starting "Negative prompt:" from the real one; nor can A1111.
    assume(not any(line.startswith("Negative prompt:") for line in request.prompt.split("\n")))
    infotext = format_infotext(request.prompt, request.negative_prompt, {"Steps": 20, "Seed": 1, "Size": "64x64"},
                               {}, "v1.10.1")
    parsed = parse_infotext(read_infotext(with_infotext(png_bytes(8, 8), infotext)) or "")
    assert (parsed.prompt, parsed.negative_prompt) == (request.prompt, request.negative_prompt)


def test_the_message_names_field_code_point_and_position() -> None:
    assert problems({"kind": "txt2img", "prompt": "a fox in th\x00e snow"}) == [
        "prompt: contains a control character U+0000 at position 12; remove it"
    ]
    assert problems({"kind": "txt2img", "prompt": "x", "negative_prompt": "a\udcff b"}) == [
        "negative_prompt: contains a lone surrogate U+DCFF at position 2 (invalid UTF-8, e.g. from a command line); "
        "remove it or fix the text's encoding"
    ]
