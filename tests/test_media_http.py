"""`/media` over real HTTP: RFC 9110 ranges, validators and conditional requests, and
only images, video and audio, typed by their bytes, with headers that keep a
browser from treating them as anything else."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from email.message import Message
from email.parser import BytesParser

import httpx
import pytest

from services.media.storage import MediaLinks
from tests.media_harness import media_server
from tests.servers import StudioServer

pytestmark = pytest.mark.e2e

SECRET_KEY = secrets.token_urlsafe(48)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
MP4 = b"\x00\x00\x00\x18ftypisom" + bytes(range(200, 256)) * 100
FILES = {
    "images/1/picture.png": PNG,
    "images/1/misnamed.jpg": PNG,  # a PNG under a .jpg name
    "images/1/page.png": b"<html><script>alert(1)</script></html>",
    "images/1/drawing.svg": b'<svg xmlns="http://www.w3.org/2000/svg"><script/></svg>',
    "images/1/notes.txt": b"plain text",
    "videos/1/clip.mp4": MP4,
}


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioServer]:
    server = media_server(tmp_path_factory.mktemp("media"), "media", FILES, secret_key=SECRET_KEY)
    with server:
        yield server


@pytest.fixture(scope="module")
def http(studio: StudioServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=studio.base_url, timeout=10.0, trust_env=False) as client:
        yield client


@pytest.fixture(scope="module")
def links(studio: StudioServer) -> MediaLinks:
    return MediaLinks(SECRET_KEY, studio.base_url)


def assert_secured(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == "default-src 'none'; sandbox"


def parts_of(response: httpx.Response) -> list[Message]:
    """The parts of a multipart/byteranges body (RFC 9110 section 14.6)."""
    head = f"Content-Type: {response.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser().parsebytes(head + response.content)
    assert message.is_multipart()
    return list(message.get_payload())


def test_several_ranges_are_one_multipart_answer(http: httpx.Client, links: MediaLinks) -> None:
    url = links.url_for("images/1/picture.png")
    response = http.get(url, headers={"Range": "bytes=0-0,5-10"})
    assert response.status_code == 206, response.text
    assert response.headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert_secured(response)
    parts = parts_of(response)
    assert [part["Content-Range"] for part in parts] == [
        f"bytes 0-0/{len(PNG)}",
        f"bytes 5-10/{len(PNG)}",
    ]
    assert [part["Content-Type"] for part in parts] == ["image/png", "image/png"]
    bodies = [part.get_payload(decode=True) for part in parts]
    assert bodies == [PNG[0:1], PNG[5:11]]
    assert int(response.headers["content-length"]) == len(response.content)


def test_single_and_suffix_ranges_and_unsatisfiable_ones(
    http: httpx.Client, links: MediaLinks
) -> None:
    url = links.url_for("videos/1/clip.mp4")
    part = http.get(url, headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-1099/{len(MP4)}"
    assert part.content == MP4[100:1100]
    assert part.headers["content-type"] == "video/mp4"
    tail = http.get(url, headers={"Range": "bytes=-10"})
    assert (tail.status_code, tail.content) == (206, MP4[-10:])
    beyond = http.get(url, headers={"Range": f"bytes={len(MP4)}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(MP4)}"
    assert_secured(beyond)
    # A number past int()'s digit limit: Starlette refuses the header (400), never a 500.
    huge = http.get(url, headers={"Range": f"bytes={'9' * 5000}-"})
    assert huge.status_code in (400, 416)


def test_validators_and_conditional_requests(http: httpx.Client, links: MediaLinks) -> None:
    url = links.url_for("images/1/picture.png")
    whole = http.get(url)
    assert whole.status_code == 200
    assert whole.content == PNG
    assert whole.headers["accept-ranges"] == "bytes"
    etag, modified = whole.headers["etag"], whole.headers["last-modified"]

    for conditional in ({"If-None-Match": etag}, {"If-Modified-Since": modified}):
        again = http.get(url, headers=conditional)
        assert again.status_code == 304, conditional
        assert again.content == b""
        assert again.headers["etag"] == etag
    weak = http.get(url, headers={"If-None-Match": f'"other", W/{etag}'})
    assert weak.status_code == 304
    changed = http.get(url, headers={"If-None-Match": '"something-else"'})
    assert changed.status_code == 200
    # If-None-Match decides when both are present (RFC 9110 section 13.2.2).
    both = http.get(url, headers={"If-None-Match": '"nope"', "If-Modified-Since": modified})
    assert both.status_code == 200

    same = http.get(url, headers={"Range": "bytes=0-3", "If-Range": etag})
    assert (same.status_code, same.content) == (206, PNG[:4])
    stale = http.get(url, headers={"Range": "bytes=0-3", "If-Range": '"an-older-version"'})
    assert (stale.status_code, stale.content) == (200, PNG)


def test_head_answers_headers_only(http: httpx.Client, links: MediaLinks) -> None:
    url = links.url_for("videos/1/clip.mp4")
    head = http.head(url)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(MP4))
    assert head.headers["content-type"] == "video/mp4"
    assert_secured(head)
    ranged = http.head(url, headers={"Range": "bytes=0-9"})
    assert ranged.status_code == 206
    assert ranged.headers["content-length"] == "10"


def test_the_type_comes_from_the_bytes_not_the_name(http: httpx.Client, links: MediaLinks) -> None:
    response = http.get(links.url_for("images/1/misnamed.jpg"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert_secured(response)


@pytest.mark.parametrize("key", ["images/1/page.png", "images/1/drawing.svg", "images/1/notes.txt"])
def test_only_images_video_and_audio_are_served(
    http: httpx.Client, links: MediaLinks, key: str
) -> None:
    response = http.get(links.url_for(key))
    assert response.status_code == 404
    assert FILES[key] not in response.content


def test_a_missing_file_and_a_directory_are_404(http: httpx.Client, links: MediaLinks) -> None:
    assert http.get(links.url_for("images/1/gone.png")).status_code == 404
    assert http.get(links.url_for("images/1")).status_code == 404


def test_a_file_is_cached_no_longer_than_its_link_lives(
    http: httpx.Client, links: MediaLinks
) -> None:
    team = http.get(links.url_for("images/1/picture.png"))
    assert team.status_code == 200
    assert team.headers["cache-control"] == "private, max-age=3600"
    # A short link (through a share) is cached at most until it expires: 10 minutes.
    short = http.get(links.short_url_for("images/1/picture.png"))
    assert short.status_code == 200
    directive, age = short.headers["cache-control"].split(", max-age=")
    assert directive == "private"
    assert 0 < int(age) <= 600
    # A link whose share ends in 30 s is cached for no longer.
    ending = http.get(links.short_url_for("images/1/picture.png", not_after=time.time() + 30))
    assert ending.status_code == 200
    assert 0 <= int(ending.headers["cache-control"].split("max-age=")[1]) <= 30
