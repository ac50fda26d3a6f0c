"""The one outbound-fetch policy (services.outbound), against a real HTTP server.

Every download the server makes goes through `Fetcher`; these tests drive it
against `FileHost` on a loopback port. A refused address must be refused before
any connection: the file host then has seen no request at all.
"""

from __future__ import annotations

import ipaddress
import ssl
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest

from services.outbound import (
    AddressPolicy,
    Fetcher,
    FetchLimits,
    FetchRefused,
    FetchUnavailable,
    MediaKind,
    is_public,
    parse_allowed_hosts,
)
from tests.outbound_harness import MP4, FileHost, TlsFileHost, self_signed

LIMITS = FetchLimits(
    max_image_bytes=1024 * 1024,
    max_video_bytes=1024 * 1024,
    connect_timeout=2.0,
    read_timeout=0.5,
    total_timeout=5.0,
    max_redirects=3,
)


@pytest.fixture(scope="module")
def host() -> Iterator[FileHost]:
    with FileHost() as server:
        yield server


@pytest.fixture
async def public_only() -> AsyncIterator[Fetcher]:
    """The fetcher of client-given URLs: no allowance at all."""
    fetcher = Fetcher(policy=AddressPolicy(), limits=LIMITS)
    yield fetcher
    await fetcher.aclose()


@pytest.fixture
async def trusting(host: FileHost) -> AsyncIterator[Fetcher]:
    """The fetcher of provider outputs, allowed the file host by name (as for the emulator)."""
    fetcher = Fetcher(
        policy=AddressPolicy(allowed_hosts=parse_allowed_hosts([host.host_port])), limits=LIMITS
    )
    yield fetcher
    await fetcher.aclose()


# --- addresses -----------------------------------------------------------------


INSIDE = [
    "127.0.0.1",
    "127.8.9.10",
    "0.0.0.0",  # noqa: S104 (an address to refuse, not to bind)
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "100.100.100.200",
    "192.0.0.192",
    "198.18.0.1",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",
    "64:ff9b::7f00:1",
    "64:ff9b::a9fe:a9fe",
    "2002:7f00:1::",
    "2002:c0a8:101::1",
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo for 127.0.0.1
    "fe80::1",
    "fc00::1",
    "fd00:ec2::254",
    "ff02::1",
    "ff0e::1",
    "2001:db8::1",
]


@pytest.mark.parametrize("address", INSIDE)
def test_addresses_inside_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


# --- refused before connecting -----------------------------------------------------


def spellings(port: int) -> list[str]:
    """Ways to name this machine's loopback port in a URL."""
    return [
        f"http://127.0.0.1:{port}/png",
        f"http://localhost:{port}/png",
        f"http://LOCALHOST.:{port}/png",
        f"http://[::1]:{port}/png",
        f"http://[::ffff:127.0.0.1]:{port}/png",
        f"http://[::ffff:7f00:1]:{port}/png",
        f"http://2130706433:{port}/png",
        f"http://0x7f000001:{port}/png",
        f"http://0x7f.1:{port}/png",
        f"http://0177.0.0.1:{port}/png",
        f"http://127.1:{port}/png",
        f"http://0.0.0.0:{port}/png",
        f"http://0:{port}/png",
        f"https://127.0.0.1:{port}/png",
    ]


async def test_every_spelling_of_loopback_is_refused_before_connecting(
    host: FileHost, public_only: Fetcher
) -> None:
    before = len(host.seen())
    for url in spellings(host.port):
        with pytest.raises(FetchRefused):
            await public_only.fetch(url, expect=MediaKind.IMAGE)
    assert len(host.seen()) == before, "a refused URL must not be requested"


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://100.100.100.200/latest/meta-data/",
        "http://10.0.0.1/a.png",
        "http://192.168.0.1/a.png",
        "http://[fe80::1]/a.png",
        "http://127.0.0.1:6379/",
        "http://127.0.0.1:9/missing.png",
    ],
)
async def test_inside_addresses_are_refused(url: str, public_only: Fetcher) -> None:
    started = time.monotonic()
    with pytest.raises(FetchRefused):
        await public_only.fetch(url, expect=MediaKind.IMAGE)
    assert time.monotonic() - started < 1.0  # refused, not timed out


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.org/a.png",
        "gopher://127.0.0.1:6379/_INFO",
        "data:image/png;base64,iVBORw0KGgo=",
        "dict://127.0.0.1:11211/stat",
        "http://user:secret@example.org/a.png",
        "http:///a.png",
        "not a url at all",
        "Once upon a time",
    ],
)
async def test_other_schemes_and_shapes_are_refused(url: str, public_only: Fetcher) -> None:
    with pytest.raises(FetchRefused):
        await public_only.fetch(url, expect=MediaKind.IMAGE)


