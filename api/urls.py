"""URLs built from a host and a port, and URLs shown to a person.

`base_url` puts a host into a URL as RFC 3986 section 3.2.2 requires: an IPv6
literal in brackets (`http://[::1]:8000`), anything else as it is.

`shown_url` is the one way a configured URL is printed (the start-up block,
`studio migrate`): its password and the values of query parameters that look
secret are replaced by `***`, so a URL can be shown without what unlocks it.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import unquote_plus, urlsplit

MASK = "***"
SECRET_PARAMETER_WORDS = (
    "pass",  # password, passwd, passphrase, sslpassword
    "pwd",
    "secret",
    "token",
    "key",  # key, apikey, api_key, sslkey
    "auth",
    "credential",
    "signature",
    "sig",
)
"""A query parameter whose name (lower-cased) contains one of these has its value masked.
asyncpg, for one, takes `?password=` as well as a password in the userinfo."""
NOT_SHOWABLE = "(a URL that cannot be shown: it does not parse)"


def is_ipv6_literal(host: str) -> bool:
    """Whether `host` is an IPv6 address (with or without a `%zone`), not a name."""
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


def url_host(host: str) -> str:
    """`host` as it is written in a URL's authority: an IPv6 literal bracketed, e.g.
    `::1` -> `[::1]`; an IPv4 address or a name unchanged; already bracketed: unchanged."""
    return f"[{host}]" if is_ipv6_literal(host) else host


def base_url(host: str, port: int, *, scheme: str = "http") -> str:
    """`scheme://host:port` with `host` put in as `url_host` writes it (no trailing slash)."""
    return f"{scheme}://{url_host(host)}:{port}"


def _shown_query(query: str) -> str:
    pairs = []
    for pair in query.split("&"):
        name, equals, value = pair.partition("=")
        secret = any(word in unquote_plus(name).lower() for word in SECRET_PARAMETER_WORDS)
        pairs.append(f"{name}={MASK}" if secret and equals else f"{name}{equals}{value}")
    return "&".join(pairs)


def shown_url(url: str) -> str:
    """`url` fit to print: `scheme://user:***@host:port/path?password=***`.

    The user name stays (it says which account is used); a password in the userinfo
    and the value of every query parameter whose name contains one of
    `SECRET_PARAMETER_WORDS` become `***`; the fragment is dropped. Everything else is
    kept as written. A URL that does not parse, or has an `@` but no `//` authority,
    is not shown at all (`NOT_SHOWABLE`).
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError:
        return NOT_SHOWABLE
    has_authority = url[len(parts.scheme) + 1 :].startswith("//")
    if not has_authority and "@" in url:
        return NOT_SHOWABLE  # `user:password@host` with no scheme: no telling which is which
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if at:
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{hostport}" if colon else f"{userinfo}@{hostport}"
    authority = f"//{netloc}" if has_authority else netloc
    query = f"?{_shown_query(parts.query)}" if parts.query else ""
    return f"{parts.scheme}:{authority}{parts.path}{query}"


def http_url_problem(url: str) -> str | None:
    """Why `url` cannot be an http(s) base URL (None if it can): the reason only, never
    the URL, since it may hold a password."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018
    except ValueError:
        return "not a valid URL (is its port a number 1-65535? an IPv6 host in [brackets]?)"
    if parts.port == 0:
        return "its port must be 1-65535"
    if parts.scheme.lower() not in ("http", "https"):
        return "must be an http:// or https:// URL"
    if not parts.hostname:
        return "has no host: write e.g. https://studio.example.com"
    if parts.query or parts.fragment:
        return "must have no ?query or #fragment"
    return None
