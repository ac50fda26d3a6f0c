"""URLs shown to a person carry no password or token; URLs built from a host bracket
an IPv6 address (RFC 3986 section 3.2.2)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from api.settings import Settings
from api.urls import NOT_SHOWABLE, base_url, shown_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # userinfo: the user name stays, the password goes
        (
            "postgresql+asyncpg://studio:S3cretPW@db:5432/studio",
            "postgresql+asyncpg://studio:***@db:5432/studio",
        ),
        ("redis://:BUSPW@cache:6379/0", "redis://:***@cache:6379/0"),
        ("https://user:PW@api.example.com", "https://user:***@api.example.com"),
        ("postgresql+asyncpg://u:p%40ss%3AW0RD@db/x", "postgresql+asyncpg://u:***@db/x"),
        ("postgresql+asyncpg://studio@db/studio", "postgresql+asyncpg://studio@db/studio"),
        # secret-looking query parameters (asyncpg reads ?password=, redis-py too)
        (
            "postgresql+asyncpg://u@db/studio?password=QUERYPW&ssl=require",
            "postgresql+asyncpg://u@db/studio?password=***&ssl=require",
        ),
        ("redis://h:6379/0?password=X1", "redis://h:6379/0?password=***"),
        (
            "https://h/?api_key=K1&access_token=T1&Secret=S1&sslpassword=P1&x=1",
            "https://h/?api_key=***&access_token=***&Secret=***&sslpassword=***&x=1",
        ),
        ("https://h/?pass%77ord=P2", "https://h/?pass%77ord=***"),
        # the rest is kept as written; a fragment is dropped
        ("http://[::1]:8000/prefix", "http://[::1]:8000/prefix"),
        ("https://h/#token=F1", "https://h/"),
        ("memory://", "memory://"),
        ("sqlite+aiosqlite:////tmp/x/studio.db", "sqlite+aiosqlite:////tmp/x/studio.db"),
        # what does not parse is not shown at all
        ("https://u:PW@[::1/x", NOT_SHOWABLE),
        ("https://u:PW@h:port/x", NOT_SHOWABLE),
        ("u:PW@h:6379/0", NOT_SHOWABLE),
    ],
)
def test_a_shown_url_has_no_password_or_token(url: str, shown: str) -> None:
    assert shown_url(url) == shown


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000"),
        ("studio.example.com", "http://studio.example.com:8000"),
        ("::1", "http://[::1]:8000"),
        ("fe80::1%eth0", "http://[fe80::1%eth0]:8000"),
        ("::", "http://[::]:8000"),
    ],
)
def test_a_url_from_a_host_brackets_an_ipv6_address(host: str, url: str) -> None:
    assert base_url(host, 8000) == url
    settings = Settings(_env_file=None)
    assert settings.resolved_public_url(host, 8000) == url
    if host != "fe80::1%eth0":
        assert urlsplit(url).hostname == host
