"""Checking a prediction's `input` the way Replicate does before it creates one.

Every problem is reported at once, in the shape of Replicate's `invalid_fields`
(the type names and messages follow the JSON-schema validator Replicate uses:
"required", "invalid_type", "enum", "number_gte", "number_lte").
"""

from __future__ import annotations

import json
from typing import Any, Final

from services.replicate.emulator.specs import FieldKind, InvalidField, ModelSpec

_JSON_TYPE_NAMES: Final = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}


def _type_name(value: object) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _has_kind(value: object, kind: FieldKind) -> bool:
    # bool is an int in Python but not in JSON; an integral float is a JSON integer.
    if kind in ("string", "file"):
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    return isinstance(value, int | float) and not isinstance(value, bool)


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def validate_input(spec: ModelSpec, raw: object) -> tuple[dict[str, Any], list[InvalidField]]:
    """Check `raw` against the model's inputs; return it with defaults applied, and the problems.

    Inputs the model does not declare are ignored (Cog drops them), so they are
    neither errors nor passed on.
    """
    if not isinstance(raw, dict):
        return {}, [
            InvalidField(
                "invalid_type", "input", f"Invalid type. Expected: object, given: {_type_name(raw)}"
            )
        ]
    problems: list[InvalidField] = []
    values: dict[str, Any] = {}
    for item in spec.inputs:
        path = f"input.{item.name}"
        if item.name not in raw or raw[item.name] is None:
            if item.required:
                problems.append(InvalidField("required", "input", f"{item.name} is required"))
            elif item.default is not None:
                values[item.name] = item.default
            continue
        value = raw[item.name]
        if not _has_kind(value, item.kind):
            expected = "string" if item.kind == "file" else item.kind
            problems.append(
                InvalidField(
                    "invalid_type",
                    path,
                    f"Invalid type. Expected: {expected}, given: {_type_name(value)}",
                )
            )
            continue
        if item.kind == "integer":
            value = int(value)
        if item.choices and value not in item.choices:
            allowed = ", ".join(json.dumps(choice) for choice in item.choices)
            problems.append(
                InvalidField("enum", path, f"{path} must be one of the following: {allowed}")
            )
            continue
        if item.minimum is not None and value < item.minimum:
            problems.append(
                InvalidField(
                    "number_gte",
                    path,
                    f"Must be greater than or equal to {_format_number(item.minimum)}",
                )
            )
            continue
        if item.maximum is not None and value > item.maximum:
            problems.append(
                InvalidField(
                    "number_lte",
                    path,
                    f"Must be less than or equal to {_format_number(item.maximum)}",
                )
            )
            continue
        if item.kind == "file" and not value.strip():
            problems.append(InvalidField("format", path, "Does not match format 'uri'"))
            continue
        values[item.name] = value
    return values, problems


def problem_detail(problems: list[InvalidField]) -> str:
    """The `detail` text of a 422: one "- field: description" line per problem."""
    return "".join(f"- {problem.field}: {problem.description}\n" for problem in problems)
