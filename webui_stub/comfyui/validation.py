"""``POST /prompt`` validation as ComfyUI 0.3.64 does it (execution.py ``validate_prompt`` / ``validate_inputs``).

Same error types, messages, ``details`` and ``extra_info``; same quirks: inputs with a custom validation
(``LoadImage.image``) skip the range and list checks; v3 ``COMBO`` inputs (``UpscaleModelLoader.model_name``) are not
checked against their options at all (a missing file fails at execution); a list longer than 20 is summarised; the
top-level ``details`` holds only the output nodes' own errors (so "" when the fault is upstream).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

Result = tuple[bool, list[dict[str, Any]], str]
CUSTOM_VALIDATED = {"LoadImage": ("image",)}  # nodes with VALIDATE_INPUTS, and the inputs it takes


def _error(kind: str, message: str, details: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": extra}


def _types_match(received: str, expected: Any) -> bool:
    if not isinstance(expected, str) or received == "*" or expected == "*":
        return True
    return bool(set(received.split(",")) & set(expected.split(",")))


class Validator:
    def __init__(self, prompt: dict[str, Any], info: dict[str, Any], image_exists: Callable[[str], bool]) -> None:
        self.prompt, self.info, self.image_exists = prompt, info, image_exists
        self.validated: dict[str, Result] = {}

    def inputs(self, unique_id: str) -> Result:
        if unique_id in self.validated:
            return self.validated[unique_id]
        node = self.prompt[unique_id]
        inputs, class_type = node["inputs"], node["class_type"]
        spec = self.info[class_type]["input"]
        custom = CUSTOM_VALIDATED.get(class_type, ())
        errors: list[dict[str, Any]] = []
        valid = True
        for category in ("required", "optional"):
            for name, entry in spec.get(category, {}).items():
                ok = self._input(name, entry, category, inputs, custom, errors)
                valid = valid and ok
        for name in custom:
            if name in inputs and not self.image_exists(str(inputs[name])):
                errors.append(_error("custom_validation_failed", "Custom validation failed for node",
                                     f"{name} - Invalid image file: {inputs[name]}", input_name=name))
        result: Result = (not errors and valid, errors, unique_id)
        self.validated[unique_id] = result
        return result

    def _input(self, name: str, entry: list[Any], category: str, inputs: dict[str, Any], custom: tuple[str, ...],
               errors: list[dict[str, Any]]) -> bool:
        """Check one input; False if an upstream node is invalid (its own errors are recorded there)."""
        input_type, extra = entry[0], (entry[1] if len(entry) > 1 else {})
        if name not in inputs:
            if category == "required":
                errors.append(_error("required_input_missing", "Required input is missing", name, input_name=name))
            return True
        value, info = inputs[name], [input_type, extra]
        if isinstance(value, list):
            return self._link(name, value, input_type, info, errors)
        converted = _convert(input_type, value)
        if isinstance(converted, Exception):
            errors.append(_error("invalid_input_type", f"Failed to convert an input value to a {input_type} value",
                                 f"{name}, {value}, {converted}", input_name=name, input_config=info,
                                 received_value=value, exception_message=str(converted)))
            return True
        inputs[name] = value = converted
        if name in custom:
            return True
        if "min" in extra and value < extra["min"]:
            errors.append(_error("value_smaller_than_min", f"Value {value} smaller than min of {extra['min']}", name,
                                 input_name=name, input_config=info, received_value=value))
        elif "max" in extra and value > extra["max"]:
            errors.append(_error("value_bigger_than_max", f"Value {value} bigger than max of {extra['max']}", name,
                                 input_name=name, input_config=info, received_value=value))
        elif isinstance(input_type, list) and value not in input_type:
            listed = f"(list of length {len(input_type)})" if len(input_type) > 20 else str(input_type)
            errors.append(_error("value_not_in_list", "Value not in list", f"{name}: '{value}' not in {listed}",
                                 input_name=name, input_config=None if len(input_type) > 20 else info,
                                 received_value=value))
        return True

    def _link(self, name: str, value: list[Any], input_type: Any, info: list[Any],
              errors: list[dict[str, Any]]) -> bool:
        if len(value) != 2:
            errors.append(_error("bad_linked_input",
                                 "Bad linked input, must be a length-2 list of [node_id, slot_index]", name,
                                 input_name=name, input_config=info, received_value=value))
            return True
        source = value[0]
        received = self.info[self.prompt[source]["class_type"]]["output"][value[1]]
        if not _types_match(received, input_type):
            errors.append(_error("return_type_mismatch", "Return type mismatch between linked nodes",
                                 f"{name}, received_type({received}) mismatch input_type({input_type})",
                                 input_name=name, input_config=info, received_type=received, linked_node=value))
            return True
        try:
            return self.inputs(source)[0]
        except Exception as exc:
            self.validated[source] = (False, [_error(
                "exception_during_inner_validation", "Exception when validating inner node", str(exc),
                input_name=name, input_config=info, exception_message=str(exc),
                exception_type=_type_name(exc), traceback=traceback.format_tb(exc.__traceback__),
                linked_node=value)], source)
            return False


def _convert(input_type: Any, value: Any) -> Any:
    converters: dict[str, Callable[[Any], Any]] = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}
    convert = converters.get(input_type) if isinstance(input_type, str) else None
    if convert is None:
        return value
    try:
        return convert(value)
    except Exception as exc:
        return exc


def _type_name(exc: BaseException) -> str:
    kind = type(exc)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


Verdict = tuple[bool, dict[str, Any] | None, list[str], dict[str, Any]]


def validate_prompt(prompt: dict[str, Any], info: dict[str, Any], image_exists: Callable[[str], bool]) -> Verdict:
    """(valid, top-level error, outputs to run, node_errors), as ComfyUI returns them."""
    outputs = []
    for node_id, node in prompt.items():
        if "class_type" not in node:
            return False, _error("invalid_prompt", "Cannot execute because a node is missing the class_type "
                                 "property.", f"Node ID '#{node_id}'"), [], {}
        if node["class_type"] not in info:
            return False, _error("invalid_prompt", f"Cannot execute because node {node['class_type']} does not "
                                 "exist.", f"Node ID '#{node_id}'"), [], {}
        if info[node["class_type"]].get("output_node"):
            outputs.append(node_id)
    if not outputs:
        return False, _error("prompt_no_outputs", "Prompt has no outputs", ""), [], {}
    validator = Validator(prompt, info, image_exists)
    good: list[str] = []
    failed: list[tuple[str, list[dict[str, Any]]]] = []
    node_errors: dict[str, dict[str, Any]] = {}
    for output in outputs:
        try:
            valid, reasons, _ = validator.inputs(output)
        except Exception as exc:
            valid, reasons = False, [_error("exception_during_validation", "Exception when validating node",
                                            str(exc), exception_type=_type_name(exc),
                                            traceback=traceback.format_tb(exc.__traceback__))]
            validator.validated[output] = (False, reasons, output)
        if valid:
            good.append(output)
            continue
        failed.append((output, reasons))
        for node_id, (ok, node_reasons, _) in validator.validated.items():
            if not ok and node_reasons:
                entry = node_errors.setdefault(node_id, {"errors": node_reasons, "dependent_outputs": [],
                                                         "class_type": prompt[node_id]["class_type"]})
                entry["dependent_outputs"].append(output)
    if not good:
        details = "\n".join(f"{e['message']}: {e['details']}" for _, reasons in failed for e in reasons)
        return False, _error("prompt_outputs_failed_validation", "Prompt outputs failed validation", details), [], \
            node_errors
    return True, None, good, node_errors
