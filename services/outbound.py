"""Every URL this server downloads goes through here: one outbound-fetch policy.

Used for provider outputs (the generation engine copies them into storage),
client-given image URLs (copied in the background after `addShotImages`) and the
built-in emulator's downloads of prediction inputs. The rules, after the OWASP
Server-Side Request Forgery Prevention Cheat Sheet
(https://cheatsheetseries.owasp.org/cheatsheets/Server_Side_Request_Forgery_Prevention_Cheat_Sheet.html):

- http and https only; no user:password@ in the URL.
- The host name is resolved once; every address it resolves to must be public
  (`is_public`: not loopback, private, link-local, multicast, reserved,
  unspecified, shared or a cloud metadata address, with IPv4 addresses embedded
  in IPv6 ones checked as IPv4). The connection then goes to that checked
  address, with the name kept in the Host header and the TLS SNI and
  certificate check, so a second DNS answer (rebinding) cannot move it.
  Decimal, octal and hex spellings of an address resolve like any name and are
  checked as what they resolve to.
- Redirects are followed by hand, at most `max_redirects`, each one checked
  the same way.
- `allowed_hosts` (`host` or `host:port`) skips the address check for named
  hosts: the provider's and the emulator's own file hosts. It is given to the
  fetcher of provider outputs only, never to the one of client-given URLs.
- A size cap enforced while streaming, connect and read timeouts, and a total
  deadline.
- What arrived is sniffed from its bytes (`filetype`: PNG, JPEG, WebP, GIF;
  MP4, QuickTime, WebM) and must be the kind expected; the stored content type
  is the sniffed one, never the URL's or the server's claim.

Why our own code rather than a package: the SSRF-guarding wrappers of httpx on
PyPI (drawbridge 0.1, httpx-secure, egressweave 0.1) are months old with one
maintainer each, and none offers a per-purpose host allowance with ports;
safehttpx resolves through Google DNS, which this network cannot reach.

Errors (all carry `reason`, for the log only; never show it to a client):

    FetchError              base
    +-- FetchRefused        permanent: the policy refused it (scheme, address,
    |   |                   size, type, redirects) or the server answered 4xx
    |   +-- FetchGone       404 or 410: the file is not (or no longer) there
    +-- FetchUnavailable    may work later: DNS or network failure, timeout,
                            5xx or 429

    fetcher = Fetcher(policy=AddressPolicy(), limits=FetchLimits())
    fetched = await fetcher.fetch("https://example.org/a.png", expect=MediaKind.IMAGE)
    fetched.data, fetched.content_type, fetched.extension
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import filetype
import httpx

logger = logging.getLogger("studio.outbound")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

MAX_PORT = 65535

# Addresses clouds serve instance metadata on, refused even where a network
# would call them routable (most are also link-local, private or shared space).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (classic)
        "fd00:ec2::254",  # AWS over IPv6
    )
)
# RFC 6052 NAT64 prefixes carry an IPv4 address in their last 32 bits.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class MediaKind(enum.StrEnum):
    """What a download must turn out to be."""

    IMAGE = "image"
    VIDEO = "video"


# Sniffed MIME type -> file extension; the storage derives the type back from it.
ACCEPTED: dict[MediaKind, dict[str, str]] = {
    MediaKind.IMAGE: {
        "image/png": ".png",
        "image/jpeg": ".jpg",
        "image/webp": ".webp",
        "image/gif": ".gif",
    },
    MediaKind.VIDEO: {
        "video/mp4": ".mp4",
        "video/quicktime": ".mov",
        "video/webm": ".webm",
    },
}


class FetchError(Exception):
    """A download did not happen; `reason` says why, for the server's log."""

    transient = False

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FetchRefused(FetchError):
    """Refused for good: trying again cannot help."""


class FetchGone(FetchRefused):
    """The server says the file is not there (404, 410)."""


