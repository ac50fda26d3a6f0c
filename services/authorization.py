"""Reading the `Authorization` request header: bearer tokens (RFC 6750 section 2.1).

One parser for every place a token is read: the GraphQL endpoint over HTTP and
server-sent events, a WebSocket's `connection_init` payload, the rate limiter
and the Replicate emulator. The syntax is RFC 9110 section 11.4 (credentials)
with RFC 6750 section 2.1 (the Bearer scheme):

    credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
    token68     = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="

Three outcomes besides a token:

- no bearer credential at all (no header, an empty one, another scheme such as
  `Basic`): `bearer_token` returns None; the client has not tried to sign in.
- a credential of the Bearer scheme that is not `Bearer <token68>` (a bare
  `Bearer`, `Bearer ` with nothing after it, `Bearer<TAB>token`, `Bearer a b`,
  characters outside token68): MalformedCredentials. RFC 9110 separates the
  scheme from its credential by spaces only (SP); a tab there is not accepted,
  but since the scheme is Bearer the client did try to sign in, so this is a
  malformed token rather than no token.
- several credentials (the header sent more than once, or credentials joined
  by commas, as a proxy merging repeated fields would): SeveralCredentials.
  `Authorization` holds one credential (RFC 9110 section 11.6.2); picking one
  of several could sign a request in as someone it did not mean, so none is.

Exception tree:

    AuthorizationError (ValueError)
    ├── MalformedCredentials    the Bearer scheme, but no well-formed token
    └── SeveralCredentials      more than one credential
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

# RFC 9110 section 5.6.2: token = 1*tchar.
_TCHAR = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_CREDENTIALS = re.compile(rf"({_TCHAR}+)(.*)", re.DOTALL)
# One element of a comma-separated list: quoted strings may hold commas.
_LIST_ELEMENT = re.compile(r'(?:[^,"]|"(?:[^"\\]|\\.)*")*', re.DOTALL)
# An element that continues the credential before it (`Digest a=1, b=2`), not a new one.
_AUTH_PARAM = re.compile(rf"{_TCHAR}+[ \t]*=")
_OWS = " \t"


class AuthorizationError(ValueError):
    """The `Authorization` credentials cannot be used (see the module)."""


class MalformedCredentials(AuthorizationError):
    """A credential of an accepted scheme without a well-formed token after it."""


class SeveralCredentials(AuthorizationError):
    """More than one credential: several `Authorization` headers, or ones joined by commas."""


def bearer_token(
    header: str | Sequence[str] | None, *, schemes: Collection[str] = ("bearer",)
) -> str | None:
    """The token of `Authorization: <scheme> <token>`, or None for no bearer credential.

    `header` is the field's value, or every value it was sent with (Starlette's
    `headers.getlist("authorization")`); None or an empty list is no header.
    `schemes` are the accepted scheme names, lower-case (they match in any case,
    RFC 9110 section 11.1). None for no header, an empty one, or another scheme.

    Raises MalformedCredentials for an accepted scheme without a token68 after
    one or more spaces, and SeveralCredentials for more than one credential.

        bearer_token("Bearer abc")                                  # "abc"
        bearer_token("bearer   abc")                                # "abc"
        bearer_token("Basic YWJj")                                  # None
        bearer_token("Bearer")                                      # MalformedCredentials
        bearer_token(["Bearer a", "Bearer b"])                      # SeveralCredentials
        bearer_token("Token abc", schemes=("bearer", "token"))      # "abc" (Replicate's)
    """
    values = [header] if header is None or isinstance(header, str) else list(header)
    # Leading and trailing white space is not part of a field value (RFC 9110 section 5.5).
    present = [value.strip(_OWS) for value in values if value is not None]
    if len(present) > 1:
        raise SeveralCredentials(
            f"{len(present)} Authorization headers were sent; send exactly one."
        )
    if not present or not present[0]:
        return None
    value = present[0]
    _refuse_several(value)
    match = _CREDENTIALS.fullmatch(value)
    if match is None:  # does not even start with a scheme name
        return None
    scheme, rest = match.groups()
    if scheme.lower() not in schemes:
        return None
    token = rest.lstrip(" ")
    if len(token) == len(rest) or not _TOKEN68.fullmatch(token):
        raise MalformedCredentials(
            f"The Authorization header must be `{scheme} <token>`: "
            "the scheme, one or more spaces, then the token."
        )
    return token


def _refuse_several(value: str) -> None:
    """SeveralCredentials if the comma-separated elements of `value` start a second credential."""
    if "," not in value:
        return
    elements = [element.strip(_OWS) for element in _LIST_ELEMENT.findall(value)]
    for element in elements[1:]:
        if element and not _AUTH_PARAM.match(element):
            raise SeveralCredentials(
                "The Authorization header holds several credentials joined by commas; "
                "send exactly one."
            )