async def test_a_name_resolving_inside_is_refused_whatever_else_it_resolves_to(
    host: FileHost,
) -> None:
    async def resolver(name: str, port: int) -> Sequence[str]:
        return ["93.184.216.34", "127.0.0.1"]

    fetcher = Fetcher(policy=AddressPolicy(), limits=LIMITS, resolver=resolver)
    try:
        with pytest.raises(FetchRefused):
            await fetcher.fetch(f"http://mixed.example:{host.port}/png", expect=MediaKind.IMAGE)
    finally:
        await fetcher.aclose()


async def test_the_connection_goes_to_the_checked_address_with_the_name_kept(
    host: FileHost,
) -> None:
    """Pinning: the name is resolved once, by the policy; nothing resolves it again.

    `pinned.invalid` resolves nowhere (RFC 6761), so the download can only work
    if the connection goes to the address the policy's resolver gave.
    """
    lookups: list[str] = []

    async def resolver(name: str, port: int) -> Sequence[str]:
        lookups.append(name)
        return ["127.0.0.1"]

    name = f"pinned.invalid:{host.port}"
    fetcher = Fetcher(
        policy=AddressPolicy(allowed_hosts=parse_allowed_hosts([name])),
        limits=LIMITS,
        resolver=resolver,
    )
    try:
        fetched = await fetcher.fetch(f"http://{name}/png", expect=MediaKind.IMAGE)
    finally:
        await fetcher.aclose()
    assert fetched.data == host.png
    assert lookups == ["pinned.invalid"]
    assert host.seen("/png")[-1].host == name


# --- the allowance for named hosts ----------------------------------------------------


async def test_an_allowed_host_is_fetched_and_typed_by_its_bytes(
    host: FileHost, trusting: Fetcher
) -> None:
    fetched = await trusting.fetch(
        host.url_for("/photo.html?type=text/html"), expect=MediaKind.IMAGE
    )
    assert fetched.data == host.png
    assert (fetched.content_type, fetched.extension) == ("image/png", ".png")
    video = await trusting.fetch(host.url_for("/clip.mp4"), expect=MediaKind.VIDEO)
    assert (video.data, video.content_type, video.extension) == (MP4, "video/mp4", ".mp4")


async def test_the_allowance_is_for_the_named_port_only(host: FileHost, trusting: Fetcher) -> None:
    with pytest.raises(FetchRefused):
        await trusting.fetch(f"http://127.0.0.1:{host.port + 1}/png", expect=MediaKind.IMAGE)
    with pytest.raises(FetchRefused):
        await trusting.fetch(f"http://localhost:{host.port}/png", expect=MediaKind.IMAGE)


@pytest.mark.parametrize("path", ["/page.html", "/fake.png"])
async def test_html_is_refused_whatever_it_claims(
    path: str, host: FileHost, trusting: Fetcher
) -> None:
    with pytest.raises(FetchRefused, match="expected image"):
        await trusting.fetch(host.url_for(path), expect=MediaKind.IMAGE)


async def test_an_image_is_not_a_video(host: FileHost, trusting: Fetcher) -> None:
    with pytest.raises(FetchRefused, match="expected video"):
        await trusting.fetch(host.url_for("/png?type=video/mp4"), expect=MediaKind.VIDEO)


# --- redirects -------------------------------------------------------------------