class FetchUnavailable(FetchError):
    """Failed this time; a later try may work."""

    transient = True


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, Teredo, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in network for network in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """Whether a server may connect to `address` on a client's behalf.

    Only globally reachable unicast addresses (IANA special-purpose registries,
    as Python's `ipaddress.is_global` encodes them), minus the metadata ones.
    Registries: https://www.iana.org/assignments/iana-ipv4-special-registry/ and
    https://www.iana.org/assignments/iana-ipv6-special-registry/
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None and not is_public(embedded):
            return False
    return not (
        address in METADATA_ADDRESSES
        or not address.is_global
        or address.is_multicast
        or address.is_loopback
        or address.is_link_local
        or address.is_private
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
    )


def host_key(host: str, port: int) -> str:
    """How `allowed_hosts` names an origin: `host:port`, lower case, IPv6 in brackets."""
    host = host.lower().rstrip(".")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_allowed_hosts(entries: Iterable[str]) -> frozenset[str]:
    """`host` or `host:port` entries (port 1-65535) as a set of keys; a bare host
    allows 80 and 443.

    `ValueError` for an entry that is not one; its message does not quote the entry.
    """
    keys: set[str] = set()
    for number, raw in enumerate(entries, 1):
        entry = raw.strip().lower()
        if not entry:
            continue
        problem = ValueError(f"entry {number} is not a host or host:port (port 1-65535)")
        try:
            url = httpx.URL(f"http://{entry}")
        except httpx.InvalidURL:
            raise problem from None
        if url.path not in ("", "/") or url.query or url.fragment or url.userinfo:
            raise problem
        if not url.host or (url.port is not None and not 1 <= url.port <= MAX_PORT):
            raise problem
        if url.port is None:
            keys.update({host_key(url.host, 80), host_key(url.host, 443)})
        else:
            keys.add(host_key(url.host, url.port))
    return frozenset(keys)


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """Every address `host` resolves to, by the system's resolver (getaddrinfo), as text.

    FetchRefused for a name that does not exist (EAI_NONAME) or is not a valid
    host name; FetchUnavailable for any other resolver failure (may be temporary).
    """
    loop = asyncio.get_running_loop()
    try:
        found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        if error.errno == socket.EAI_NONAME:  # no such name: asking again will not help
            raise FetchRefused(f"{host} does not exist ({error})") from error
        raise FetchUnavailable(f"{host} does not resolve ({error})") from error
    except UnicodeError as error:
        raise FetchRefused(f"{host} is not a valid host name ({error})") from error
    return [str(info[4][0]) for info in found]


@dataclass(frozen=True)
class AddressPolicy:
    """Which hosts may be reached: public addresses, plus `allowed_hosts` by name."""

    allowed_hosts: frozenset[str] = frozenset()

    async def pin(self, host: str, port: int, resolver: Resolver) -> str:
        """The one checked address to connect to for `host:port`; `FetchRefused` if none.

        Every address the name resolves to must pass: a name that also points
        inside is refused, whichever answer a later lookup would give. The first
        address is the one returned. FetchUnavailable when the name resolves to no
        address; the resolver's own errors pass through.
        """
        answers = await resolver(host, port)
        addresses = []
        for answer in answers:
            try:
                # Scope ids ("fe80::1%eth0") say where, not what: check the address.
                addresses.append(ipaddress.ip_address(answer.split("%", 1)[0]))
            except ValueError:
                raise FetchRefused(f"{host} resolved to {answer!r}, not an address") from None
        if not addresses:
            raise FetchUnavailable(f"{host} resolved to no address")
        if host_key(host, port) not in self.allowed_hosts:
            refused = [a for a in addresses if not is_public(a)]
            if refused:
                raise FetchRefused(f"{host}:{port} resolves to a non-public address {refused[0]}")
        return str(addresses[0])


@dataclass(frozen=True)
class FetchLimits:
    """Bounds of one download. Sizes in bytes, times in seconds."""

    max_image_bytes: int = 25 * 1024 * 1024
    max_video_bytes: int = 200 * 1024 * 1024
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    total_timeout: float = 120.0
    max_redirects: int = 5

    def max_bytes(self, kind: MediaKind | None) -> int:
        """The size cap in bytes for a download of `kind` (None: the video cap, the larger)."""
        if kind is MediaKind.IMAGE:
            return self.max_image_bytes
        return self.max_video_bytes


@dataclass(frozen=True)
class Fetched:
    """What a download brought: the bytes, their sniffed type, and its file extension."""

    data: bytes
    content_type: str
    extension: str


def sniff(data: bytes, expect: MediaKind) -> tuple[str, str]:
    """The MIME type and extension of `data`, by its magic numbers.

    `FetchRefused` if it is not of the `expect` kind.
    """
    guessed = filetype.guess_mime(data[:8192])
    extension = ACCEPTED[expect].get(guessed or "")
    if extension is None:
        raise FetchRefused(f"expected {expect.value}, got {guessed or 'unrecognised bytes'}")
    assert guessed is not None
    return guessed, extension


class _PinnedTransport(httpx.AsyncBaseTransport):
    """Connects each request to its host's checked address, keeping the name for Host and TLS."""

    def __init__(
        self, policy: AddressPolicy, resolver: Resolver, verify: ssl.SSLContext | bool
    ) -> None:
        self._policy = policy
        self._resolver = resolver
        # No keep-alive: a pooled connection is keyed by address, and must not
        # carry a request for another name than the one it was opened (and SNI'd) for.
        self._inner = httpx.AsyncHTTPTransport(
            verify=verify, limits=httpx.Limits(max_keepalive_connections=0), retries=0
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        host = url.raw_host.decode("ascii")
        port = url.port or (443 if url.scheme == "https" else 80)
        address = await self._policy.pin(host, port, self._resolver)
        extensions = dict(request.extensions)
        if url.scheme == "https":
            extensions["sni_hostname"] = host
        pinned = httpx.Request(
            request.method,
            url.copy_with(host=address),
            headers=request.headers,  # Host was set from the name when the request was built
            stream=request.stream,
            extensions=extensions,
        )
        return await self._inner.handle_async_request(pinned)

    async def aclose(self) -> None:
        await self._inner.aclose()


def check_url(url: str) -> httpx.URL:
    """The URL, parsed, if its form is one we may fetch; `FetchRefused` otherwise."""
    try:
        parsed = httpx.URL(url)
        host = parsed.host  # decoded lazily: invalid punycode (xn--zz) raises only here
    except (httpx.InvalidURL, TypeError, ValueError) as error:  # idna.IDNAError is a ValueError
        raise FetchRefused(f"not a URL ({error})") from error
    if parsed.scheme not in ("http", "https"):
        raise FetchRefused(f"scheme {parsed.scheme or 'none'!r} is not http(s)")
    if not host:
        raise FetchRefused("the URL has no host")
    if parsed.userinfo:
        raise FetchRefused("the URL carries credentials")
    return parsed


class Fetcher:
    """Downloads under one `AddressPolicy` and `FetchLimits`; see the module docstring.

    One per purpose and process; `aclose()` it when done.
    """

    def __init__(
        self,
        *,
        policy: AddressPolicy,
        limits: FetchLimits,
        resolver: Resolver = system_resolver,
        verify: ssl.SSLContext | bool = True,
        user_agent: str = "storyboard-studio",
    ) -> None:
        """`resolver` turns a name into addresses (getaddrinfo); `verify` checks TLS
        certificates (True: the system's trust store via certifi; or a context)."""
        self.policy = policy
        self.limits = limits
        self._client = httpx.AsyncClient(
            transport=_PinnedTransport(policy, resolver, verify),
            follow_redirects=False,
            trust_env=False,  # a proxy from the environment would connect for us, unchecked
            timeout=httpx.Timeout(
                limits.read_timeout, connect=limits.connect_timeout, pool=limits.connect_timeout
            ),
            headers={"user-agent": user_agent, "accept-encoding": "identity"},
        )

    async def aclose(self) -> None:
        """Close the HTTP client; the fetcher cannot be used after."""
        await self._client.aclose()

    async def fetch(
        self, url: str, *, expect: MediaKind | None, max_bytes: int | None = None
    ) -> Fetched:
        """The bytes at `url`, checked: `FetchRefused` or `FetchUnavailable` otherwise.

        With `expect`, the bytes must sniff as that kind; without it (the
        emulator, which decodes what it gets) the type is left unchecked and the
        result says `application/octet-stream` with no extension. `max_bytes`
        overrides the limits' cap for `expect`. An empty body is FetchRefused;
        the whole download, redirects included, must end within
        `limits.total_timeout` seconds (FetchUnavailable otherwise).
        """
        cap = max_bytes if max_bytes is not None else self.limits.max_bytes(expect)
        try:
            async with asyncio.timeout(self.limits.total_timeout):
                data = await self._get(url, cap)
        except TimeoutError as error:
            raise FetchUnavailable(
                f"took longer than {self.limits.total_timeout}s in all"
            ) from error
        if not data:
            raise FetchRefused("the body is empty")
        if expect is None:
            return Fetched(data, "application/octet-stream", "")
        content_type, extension = sniff(data, expect)
        return Fetched(data, content_type, extension)

    async def _get(self, url: str, cap: int) -> bytes:
        current = check_url(url)
        for _ in range(self.limits.max_redirects + 1):
            request = self._client.build_request("GET", current)
            try:
                response = await self._client.send(request, stream=True)
            except httpx.TimeoutException as error:
                raise FetchUnavailable(f"{type(error).__name__} fetching {current}") from error
            except httpx.HTTPError as error:
                reason = f"{type(error).__name__} fetching {current}: {error}"
                raise FetchUnavailable(reason) from error
            try:
                if response.is_redirect:
                    location = response.headers.get("location", "")
                    try:
                        current = check_url(str(current.join(location)))
                    except httpx.InvalidURL as error:
                        raise FetchRefused(f"bad redirect {location!r}") from error
                    continue
                if response.status_code == 429 or response.status_code >= 500:
                    raise FetchUnavailable(f"{current} answered HTTP {response.status_code}")
                if response.status_code in (404, 410):
                    raise FetchGone(f"{current} answered HTTP {response.status_code}")
                if response.status_code != 200:
                    raise FetchRefused(f"{current} answered HTTP {response.status_code}")
                return await _read_capped(response, cap)
            finally:
                await response.aclose()
        raise FetchRefused(f"more than {self.limits.max_redirects} redirects")


async def _read_capped(response: httpx.Response, cap: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise FetchRefused(f"declares {declared} bytes; the limit is {cap}")
    chunks: list[bytes] = []
    received = 0
    try:
        # Raw bytes: we asked for no encoding, and decoding a compressed body
        # could grow one small chunk far past the cap.
        async for chunk in response.aiter_raw():
            received += len(chunk)
            if received > cap:
                raise FetchRefused(f"larger than the limit of {cap} bytes")
            chunks.append(chunk)
    except httpx.TimeoutException as error:
        raise FetchUnavailable(f"{type(error).__name__} reading the body") from error
    except httpx.HTTPError as error:
        raise FetchUnavailable(f"{type(error).__name__} reading the body: {error}") from error
    return b"".join(chunks)
