"""A code for every top-level error graphql-core itself reports.

Our own errors carry `extensions.code` (BAD_USER_INPUT, RATE_LIMITED, ...), but
graphql-core's (a document that does not parse, does not validate, or whose
variables cannot be coerced to their types) carry none, so a client cannot tell
them apart from one another without reading messages. They get the codes
Apollo Server made common:

- GRAPHQL_PARSE_FAILED: the document is not GraphQL (`Syntax Error: ...`);
- GRAPHQL_VALIDATION_FAILED: it breaks a validation rule (an unknown field, a
  wrong argument, an unused variable, a guard rail such as depth or aliases);
- BAD_USER_INPUT: a variable's value does not fit its type (`Variable '$x' has
  invalid value ...`, a missing or null required variable).

An error that already has a code, one raised while resolving a field (it has a
path), and an unexpected fault (masked for the client elsewhere) are left alone.

Two of our own codes say why an operation that needs a signed-in user was
refused (`schema.context.NotAuthenticated`), so a client knows what to do:

- UNAUTHENTICATED: no bearer token was sent (no `Authorization` header, or one
  of another scheme, as RFC 6750 §3.1 treats it): sign in first.
- TOKEN_INVALID: a bearer token was sent but signs no one in, because it is
  malformed, unknown, revoked (logged out) or expired: sign in again. RFC 6750
  §3.1 calls this `invalid_token`. Public fields (signUp, logIn, introspection)
  ignore the token, so a stale one never stands in the way of signing in again.

Over a WebSocket either closes the socket with 4403, the code first in the
close reason (`TOKEN_INVALID: ...`); refused at `connection_init`, graphql-ws
sends the code in a `connection_error` before closing.
"""

from __future__ import annotations

import re

from graphql import GraphQLError, GraphQLSyntaxError

PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
BAD_USER_INPUT = "BAD_USER_INPUT"
UNAUTHENTICATED = "UNAUTHENTICATED"
TOKEN_INVALID = "TOKEN_INVALID"  # noqa: S105 (an error code, not a secret)
# Every database connection stayed taken for the pool's timeout (a burst of operations):
# nothing was done; try again. Over HTTP, before any operation ran, a 503.
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
BUSY = "The server is too busy to answer this now: try again in a moment."
_COERCION = re.compile(
    r"Variable '\$\w+' (has invalid value|got invalid value|of required type|of non-null type)"
)
"""graphql-core's messages for variable values that do not fit their types
(`coerce_variable_values`); its other messages about variables are validation rules."""


def code_for(error: GraphQLError) -> str | None:
    """The code `error` should carry, or None to leave it as it is."""
    if (error.extensions or {}).get("code") or error.path is not None:
        return None
    original = error.original_error
    if isinstance(error, GraphQLSyntaxError) or isinstance(original, GraphQLSyntaxError):
        return PARSE_FAILED
    if original is not None and not isinstance(original, GraphQLError):
        return None  # a fault of ours: logged and masked, not a client's mistake
    if error.message.startswith("Syntax Error:"):
        return PARSE_FAILED
    if _COERCION.match(error.message):
        return BAD_USER_INPUT
    return VALIDATION_FAILED


def add_code(error: GraphQLError) -> GraphQLError:
    """`error` with the code `code_for` gives it, set in place.

    In place, because Strawberry passes some errors (a syntax error) to
    `Schema.process_errors` in a list of their own and answers with the error
    objects; and the validation cache hands out the same objects again, which
    then already hold their code.
    """
    code = code_for(error)
    if code is not None:
        error.extensions = {**(error.extensions or {}), "code": code}
    return error
