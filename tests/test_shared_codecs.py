"""The pieces written once and shared: cursors, bearer tokens, webhook secrets, backoff."""

from __future__ import annotations

import pytest

from services import cursors
from services.authorization import MalformedCredentials, SeveralCredentials, bearer_token
from services.backoff import full_jitter
from services.replicate.emulator.config import webhook_secret_key
from services.replicate.signatures import secret_key


@pytest.mark.parametrize("padded", [True, False])
def test_a_cursor_decodes_to_its_text_with_or_without_padding(padded: bool) -> None:
    cursor = cursors.encode("project:12", padded=padded)
    assert cursor.endswith("=") is padded  # 10 bytes: base64 pads to a multiple of 3
    assert cursors.decode(cursor, max_length=100) == "project:12"


@pytest.mark.parametrize("cursor", ["x" * 101, "!!!!", "cHJv amVjdA", "_w", "////"])
def test_a_cursor_too_long_or_not_base64_or_not_utf8_decodes_to_none(cursor: str) -> None:
    assert cursors.decode(cursor, max_length=100) is None


@pytest.mark.parametrize(
    ("header", "schemes", "token"),
    [
        ("Bearer abc", ("bearer",), "abc"),
        ("bearer   abc  ", ("bearer",), "abc"),
        ("BEARER a-b.c_d~e+f/g==", ("bearer",), "a-b.c_d~e+f/g=="),
        ([" Bearer abc\t"], ("bearer",), "abc"),
        ("Token abc", ("bearer",), None),
        ("Token abc", ("bearer", "token"), "abc"),
        ("Basic YWJj", ("bearer",), None),
        ("Basic\tYWJj", ("bearer",), None),
        ('Digest a=1, b="x, Bearer y"', ("bearer",), None),
        ("abc", ("bearer",), None),
        ("", ("bearer",), None),
        ([], ("bearer",), None),
        (None, ("bearer",), None),
    ],
)
def test_bearer_token(
    header: str | list[str] | None, schemes: tuple[str, ...], token: str | None
) -> None:
    assert bearer_token(header, schemes=schemes) == token


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "bearer",
        "Bearer\tabc",
        "Bearer abc def",
        "Bearer abc=def",
        "Bearer a=b",
        "Bearer abc,",
        "Bearer sbs_\xe9",
        "Bearer realm=x, error=y",
    ],
)
def test_a_bearer_credential_without_a_token68_is_malformed(header: str) -> None:
    with pytest.raises(MalformedCredentials):
        bearer_token(header)


@pytest.mark.parametrize(
    "header",
    [
        ["Bearer abc", "Bearer def"],
        ["Bearer abc", "Bearer abc"],
        ["Bearer abc", ""],
        "Bearer abc, Bearer def",
        "Basic YWJj, Bearer abc",
        "Bearer abc,Token def",
    ],
)
def test_several_credentials_are_refused_rather_than_one_picked(header: str | list[str]) -> None:
    with pytest.raises(SeveralCredentials):
        bearer_token(header)


def test_a_webhook_secret_is_base64_after_its_prefix() -> None:
    assert secret_key("whsec_YWJj") == b"abc"
    assert secret_key("YWJj") == b"abc"  # the prefix may be left off when verifying
    for bad in ("whsec_", "whsec_not base64!"):
        with pytest.raises(ValueError, match="webhook secret"):
            secret_key(bad)
    assert webhook_secret_key("whsec_YWJj") == b"abc"
    with pytest.raises(ValueError, match="whsec_"):
        webhook_secret_key("YWJj")  # the emulator's own secret must say what it is


def test_full_jitter_stays_within_its_ceiling() -> None:
    for attempt in range(12):
        ceiling = min(5.0, 0.1 * 2**attempt)
        waits = [full_jitter(attempt, base=0.1, cap=5.0) for _ in range(200)]
        assert all(0 <= wait <= ceiling for wait in waits)
        assert max(waits) > ceiling / 2  # spread over the range, not stuck at 0