async def test_every_redirect_is_checked(host: FileHost, trusting: Fetcher) -> None:
    targets = [
        f"http://localhost:{host.port}/png",  # the same port by a name not allowed
        f"http://127.0.0.1:{host.port + 1}/png",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO",
    ]
    for target in targets:
        before = len(host.seen("/png"))
        with pytest.raises(FetchRefused):
            await trusting.fetch(host.url_for(f"/redirect?to={target}"), expect=MediaKind.IMAGE)
        assert len(host.seen("/png")) == before
    # A redirect within the allowed host is followed.
    fetched = await trusting.fetch(host.url_for("/redirect?to=/png"), expect=MediaKind.IMAGE)
    assert fetched.data == host.png


async def test_redirects_are_bounded(host: FileHost, trusting: Fetcher) -> None:
    before = len(host.seen("/loop"))
    with pytest.raises(FetchRefused, match="redirects"):
        await trusting.fetch(host.url_for("/loop"), expect=MediaKind.IMAGE)
    assert len(host.seen("/loop")) - before == LIMITS.max_redirects + 1


# --- size, time, status ------------------------------------------------------------------


async def test_a_huge_body_is_cut_off_while_streaming(host: FileHost, trusting: Fetcher) -> None:
    started = time.monotonic()
    with pytest.raises(FetchRefused, match="limit"):
        await trusting.fetch(host.url_for("/huge"), expect=MediaKind.IMAGE)  # 300 MB offered
    assert time.monotonic() - started < 3.0


async def test_a_slow_host_times_out(host: FileHost, trusting: Fetcher) -> None:
    started = time.monotonic()
    with pytest.raises(FetchUnavailable):
        await trusting.fetch(host.url_for("/slow?seconds=3"), expect=MediaKind.IMAGE)
    assert time.monotonic() - started < 2.0


async def test_the_total_deadline_holds(host: FileHost) -> None:
    fetcher = Fetcher(
        policy=AddressPolicy(allowed_hosts=parse_allowed_hosts([host.host_port])),
        limits=FetchLimits(read_timeout=5.0, total_timeout=0.3),
    )
    try:
        with pytest.raises(FetchUnavailable):
            await fetcher.fetch(host.url_for("/slow?seconds=2"), expect=MediaKind.IMAGE)
    finally:
        await fetcher.aclose()


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (404, FetchRefused),
        (410, FetchRefused),
        (403, FetchRefused),
        (500, FetchUnavailable),
        (503, FetchUnavailable),
        (429, FetchUnavailable),
    ],
)
async def test_statuses(
    code: int, error: type[Exception], host: FileHost, trusting: Fetcher
) -> None:
    with pytest.raises(error):
        await trusting.fetch(host.url_for(f"/status/{code}"), expect=MediaKind.IMAGE)


def test_allowed_hosts_parse() -> None:
    assert parse_allowed_hosts(["Files.Example:8080", " cdn.example ", ""]) == {
        "files.example:8080",
        "cdn.example:80",
        "cdn.example:443",
    }
    assert parse_allowed_hosts(["[::1]:9000"]) == {"[::1]:9000"}
    with pytest.raises(ValueError, match="not a host"):
        parse_allowed_hosts(["http://a.example/path"])


async def test_https_goes_to_the_checked_address_and_checks_the_certificate_for_the_name(
    tmp_path: Path,
) -> None:
    """Pinning keeps TLS whole: SNI and the certificate check use the name, not the address."""
    cert, key = self_signed(tmp_path, "files.test")
    trust = ssl.create_default_context(cafile=str(cert))

    async def resolver(name: str, port: int) -> Sequence[str]:
        return ["127.0.0.1"]

    with TlsFileHost(cert, key) as tls:
        names = [f"files.test:{tls.port}", f"other.test:{tls.port}"]
        fetcher = Fetcher(
            policy=AddressPolicy(allowed_hosts=parse_allowed_hosts(names)),
            limits=LIMITS,
            resolver=resolver,
            verify=trust,
        )
        try:
            fetched = await fetcher.fetch(f"https://{names[0]}/png", expect=MediaKind.IMAGE)
            assert fetched.data == tls.png
            assert tls.seen("/png")[-1].host == names[0]
            # The same address under a name the certificate does not carry: refused by TLS.
            with pytest.raises(FetchUnavailable):
                await fetcher.fetch(f"https://{names[1]}/png", expect=MediaKind.IMAGE)
        finally:
            await fetcher.aclose()
