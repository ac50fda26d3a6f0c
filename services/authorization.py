"""Reading the `Authorization` request header: bearer tokens (RFC 6750 section 2.1)."""

from __future__ import annotations

from collections.abc import Collection


def bearer_token(header: str | None, *, schemes: Collection[str] = ("bearer",)) -> str | None:
    """The credential of `Authorization: <scheme> <credential>`, or None.

    `schemes` are the accepted scheme names, lower-case (they match in any case);
    None for no header, another scheme, or an empty credential.

        bearer_token("Bearer abc")                                  # "abc"
        bearer_token("Token abc", schemes=("bearer", "token"))      # "abc" (Replicate's)
    """
    if not header:
        return None
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    return credential if credential and scheme.lower() in schemes else None
