"""In-memory file storage with expiry, and HTTP byte ranges over it.

Outputs and uploads are small (a clip is a few hundred kB) and live an hour or a
day, so memory is the simplest store that is fast and leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class StoredFile:
    """One stored file; `expires_at` is a `time.time()` instant."""

    key: str
    data: bytes
    content_type: str
    created_at: float
    expires_at: float
    etag: str = field(init=False)

    def __post_init__(self) -> None:
        self.etag = hashlib.md5(self.data, usedforsecurity=False).hexdigest()

    @property
    def size(self) -> int:
        return len(self.data)


class FileStore:
    """Files by key; an expired file is gone (a lookup returns None) even before a sweep."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._files: dict[str, StoredFile] = {}

    def put(self, key: str, data: bytes, content_type: str, ttl_seconds: float) -> StoredFile:
        now = self._clock()
        stored = StoredFile(key, data, content_type, now, now + ttl_seconds)
        self._files[key] = stored
        return stored

    def get(self, key: str) -> StoredFile | None:
        stored = self._files.get(key)
        if stored is None:
            return None
        if stored.expires_at <= self._clock():
            del self._files[key]
            return None
        return stored

    def delete(self, key: str) -> bool:
        return self._files.pop(key, None) is not None

    def sweep(self) -> int:
        """Delete every expired file; return how many went."""
        now = self._clock()
        expired = [key for key, stored in self._files.items() if stored.expires_at <= now]
        for key in expired:
            del self._files[key]
        return len(expired)

    def __len__(self) -> int:
        return len(self._files)


class RangeNotSatisfiable(ValueError):
    """The Range header asks for bytes the file does not have (answer 416)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive (first, last) byte of a single `bytes=` range, or None to send it all.

    Multiple ranges and malformed headers are answered with the whole file, which
    RFC 9110 allows (a server may ignore Range); a well-formed range that starts past
    the end raises `RangeNotSatisfiable`.
    """
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash:
        return None
    first_text, last_text = first_text.strip(), last_text.strip()
    if not (first_text.isdigit() or first_text == "") or not (
        last_text.isdigit() or last_text == ""
    ):
        return None
    if first_text == "":
        if last_text == "":
            return None
        suffix = int(last_text)  # "bytes=-N": the last N bytes
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return (max(0, size - suffix), size - 1)
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if first >= size:
        raise RangeNotSatisfiable
    if last < first:
        return None
    return (first, min(last, size - 1))
