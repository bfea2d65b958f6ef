"""Reading A1111 infotext (the reference's own examples)."""

from common.infotext import parse_infotext

EXAMPLE = (
    "a photo of a cat, <lora:myLora:0.8>\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.0, Seed: 1234567890, Size: 512x512, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.5, Hires upscale: 2.0, "
    'Hires upscaler: R-ESRGAN 4x+, Lora hashes: "myLora: 0123456789ab", Version: v1.10.1'
)


def test_parses_the_reference_example() -> None:
    info = parse_infotext(EXAMPLE)
    assert info.prompt == "a photo of a cat, <lora:myLora:0.8>"
    assert info.negative_prompt == "blurry, lowres"
    assert info.seed == 1234567890 and info.steps == 20 and info.size == (512, 512)
    assert info.params["Lora hashes"] == "myLora: 0123456789ab"
    assert info.params["Version"] == "v1.10.1"


def test_multi_line_prompt_without_negative() -> None:
    text = "line one\nline two\nSteps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7.0, Seed: 42"
    info = parse_infotext(text)
    assert info.prompt == "line one\nline two" and info.negative_prompt == "" and info.seed == 42


def test_text_without_parameters_is_all_prompt() -> None:
    info = parse_infotext("just a prompt, with: a colon")
    assert info.prompt == "just a prompt, with: a colon" and info.params == {}


def test_writes_what_it_reads() -> None:
    from common.infotext import format_infotext

    params = {"Steps": 20, "Sampler": "DPM++ 2M", "Schedule type": "Karras", "CFG scale": 7.0, "Seed": 1234567890,
              "Size": "512x512", "Model hash": "6ce0161689", "Model": "v1-5-pruned-emaonly", "Denoising strength": 0.5,
              "Hires upscale": 2.0, "Hires upscaler": "R-ESRGAN 4x+", "Lora hashes": "myLora: 0123456789ab",
              "Skipped": None, "Version": "v1.10.1"}
    text = format_infotext("a photo of a cat, <lora:myLora:0.8>", "blurry, lowres", params)
    assert text == EXAMPLE
    assert parse_infotext(text).params["Lora hashes"] == "myLora: 0123456789ab"
