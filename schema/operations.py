"""Which operation of a document runs, and whether it may run without signing in.

Both are decided before execution starts, on every transport (HTTP GET and POST,
server-sent events, both WebSocket subprotocols):

- The choice. A document runs the operation named by `operationName`; a document
  with one operation may leave the name out; anything else (several operations
  and no name, a name the document does not hold) is refused with BAD_REQUEST and
  nothing runs. This is graphql-core's rule (`get_operation_ast`, GraphQL spec
  §6.1 "GetOperation"); Strawberry alone would run the first operation.
- Signing in. Only the root fields marked public (`PUBLIC` in the field's
  metadata: signUp and logIn) and introspection (`__typename`, `__schema`,
  `__type`) answer without a signed-in user, whatever token was sent. Any other
  operation without one is refused with UNAUTHENTICATED (no token) or
  TOKEN_INVALID (a token that signs no one in) before its variables are coerced
  or its input validated, so an anonymous client costs only the parse of its
  document (capped by the token limit) and of its JSON body.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_operation_ast,
)
from strawberry.extensions import SchemaExtension
from strawberry.schema.exceptions import CannotGetOperationTypeError
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.execution import ExecutionContext
from strawberry.types.graphql import OperationType

from schema.context import Context, NotAuthenticated
from services.validation import shown

PUBLIC: Mapping[str, Any] = {"public": True}
"""Field metadata of a root field that answers without signing in."""

_INTROSPECTION = frozenset({"__typename", "__schema", "__type"})


class BadRequest(GraphQLError):
    """A top-level error: the request itself is malformed (code BAD_REQUEST)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": "BAD_REQUEST"})


class OperationNotChosen(RuntimeError):
    """The document does not say which of its operations to run (see the module)."""

    def __init__(self, operation_name: str | None, *, operations: int = 2) -> None:
        if operation_name is None and operations == 0:
            # Fragments alone, say: naming an operation cannot help.
            message = (
                "This document holds no operation: send a query, mutation or "
                "subscription (`query { ... }`), not only fragments."
            )
        elif operation_name is None:
            message = (
                "This document holds several operations: name the one to run in `operationName`."
            )
        else:
            message = f"This document holds no operation named {shown(operation_name)}."
        super().__init__(message)
        self.message = message


def choose_operation(document: DocumentNode, operation_name: str | None) -> OperationDefinitionNode:
    """The operation to run; raises OperationNotChosen when the document does not say."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        operations = sum(
            isinstance(definition, OperationDefinitionNode) for definition in document.definitions
        )
        raise OperationNotChosen(operation_name, operations=operations)
    return operation


def as_client_error(error: GraphQLError) -> GraphQLError:
    """A refusal to choose an operation as the BAD_REQUEST it is; other errors unchanged.

    Strawberry reports it as `CannotGetOperationTypeError` with a vague message;
    the transports pass every pre-execution error through here.
    """
    original = error.original_error
    if isinstance(original, CannotGetOperationTypeError):
        cause = original.__cause__
        if isinstance(cause, OperationNotChosen):
            return BadRequest(cause.message)
        return BadRequest(original.as_http_error_reason())
    return error


class StudioExecutionContext(ExecutionContext):
    """Strawberry's execution context, choosing the operation as graphql-core does."""

    @property
    def operation_name(self) -> str | None:
        # Only what the client sent: graphql-core then refuses ambiguous documents
        # itself instead of being handed the first operation's name.
        name: str | None = self._provided_operation_name
        return name

    @property
    def operation_type(self) -> OperationType:
        if self.graphql_document is None:
            raise RuntimeError("No GraphQL document available")
        # A RuntimeError is what Strawberry turns into CannotGetOperationTypeError.
        operation = choose_operation(self.graphql_document, self.operation_name)
        return OperationType(operation.operation.value)


@cache
def _public_fields(schema: GraphQLSchema) -> dict[str, frozenset[str]]:
    """Per operation type ("query", "mutation", "subscription"): its public root fields."""
    roots: dict[str, GraphQLObjectType | None] = {
        "query": schema.query_type,
        "mutation": schema.mutation_type,
        "subscription": schema.subscription_type,
    }
    public: dict[str, frozenset[str]] = {}
    for kind, root in roots.items():
        names = set(_INTROSPECTION)
        for name, field in (root.fields if root is not None else {}).items():
            definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if definition is not None and definition.metadata.get("public"):
                names.add(name)
        public[kind] = frozenset(names)
    return public


def _root_fields(
    selection_set: SelectionSetNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    seen: set[str],
) -> Iterator[str]:
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            yield selection.name.value
        elif isinstance(selection, InlineFragmentNode):
            yield from _root_fields(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in seen:
                seen.add(name)
                yield from _root_fields(fragment.selection_set, fragments, seen)


def needs_sign_in(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None
) -> bool:
    """Whether the chosen operation selects any root field that is not public."""
    operation = choose_operation(document, operation_name)
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    public = _public_fields(schema)[operation.operation.value]
    return any(
        name not in public for name in _root_fields(operation.selection_set, fragments, set())
    )


class SignInFirst(SchemaExtension):
    """Refuses an operation that needs a signed-in user without one, before execution.

    Runs when execution is about to start: after parsing and validation (both
    cached per document text, and independent of who asks) and before
    graphql-core coerces the variables.
    """

    def on_execute(self) -> Iterator[None]:
        execution = self.execution_context
        context = execution.context
        document = execution.graphql_document
        assert document is not None, "execution starts after parsing"
        if (
            isinstance(context, Context)
            and context.actor is None
            and needs_sign_in(execution.schema._schema, document, execution.operation_name)
        ):
            raise NotAuthenticated(token_refused=context.token_refused)
        if introspections(document, execution.operation_name) > MAX_INTROSPECTIONS:
            raise GraphQLError(
                f"Ask for the schema at most {MAX_INTROSPECTIONS} times in one operation "
                "(`__schema`, `__type`); it is the same every time.",
                extensions={"code": "TOO_COMPLEX"},
            )
        yield


# One `__schema` answer is about 1 MB of work for graphql-core (60 ms here); aliased
# copies of it passed every other limit and cost 0.9 s of CPU, without a token.
MAX_INTROSPECTIONS = 2


def introspections(document: DocumentNode, operation_name: str | None) -> int:
    """How many root `__schema` and `__type` fields the chosen operation selects."""
    operation = choose_operation(document, operation_name)
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    return sum(
        name in ("__schema", "__type")
        for name in _root_fields(operation.selection_set, fragments, set())
    )
