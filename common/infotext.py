"""Read A1111 infotext (the PNG ``parameters`` text) — the format in ../shared/reference/webui-api.md section 3.

Line 1.. : the prompt (may span lines); ``Negative prompt: ...`` (optional, may span lines); last line:
``Key: value, Key: value`` with values holding ``,`` ``:`` or newlines JSON-quoted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

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
