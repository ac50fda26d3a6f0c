"""Where generated media lives: our own copies, served by signed, expiring URLs.

Replicate deletes the outputs of API predictions after an hour
(https://replicate.com/docs/topics/predictions/data-retention), so every output
is copied here as soon as it exists. `Storage` is the interface; `LocalStorage`
keeps files under a directory with aiofiles (an S3-compatible one can follow).
`MediaLinks` signs `/media/<key>` URLs with the server's secret; a link stays
the same for a while (expiry is rounded up to a bucket), so browsers and CDNs
can cache it.

Serving goes through `Storage.locate`: a local store names a file that `/media`
sends itself (Range, conditional requests and all); an object store would name
its own signed URL instead, and `/media` redirects there after checking ours.

    storage = LocalStorage(Path(".studio/media"))
    await storage.put("images/7/12.webp", data, content_type="image/webp")
    url = MediaLinks(secret, "http://127.0.0.1:8000").url_for("images/7/12.webp")
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import math
import mimetypes
import os
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

import aiofiles
import aiofiles.os

from services.decoding import decimal
from services.media.sniffing import SNIFF_BYTES, sniff

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")
MAX_KEY_LENGTH = 400
CHUNK = 64 * 1024
MAX_EXPIRES = 10**12
"""Far beyond any link we sign (year 33658); only bounds what `decimal` will parse."""
_SIGNATURE = re.compile(r"[0-9a-f]{32}")
SHORT_TTL, SHORT_BUCKET = 540, 60
"""Seconds a short link (`MediaLinks.short_url_for`) lives at least, and its rounding:
at most 600 in all."""


class StorageError(Exception):
    """A storage key is malformed (see `check_key`); the message quotes the key.

    Failures of the disk itself are the OSError they are.
    """


def check_key(key: str) -> str:
    """`key` itself if it is a valid storage key; StorageError otherwise.

    A key is a relative path of plain segments (ASCII letters, digits, `.`, `_`,
    `-`; each starting with a letter or digit), at most 400 characters: no `..`,
    no absolute path, so no key reaches outside the store's root.
    """
    if len(key) > MAX_KEY_LENGTH or not _KEY.fullmatch(key) or ".." in key.split("/"):
        raise StorageError(f"not a valid storage key: {key!r}")
    return key


@dataclass(frozen=True)
class StoredObject:
    """A stored object: its key, its size in bytes and its MIME type."""

    key: str
    size: int
    content_type: str


@dataclass(frozen=True)
class LocalFile:
    """A stored object as a file on this machine, to send as it is.

    `media_type` is what its first bytes show it to be (image/*, video/* or
    audio/*), or None when they show nothing we serve.
    """

    path: Path
    media_type: str | None
    stat: os.stat_result


@dataclass(frozen=True)
class Redirect:
    """A stored object that its store serves itself, at this (signed, expiring) URL."""

    url: str


Location = LocalFile | Redirect


class Storage(Protocol):
    """Where media objects are kept, by key (see `check_key`); every method raises
    StorageError for a malformed key."""

    async def put(self, key: str, data: bytes, *, content_type: str) -> StoredObject:
        """Store `data` under `key`, replacing what was there; what was stored."""
        ...

    async def stat(self, key: str) -> StoredObject | None:
        """The object's size and type, or None if there is no such object."""
        ...

    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes start..end (byte offsets, both inclusive; None: to the end), in chunks."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object; nothing happens if there is none."""
        ...

    async def locate(self, key: str, *, expires_in: int) -> Location | None:
        """Where to serve the object from (a URL valid for at least `expires_in` seconds),
        or None if there is no such object."""
        ...


class LocalStorage:
    """Files under one directory; writes land atomically (temp file, then rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put(self, key: str, data: bytes, *, content_type: str) -> StoredObject:
        """Write `data` to a temporary file, fsync it, then rename it over `key`'s file,
        so a reader sees the old bytes or the new, never half; creates directories."""
        path = self._path(key)
        await aiofiles.os.makedirs(path.parent, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        async with aiofiles.open(temporary, "wb") as handle:
            await handle.write(data)
            await handle.flush()
            await aiofiles.os.wrap(os.fsync)(handle.fileno())
        await aiofiles.os.replace(temporary, path)
        return StoredObject(key=key, size=len(data), content_type=content_type)

    async def stat(self, key: str) -> StoredObject | None:
        """Size in bytes and the type the key's extension implies (`content_type_of`);
        None if there is no such file."""
        path = self._path(key)
        try:
            size = (await aiofiles.os.stat(path)).st_size
        except FileNotFoundError:
            return None
        return StoredObject(key=key, size=size, content_type=content_type_of(key))

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes start..end (inclusive; None: to the end) in chunks of at most 64 KiB.

        FileNotFoundError (when iterated) if there is no such file.
        """
        async with aiofiles.open(self._path(key), "rb") as handle:
            await handle.seek(start)
            remaining = None if end is None else end - start + 1
            while remaining is None or remaining > 0:
                chunk = await handle.read(CHUNK if remaining is None else min(CHUNK, remaining))
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    async def delete(self, key: str) -> None:
        """Remove the file; a missing one is not an error."""
        with contextlib.suppress(FileNotFoundError):
            await aiofiles.os.remove(self._path(key))

    async def locate(self, key: str, *, expires_in: int) -> LocalFile | None:
        """The file of `key`, typed by its first bytes (cheap: one short read).

        Sniffing on every request rather than trusting the name or the type
        given on `put` means a file can never be served as something its
        bytes are not. Raises StorageError for a malformed key.
        """
        path = self._path(key)
        try:
            async with aiofiles.open(path, "rb") as handle:
                head = await handle.read(SNIFF_BYTES)
                stat = await aiofiles.os.wrap(os.fstat)(handle.fileno())
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        return LocalFile(path=path, media_type=sniff(head), stat=stat)


def content_type_of(key: str) -> str:
    """The MIME type a key's extension implies (`.webp` known on every platform);
    `application/octet-stream` when it implies none."""
    guessed, _ = mimetypes.guess_type(key)
    if key.endswith(".webp"):
        return "image/webp"
    return guessed or "application/octet-stream"


# Signed links kept by each MediaLinks (see `MediaLinks.url_for`).
LINK_CACHE_SIZE = 65_536


class MediaLinks:
    """Signed, expiring `/media/...` URLs.

    secret: the server's secret (a key for links is derived from it); public_url:
    the server's base URL as clients reach it; ttl: seconds a link stays valid at
    least; bucket: seconds its expiry is rounded up to, so the same key gives the
    same URL for that long. A link is `?expires=<unix seconds>&signature=<32 hex>`,
    the signature the first 128 bits of HMAC-SHA256 over "{key}\n{expires}".
    """

    def __init__(self, secret: str, public_url: str, *, ttl: int = 6 * 3600, bucket: int = 3600):
        self._secret = hashlib.sha256(b"media:" + secret.encode()).digest()
        self.public_url = public_url.rstrip("/")
        self.ttl = ttl
        self.bucket = bucket
        # The same (key, expiry) always gives the same link, and an expiry stands for a
        # whole bucket: a storyboard read again within the hour signs nothing anew. At
        # most this many links are kept (about 200 bytes each).
        self._link = functools.lru_cache(maxsize=LINK_CACHE_SIZE)(self._make_link)

    def _signature(self, key: str, expires: int) -> str:
        message = f"{key}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    def url_for(self, key: str, *, now: float | None = None) -> str:
        """The signed URL of `key`, valid `ttl` to `ttl + bucket` seconds from `now`
        (unix seconds; default: the clock). Does not check that the object exists."""
        moment = time.time() if now is None else now
        expires = math.ceil((moment + self.ttl) / self.bucket) * self.bucket
        return self._link(expires, key)

    def signer(self, *, now: float | None = None) -> Callable[[str], str]:
        """`url_for` with the clock read once, for a response that signs many keys:
        key -> the same URL `url_for(key, now=now)` gives."""
        moment = time.time() if now is None else now
        expires = math.ceil((moment + self.ttl) / self.bucket) * self.bucket
        return functools.partial(self._link, expires)

    def _make_link(self, expires: int, key: str) -> str:
        signature = self._signature(key, expires)
        return f"{self.public_url}/media/{quote(key)}?expires={expires}&signature={signature}"

    def short_url_for(
        self, key: str, *, now: float | None = None, not_after: float | None = None
    ) -> str:
        """A signed URL of `key` that expires within 10 minutes (9 to 10 minutes from
        `now`): for media reached through a share or a PUBLIC level rather than team
        membership, so a revoked or expired share ends with its links. `not_after`
        (unix seconds): the access ends by itself then (a share's expiry), so the link
        expires no later than that second."""
        moment = time.time() if now is None else now
        expires = math.ceil((moment + SHORT_TTL) / SHORT_BUCKET) * SHORT_BUCKET
        if not_after is not None:
            expires = min(expires, math.floor(not_after))
        signature = self._signature(key, expires)
        return f"{self.public_url}/media/{quote(key)}?expires={expires}&signature={signature}"

    def verify(self, key: str, expires: str, signature: str, *, now: float | None = None) -> bool:
        """Whether the link is ours and unexpired. Fails closed: any malformed key,
        expiry or signature (any length, any characters) is simply False."""
        moment = decimal(expires, high=MAX_EXPIRES)
        if moment is None or moment < (time.time() if now is None else now):
            return False
        if not _SIGNATURE.fullmatch(signature):
            return False
        try:
            check_key(key)
        except StorageError:
            return False
        return hmac.compare_digest(self._signature(key, moment), signature)
