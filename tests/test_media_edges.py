"""`/media` at its edges: Range headers that are not usable byte ranges are ignored
(RFC 9110 section 14.2), and every answer under `/media`, whoever gives it (a 405,
a 413, the rate limit's 429), carries nosniff and the Content-Security-Policy."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.media import usable_range
from services.media.storage import MediaLinks
from tests.media_harness import media_server
from tests.servers import StudioServer

pytestmark = pytest.mark.e2e

SECRET_KEY = secrets.token_urlsafe(48)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
KEY = "images/1/picture.png"


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioServer]:
    cwd = tmp_path_factory.mktemp("media-edges")
    server = media_server(cwd, "media-edges", {KEY: PNG}, secret_key=SECRET_KEY)
    with server:
        yield server


@pytest.fixture(scope="module")
def http(studio: StudioServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=studio.base_url, timeout=10.0, trust_env=False) as client:
        yield client


@pytest.fixture(scope="module")
def url(studio: StudioServer) -> str:
    return MediaLinks(SECRET_KEY, studio.base_url).url_for(KEY)


def assert_secured(response: httpx.Response) -> None:
    assert response.headers.get("x-content-type-options") == "nosniff", response.headers
    assert response.headers.get("content-security-policy") == "default-src 'none'; sandbox"


IGNORED = [
    "items=0-1",  # a unit we do not understand: MUST be ignored
    "pages=1",
    "bytes",
    "bytes=",
    "bytes=,,,,",
    "bytes=-",
    "bytes=5-1",  # last-pos below first-pos: invalid
    "bytes=abc",
    "bytes=1-2,xxxx",  # one invalid range makes the whole set invalid
    "bytes=0x10-20",
    "bytes=\u0661-\u0662".encode().decode("latin-1"),  # Arabic-Indic digits, as bytes
    "bytes=1--2",
    "bytes=" + ",".join(["0-0"] * 101),
    "=0-1",
]


@pytest.mark.parametrize("value", IGNORED)
def test_a_range_that_is_not_a_usable_byte_range_is_ignored(
    http: httpx.Client, url: str, value: str
) -> None:
    response = http.get(url, headers=[(b"range", value.encode("latin-1"))])
    assert response.status_code == 200, (value, response.status_code, response.text[:80])
    assert response.content == PNG
    assert_secured(response)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("BYTES=0-3", [(0, 3)]),  # the unit is case-insensitive
        ("bytes=0-3 , ,5-6", [(0, 3), (5, 6)]),  # list whitespace and empty elements
        ("bytes=0-3," + "9" * 5000 + "-", [(0, 3)]),  # an unsatisfiable one is dropped
        ("bytes=-" + "9" * 5000, [(0, len(PNG) - 1)]),  # a suffix longer than the file
        ("bytes=10-" + "9" * 5000, [(10, len(PNG) - 1)]),
    ],
)
def test_usable_ranges_are_honoured(
    http: httpx.Client, url: str, value: str, expected: list[tuple[int, int]]
) -> None:
    response = http.get(url, headers={"Range": value})
    assert response.status_code == 206, (value, response.text[:80])
    assert_secured(response)
    if len(expected) == 1:
        start, end = expected[0]
        assert response.headers["content-range"] == f"bytes {start}-{end}/{len(PNG)}"
        assert response.content == PNG[start : end + 1]
    else:
        assert response.headers["content-type"].startswith("multipart/byteranges")


@pytest.mark.parametrize("value", [f"bytes={len(PNG)}-", "bytes=" + "9" * 5000 + "-", "bytes=-0"])
def test_a_well_formed_unsatisfiable_range_is_416(http: httpx.Client, url: str, value: str) -> None:
    response = http.get(url, headers={"Range": value})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(PNG)}"
    assert_secured(response)


FIELD = st.text(
    alphabet=st.sampled_from("bytesBYTES=-,0123456789 \t;xX\u00e9"), min_size=0, max_size=40
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=FIELD)
def test_any_range_header_is_200_206_or_416(http: httpx.Client, url: str, value: str) -> None:
    value = value.strip(" \t")  # a field value has no leading or trailing whitespace
    response = http.get(url, headers=[(b"range", value.encode("latin-1"))])
    assert response.status_code in (200, 206, 416), (value, response.status_code)
    assert_secured(response)
    if response.status_code == 200:
        assert response.content == PNG
    assert (response.status_code == 200) == (usable_range(value, len(PNG)) is None)


def test_every_answer_under_media_is_secured(tmp_path: Path) -> None:
    server = media_server(
        tmp_path,
        "media-limited",
        {KEY: PNG},
        secret_key=SECRET_KEY,
        RATE_LIMIT_MEDIA="6/minute",
        MAX_REQUEST_BYTES="1000",
    )
    with server:
        link = MediaLinks(SECRET_KEY, server.base_url).url_for(KEY)
        with httpx.Client(timeout=10.0, trust_env=False) as http:
            too_big = http.post(link, content=b"x" * 5000)
            assert too_big.status_code in (405, 413)
            assert_secured(too_big)
            for method in ("POST", "OPTIONS", "PUT"):
                response = http.request(method, link)
                assert response.status_code == 405, method
                assert_secured(response)
            statuses = []
            for _ in range(6):
                response = http.get(link)
                statuses.append(response.status_code)
                assert_secured(response)
            assert 429 in statuses, statuses
            assert_secured(http.get(server.base_url + "/media"))
