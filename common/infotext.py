"""Read and write A1111 infotext (the PNG ``parameters`` text) — the format in ../shared/reference/webui-api.md §3.

Line 1.. : the prompt (may span lines); ``Negative prompt: ...`` (optional, may span lines); last line:
``Key: value, Key: value`` with values holding ``,`` ``:`` or newlines JSON-quoted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Same pattern A1111 uses (modules/infotext_utils.py re_param_code).
_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_SIZE = re.compile(r"^(\d+)x(\d+)$")


@dataclass
class Infotext:
    prompt: str = ""
    negative_prompt: str = ""
    params: dict[str, str] = field(default_factory=dict)

    def _int(self, key: str) -> int | None:
        value = self.params.get(key)
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    @property
    def seed(self) -> int | None:
        return self._int("Seed")

    @property
    def steps(self) -> int | None:
        return self._int("Steps")

    @property
    def size(self) -> tuple[int, int] | None:
        match = _SIZE.match(self.params.get("Size", ""))
        return (int(match.group(1)), int(match.group(2))) if match else None


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        try:
            decoded = json.loads(value)
            return decoded if isinstance(decoded, str) else value
        except ValueError:
            return value
    return value


def parse_infotext(text: str) -> Infotext:
    """Split infotext into prompt, negative prompt and the key/value parameters."""
    *lines, last = text.strip().split("\n")
    matches = _PARAM.findall(last)
    if len(matches) < 3:  # A1111's rule: a last line with fewer than 3 pairs is still prompt text
        lines.append(last)
        matches = []
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    target = prompt_lines
    for line in lines:
        if line.startswith("Negative prompt:"):
            target = negative_lines
            line = line[len("Negative prompt:"):].strip()
        target.append(line)
    params = {key.strip(): _unquote(value) for key, value in matches}
    return Infotext("\n".join(prompt_lines).strip(), "\n".join(negative_lines).strip(), params)


def _quote(value: Any) -> str:
    text = str(value)
    if "," not in text and ":" not in text and "\n" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def format_infotext(prompt: str, negative_prompt: str, params: Mapping[str, Any]) -> str:
    """``prompt\nNegative prompt: ...\nKey: value, ...`` as A1111 writes it: None values skipped, values holding
    ``,`` ``:`` or newlines JSON-quoted, numbers as ``str()`` gives them; ``params`` in the order to write."""
    line = ", ".join(f"{key}: {_quote(value)}" for key, value in params.items() if value is not None)
    negative = f"\nNegative prompt: {negative_prompt}" if negative_prompt else ""
    return f"{prompt}{negative}\n{line}"
