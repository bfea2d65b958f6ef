"""Sweeps: a list of prompts x lists of parameter values, expanded to the cartesian product of tasks.

One text syntax, shared by the CLI and the bot::

    a red fox | a snow leopard <lora:detail:1> :: cfg=5,7 steps=20,30 sampler="Euler a","DPM++ 2M"

Prompt alternatives are separated by ``|`` (not inside brackets, where A1111 uses it for alternation), then ``::``
and whitespace-separated ``name=v1,v2,...`` axes, values quoted when they hold spaces. Either part may be alone.
Every combination is validated like a single request; errors say which task and which field, or where the text
stops making sense and what was expected there.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from common.errors import InvalidRequest
from common.limits import Limits
from common.models import LORA_TAG, GenerationRequest, text_problem

_REQUEST = TypeAdapter(GenerationRequest)

# axis name -> path of the request field it sets
AXES: dict[str, tuple[str, ...]] = {
    "cfg": ("cfg_scale",),
    "cfg_scale": ("cfg_scale",),
    "steps": ("steps",),
    "seed": ("seed",),
    "sampler": ("sampler",),
    "scheduler": ("scheduler",),
    "checkpoint": ("checkpoint",),
    "model": ("checkpoint",),
    "width": ("width",),
    "height": ("height",),
    "batch": ("batch_size",),
    "denoise": ("denoising_strength",),
    "denoising_strength": ("denoising_strength",),
    "strength": ("denoising_strength",),
    "hires_scale": ("hires", "scale"),
    "hires_denoise": ("hires", "denoising_strength"),
    "scale": ("scale",),
    "upscaler": ("upscaler",),
}
SPECIAL_AXES = ("size", "lora:<name>")

_ITEM = re.compile(r'\s*([A-Za-z_][\w.-]*(?::[\w.-]+)?)=((?:"[^"]*"|[^\s",]+)(?:,(?:"[^"]*"|[^\s",]+))*)')
_VALUE = re.compile(r'"([^"]*)"|([^\s",]+)')
_SIZE = re.compile(r"^(\d+)x(\d+)$")


class SweepSyntaxError(InvalidRequest):
    """The axis text could not be parsed; the message gives the column and what was expected."""

    def __init__(self, text: str, column: int, expected: str) -> None:
        pointer = f"{text}\n{' ' * column}^"
        super().__init__([f"sweep: at column {column + 1}: {expected}\n{pointer}"])
        self.column, self.expected = column, expected


@dataclass(frozen=True)
class Axis:
    """One swept parameter and its values (as typed; the request model converts and checks them)."""

    name: str
    values: tuple[str, ...]

    def apply(self, data: dict[str, Any], value: str) -> None:
        if self.name == "size":
            match = _SIZE.match(value)
            if not match:
                raise InvalidRequest([f"sweep: size '{value}' should look like 512x768"])
            data["width"], data["height"] = int(match.group(1)), int(match.group(2))
        elif self.name.startswith("lora:"):
            data["prompt"] = set_lora_weight(str(data.get("prompt", "")), self.name[5:], value)
        else:
            *parents, leaf = AXES[self.name]
            target = data
            for part in parents:  # e.g. hires_scale turns hires fix on with its defaults
                child = target.get(part)
                if child is None:
                    child = target[part] = {}
                if not isinstance(child, dict):
                    raise InvalidRequest([f"sweep: {self.name} cannot be set on {part}"])
                target = child
            target[leaf] = value

    @property
    def fields(self) -> tuple[tuple[str, ...], ...]:
        """The request fields this axis sets (two axes that share one would silently override each other)."""
        if self.name == "size":
            return ("width",), ("height",)
        if self.name.startswith("lora:"):
            return (("prompt", "lora", self.name[5:]),)
        return (AXES[self.name],)


def set_lora_weight(prompt: str, name: str, weight: str) -> str:
    """Set (or add) ``<lora:name:weight>`` in a prompt."""
    tag = f"<lora:{name}:{weight}>"
    for match in LORA_TAG.finditer(prompt):
        if match.group(1) == name:
            return prompt[: match.start()] + tag + prompt[match.end():]
    return f"{prompt}, {tag}" if prompt else tag


def _refuse_overlap(text: str, column: int, axis: Axis, earlier: Sequence[Axis]) -> None:
    for other in earlier:
        if other.name == axis.name:
            raise SweepSyntaxError(text, column, f"'{axis.name}' is given twice; list all its values once")
        shared = [".".join(path) for path in axis.fields if path in other.fields]
        if shared:
            raise SweepSyntaxError(
                text, column, f"'{axis.name}' and '{other.name}' both set {' and '.join(shared)}; keep one of them"
            )


def _check_text(text: str) -> None:
    problem = text_problem(text)
    if problem is not None:
        raise InvalidRequest([f"sweep: {problem}"])


def parse_axes(text: str) -> list[Axis]:
    """Parse ``name=v1,v2 ...``; raise :class:`SweepSyntaxError` pointing at the first problem."""
    _check_text(text)
    axes: list[Axis] = []
    pos = 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        match = _ITEM.match(text, pos)
        if not match:
            column = len(text) - len(text[pos:].lstrip())
            raise SweepSyntaxError(text, column, "expected name=value[,value...], e.g. cfg=5,7")
        name = match.group(1).lower()
        if name not in AXES and name != "size" and not name.startswith("lora:"):
            known = ", ".join([*AXES, *SPECIAL_AXES])
            raise SweepSyntaxError(text, match.start(1), f"unknown parameter '{name}'; known: {known}")
        values = tuple(m.group(1) if m.group(1) is not None else m.group(2) for m in _VALUE.finditer(match.group(2)))
        axis = Axis(name, values)
        _refuse_overlap(text, match.start(1), axis, axes)
        axes.append(axis)
        pos = match.end()
        if pos < len(text) and not text[pos].isspace():
            raise SweepSyntaxError(text, pos, "expected a space before the next name=value")
    return axes


AXES_MARK = "::"


def parse_spec(text: str) -> tuple[list[str], list[Axis]]:
    """``prompt | prompt :: axes`` -> (prompts, axes); raises :class:`SweepSyntaxError` with the column."""
    _check_text(text)
    cut = text.find(AXES_MARK)
    prompt_part, axes_part = (text, "") if cut < 0 else (text[:cut], text[cut + len(AXES_MARK):])
    prompts = _split_prompts(prompt_part, text)
    try:
        axes = parse_axes(axes_part)
    except SweepSyntaxError as exc:
        raise SweepSyntaxError(text, exc.column + cut + len(AXES_MARK), exc.expected) from None
    return prompts, axes


_OPEN, _CLOSE = "([{<", ")]}>"


def _split_prompts(part: str, text: str) -> list[str]:
    prompts, depth, start = [], 0, 0
    for i, char in enumerate(part):
        if char in _OPEN:
            depth += 1
        elif char in _CLOSE:
            depth -= 1
            if depth < 0:
                raise SweepSyntaxError(text, i, f"'{char}' closes nothing")
        elif char == "|" and depth == 0:
            prompts.append((part[start:i], start))
            start = i + 1
    if depth > 0:
        raise SweepSyntaxError(text, len(part.rstrip()), "a closing bracket")
    prompts.append((part[start:], start))
    if len(prompts) == 1 and not prompts[0][0].strip():
        return []
    for prompt, at in prompts:
        if not prompt.strip():
            raise SweepSyntaxError(text, at, "a prompt between the '|' separators")
    return [prompt.strip() for prompt, _ in prompts]


def count_tasks(prompts: Sequence[str], axes: Sequence[Axis]) -> int:
    return max(1, len(prompts)) * math.prod(len(axis.values) for axis in axes)


def expand(
    base: dict[str, Any], prompts: Sequence[str], axes: Sequence[Axis], *, limits: Limits
) -> list[tuple[str, GenerationRequest]]:
    """Every combination of ``prompts`` x axis values applied to ``base``, validated; (label, request) pairs.

    ``prompts`` may be empty, in which case ``base`` keeps its own prompt. Raises :class:`InvalidRequest` when the
    count is over ``limits.max_sweep_tasks`` or when a combination is invalid.
    """
    total = count_tasks(prompts, axes)
    if total > limits.max_sweep_tasks:
        raise InvalidRequest(
            [f"sweep: makes {total} tasks; the limit is {limits.max_sweep_tasks}: use fewer prompts or values"]
        )
    prompt_choices: list[str | None] = list(prompts) or [None]
    results: list[tuple[str, GenerationRequest]] = []
    problems: list[str] = []
    combos = itertools.product(range(len(prompt_choices)), itertools.product(*(axis.values for axis in axes)))
    for index, (prompt_index, values) in enumerate(combos):
        data = copy.deepcopy(base)
        if prompt_choices[prompt_index] is not None:
            data["prompt"] = prompt_choices[prompt_index]
        parts = [f"prompt {prompt_index + 1}"] if len(prompt_choices) > 1 else []
        for axis, value in zip(axes, values, strict=True):
            axis.apply(data, value)
            parts.append(f"{axis.name}={value}")
        label = " ".join(parts)
        try:
            results.append((label, _REQUEST.validate_python(data, context={"limits": limits})))
        except ValidationError as exc:
            where = f"task {index + 1} ({label}): " if label else ""
            problems.extend(p for p in InvalidRequest.from_validation(exc, where).problems if p not in problems)
    if problems:
        raise InvalidRequest(problems[:10])
    return results
