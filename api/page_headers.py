"""The security headers of every HTML page we serve: the editor at GET / and GraphiQL
at GET /graphql.

Both pages are on one origin, so both can read what the other keeps there, GraphiQL's
saved request headers in localStorage (an `Authorization: Bearer` token among them)
included: one page that runs a foreign script, or can be framed, exposes the other.
So they share one policy, and a page may only add sources to a directive of it:

- Content-Security-Policy: nothing by default (`default-src 'none'`), then scripts,
  styles, fonts, media and connections (HTTP, and the WebSocket of subscriptions) from
  this origin only; images also as `data:` and `blob:` URLs. No inline script, no
  other origin, no plugin (`object-src` falls back to 'none'), no frame inside a page,
  no `<base>` (`base-uri 'none'`), forms posting to this origin only, and no page may
  frame ours (`frame-ancestors 'none'`: clickjacking).
- X-Frame-Options: DENY, the same for browsers that predate `frame-ancestors`.
- X-Content-Type-Options: nosniff, Referrer-Policy: no-referrer (a URL of ours, a
  signed media link included, is never sent to another site), and Cache-Control:
  no-cache (revalidated on every use, so a changed policy applies at once).

Sources: CSP Level 3 (https://www.w3.org/TR/CSP3/), whose `'self'` matches `ws:` and
`wss:` of this host too (§6.7.2.9); the Referrer Policy specification
(https://www.w3.org/TR/referrer-policy/); RFC 7034 (X-Frame-Options).
"""

from __future__ import annotations

from collections.abc import Mapping

POLICY: Mapping[str, tuple[str, ...]] = {
    "default-src": ("'none'",),
    "script-src": ("'self'",),
    "style-src": ("'self'",),
    "font-src": ("'self'",),
    "img-src": ("'self'", "data:", "blob:"),
    "media-src": ("'self'",),
    "connect-src": ("'self'",),
    "base-uri": ("'none'",),
    "form-action": ("'self'",),
    "frame-ancestors": ("'none'",),
}
"""Every page's Content-Security-Policy, directive by directive."""

OTHER_HEADERS: Mapping[str, str] = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def content_security_policy(more: Mapping[str, tuple[str, ...]] | None = None) -> str:
    """POLICY as a header value, with `more` sources added to some of its directives
    (directive name to sources, e.g. `{"font-src": ("data:",)}`).

    Raises ValueError for a directive POLICY does not have: a page may widen what the
    shared policy allows, never add a kind of thing it leaves to `default-src`.
    """
    extra = dict(more or {})
    unknown = sorted(set(extra) - set(POLICY))
    if unknown:
        raise ValueError(f"not a directive of the shared policy: {', '.join(unknown)}")
    return "; ".join(
        " ".join((directive, *sources, *extra.get(directive, ())))
        for directive, sources in POLICY.items()
    )


def page_headers(more: Mapping[str, tuple[str, ...]] | None = None) -> dict[str, str]:
    """The headers of an HTML page: its policy (`content_security_policy(more)`) and
    OTHER_HEADERS. ValueError as `content_security_policy`."""
    return {"Content-Security-Policy": content_security_policy(more), **OTHER_HEADERS}
