"""Every verifier fails closed: whatever a client sends, a forged or malformed webhook
is 401 and a forged or malformed media link is 404, never a 500.

Property tests feed the verifiers arbitrary values, first as functions, then a
smaller number over real HTTP against a running `studio serve`.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.media.storage import MediaLinks
from services.replicate.signatures import WebhookRejected, sign, verify
from tests.media_harness import media_server
from tests.servers import StudioServer

SECRET_KEY = secrets.token_urlsafe(48)
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"verifier tests webhook signing key").decode()
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64

# Values shaped like the real thing, and values nothing like it: long digit runs
# (int() gives up past 4300 digits), Unicode digits ("²".isdigit() is True), any text.
numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.integers(min_value=1, max_value=6000).map(lambda n: "9" * n),
    # Every character here is a Unicode digit (category Nd, or superscripts): "isdigit".
    st.text(
        alphabet=st.characters(categories=["Nd"]).filter(str.isdigit) | st.sampled_from("²³¹"),
        min_size=1,
        max_size=30,
    ),
    st.text(max_size=50),
)
header_text = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=300),
    st.builds(lambda rest: "v1," + rest, st.text(max_size=80)),
    numbers,
)


# -- as functions ------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(
    webhook_id=st.one_of(st.none(), header_text),
    timestamp=st.one_of(st.none(), numbers, header_text),
    signature=st.one_of(st.none(), header_text),
    body=st.binary(max_size=200),
)
def test_webhook_verify_rejects_anything_unsigned(
    webhook_id: str | None, timestamp: str | None, signature: str | None, body: bytes
) -> None:
    headers = {
        name: value
        for name, value in (
            ("webhook-id", webhook_id),
            ("webhook-timestamp", timestamp),
            ("webhook-signature", signature),
        )
        if value is not None
    }
    with pytest.raises(WebhookRejected):
        verify(WEBHOOK_SECRET, headers, body)


@settings(max_examples=200, deadline=None)
@given(timestamp=numbers, extra=st.lists(header_text, max_size=3))
def test_a_genuine_signature_with_a_malformed_timestamp_is_rejected(
    timestamp: str, extra: list[str]
) -> None:
    """A valid signature over a bogus timestamp still fails, and fails as WebhookRejected."""
    body = b'{"id": "p1"}'
    try:
        signed_at = int(timestamp)
    except ValueError:
        signed_at = 0
    signature = sign(WEBHOOK_SECRET, "msg_1", signed_at, body)
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": timestamp,
        "webhook-signature": " ".join([*extra, signature]),
    }
    now = int(time.time())
    if timestamp.isascii() and timestamp.isdigit() and abs(now - signed_at) <= 300:
        assert verify(WEBHOOK_SECRET, headers, body, now=now) == "msg_1"
    else:
        with pytest.raises(WebhookRejected):
            verify(WEBHOOK_SECRET, headers, body, now=now)


def test_a_genuine_webhook_still_verifies() -> None:
    body = b'{"id": "p1"}'
    now = int(time.time())
    headers = {
        "webhook-id": "msg_abc",
        "webhook-timestamp": str(now),
        "webhook-signature": "v1,bm90IHRoaXMgb25l " + sign(WEBHOOK_SECRET, "msg_abc", now, body),
    }
    assert verify(WEBHOOK_SECRET, headers, body) == "msg_abc"


LINKS = MediaLinks(SECRET_KEY, "http://127.0.0.1:1")


@settings(max_examples=400, deadline=None)
@given(
    key=st.one_of(st.just("images/1/a.png"), st.text(max_size=60)),
    expires=st.one_of(numbers, header_text),
    signature=st.one_of(
        header_text, st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)
    ),
)
def test_media_verify_rejects_anything_unsigned(key: str, expires: str, signature: str) -> None:
    assert LINKS.verify(key, expires, signature) is False


def test_a_genuine_media_link_still_verifies() -> None:
    url = LINKS.url_for("images/1/a.png")
    query = dict(part.split("=") for part in url.split("?")[1].split("&"))
    assert LINKS.verify("images/1/a.png", query["expires"], query["signature"])
    assert not LINKS.verify("images/1/b.png", query["expires"], query["signature"])


# -- over HTTP ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioServer]:
    server = media_server(
        tmp_path_factory.mktemp("verifiers"),
        "verifiers",
        {"images/1/a.png": PNG},
        secret_key=SECRET_KEY,
        REPLICATE_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )
    with server:
        yield server


@pytest.fixture(scope="module")
def http(studio: StudioServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=studio.base_url, timeout=10.0, trust_env=False) as client:
        yield client


def post_webhook(http: httpx.Client, headers: dict[str, bytes]) -> httpx.Response:
    body = b'{"id": "p1", "status": "succeeded"}'
    raw = [(name.encode(), value) for name, value in headers.items()]
    return http.post("/webhooks/replicate", content=body, headers=raw)


def test_the_reported_webhook_timestamp_is_401(http: httpx.Client) -> None:
    response = post_webhook(
        http,
        {
            "webhook-id": b"msg_1",
            "webhook-timestamp": b"9" * 5000,
            "webhook-signature": b"v1," + base64.b64encode(b"x" * 32),
        },
    )
    assert response.status_code == 401, response.text


def test_the_reported_media_links_are_404(http: httpx.Client) -> None:
    url = LINKS.url_for("images/1/a.png").replace("http://127.0.0.1:1", "")
    assert http.get(url).status_code == 200
    signature = url.split("signature=")[1]
    long_expiry = f"/media/images/1/a.png?expires={'9' * 5000}&signature={signature}"
    assert http.get(long_expiry).status_code == 404
    unicode_expiry = f"/media/images/1/a.png?expires={quote('²' * 10)}&signature={signature}"
    assert http.get(unicode_expiry).status_code == 404
    expires = url.split("expires=")[1].split("&")[0]
    for forged in ("é" * 32, "😀", "\u0663" * 32, signature.upper()):
        response = http.get(f"/media/images/1/a.png?expires={expires}&signature={quote(forged)}")
        assert response.status_code == 404, forged


FIELD_BYTES = [byte for byte in range(0x20, 0x100) if byte != 0x7F]  # RFC 9110 field-value


def field_value(raw: bytes) -> bytes:
    """`raw` without the bytes no header may carry (h11 refuses to send them)."""
    return bytes(byte for byte in raw if byte in FIELD_BYTES).strip()


latin1 = st.lists(st.sampled_from(FIELD_BYTES), max_size=120).map(bytes)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    webhook_id=latin1,
    timestamp=st.one_of(numbers.map(lambda text: field_value(text.encode())), latin1),
    signature=st.one_of(latin1, latin1.map(lambda b: b"v1," + b)),
)
def test_webhooks_over_http_are_401_whatever_the_headers(
    http: httpx.Client, webhook_id: bytes, timestamp: bytes, signature: bytes
) -> None:
    headers = {
        "webhook-id": webhook_id.strip(),
        "webhook-timestamp": timestamp,
        "webhook-signature": signature.strip(),
    }
    response = post_webhook(http, headers)
    assert response.status_code == 401, (headers, response.status_code, response.text)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(expires=numbers, signature=header_text)
def test_media_over_http_is_404_whatever_the_query(
    http: httpx.Client, expires: str, signature: str
) -> None:
    response = http.get(
        "/media/images/1/a.png",
        params={"expires": expires, "signature": signature},
    )
    assert response.status_code == 404, (expires, signature, response.status_code)


def test_a_stored_file_is_reachable_only_by_its_own_link(http: httpx.Client) -> None:
    other = LINKS.url_for("images/1/b.png").replace("http://127.0.0.1:1", "")
    expires, signature = other.split("expires=")[1].split("&signature=")
    response = http.get(f"/media/images/1/a.png?expires={expires}&signature={signature}")
    assert response.status_code == 404


def signed_headers(body: bytes) -> dict[str, str]:
    now = int(time.time())
    webhook_id = f"msg_{secrets.token_hex(6)}"
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(now),
        "webhook-signature": sign(WEBHOOK_SECRET, webhook_id, now, body),
    }


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 200_000 + b"]" * 200_000,
        b'{"id": "p1", "status": "succeeded", "output": ' + b"[" * 50 + b"]" * 50 + b"}",
        b'{"id": "p1", "status": "succeeded", "metrics": {"predict_time": NaN}}',
        b'{"id": "p1", "status": "succeeded", "output": [Infinity]}',
    ],
    ids=["200000-deep", "50-deep-output", "nan", "infinity"],
)
def test_a_signed_webhook_with_a_malformed_body_is_400(http: httpx.Client, body: bytes) -> None:
    response = http.post("/webhooks/replicate", content=body, headers=signed_headers(body))
    assert response.status_code == 400, response.text
