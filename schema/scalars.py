"""Our `JSON` scalar: Strawberry's, with JSON's own limits enforced.

Strawberry's `JSON` takes any value a variable decodes to, and any literal:
`NaN`/`Infinity` (which Python's JSON parser accepts, and a literal `1e999`
becomes) would be stored and then sent back as bare `NaN`, which no browser
parses; and a value nested thousands deep makes every recursive walk over it
(validation, storage, serialization) a RecursionError. This one refuses both
on the way in, with a BAD_USER_INPUT error naming the problem, and on the way
out renders any non-finite number already stored as null and anything nested
deeper than that as a marker string (`stored_json` for a whole stored value).

It replaces the built-in one through `scalar_overrides` (see `schema.app`), so
fields keep their `strawberry.scalars.JSON` annotation.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError, ListValueNode, ObjectValueNode, ValueNode, value_from_ast_untyped
from strawberry.scalars import JSON
from strawberry.types.scalar import ScalarDefinition, scalar

from services.decoding import MAX_JSON_DEPTH, MalformedJson, check_json, finite_json

DESCRIPTION = (
    "Any JSON value (RFC 8259): finite numbers only (no NaN or Infinity), "
    f"arrays and objects nested at most {MAX_JSON_DEPTH} deep."
)


def _invalid(error: MalformedJson) -> GraphQLError:
    return GraphQLError(str(error), extensions={"code": "BAD_USER_INPUT"})


def parse_value(value: Any) -> Any:
    """A variable's value (already decoded from JSON), checked; GraphQLError if refused."""
    try:
        check_json(value)
    except MalformedJson as error:
        raise _invalid(error) from None
    return value


def _literal_depth_ok(node: ValueNode) -> bool:
    pending: list[tuple[ValueNode, int]] = [(node, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, ListValueNode | ObjectValueNode):
            if depth >= MAX_JSON_DEPTH:
                return False
            children = (
                item.values if isinstance(item, ListValueNode) else [f.value for f in item.fields]
            )
            pending.extend((child, depth + 1) for child in children)
    return True


def parse_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> Any:
    """A literal in the operation text, checked like a variable (`1e999` is Infinity)."""
    if not _literal_depth_ok(node):
        raise GraphQLError(
            f"The JSON nests deeper than {MAX_JSON_DEPTH} levels.",
            extensions={"code": "BAD_USER_INPUT"},
        )
    return parse_value(value_from_ast_untyped(node, variables))


def stored_json(value: Any) -> Any:
    """A stored JSON value ready for a nullable `JSON` field: see `finite_json`.

    Fields showing stored JSON resolve through this, so a stored top-level NaN is
    the field's null: graphql-core takes a serializer's None for a failure, so
    `serialize` alone cannot make it null.
    """
    return finite_json(value)


def serialize(value: Any) -> Any:
    """For a response: non-finite numbers inside become null, arrays and objects nested
    too deep become a marker string (see `finite_json`); never a RecursionError.

    A top-level non-finite number has no JSON form at all: GraphQLError (fields of
    stored values resolve through `stored_json` first, so this is not reached).
    """
    result = finite_json(value)
    if result is None and value is not None:
        raise GraphQLError(
            "A stored value is NaN or Infinity, which JSON cannot hold.",
            extensions={"code": "INVALID_STORED_VALUE"},
        )
    return result


JSON_SCALAR: ScalarDefinition = scalar(
    name="JSON",
    description=DESCRIPTION,
    specified_by_url="https://www.rfc-editor.org/rfc/rfc8259",
    serialize=serialize,
    parse_value=parse_value,
    parse_literal=parse_literal,
)
"""Pass as `scalar_overrides={JSON: JSON_SCALAR}` to `strawberry.Schema`."""

OVERRIDES: dict[object, Any] = {JSON: JSON_SCALAR}
