"""File storage with expiry, for outputs and uploads, served as a CDN would serve them.

Outputs and uploads are small (a clip is a few hundred kB) and live an hour or a
day. Each is a file in a temporary directory of its store (removed with the
store, or when the process exits), so `/files/...` can go out through
Starlette's `FileResponse`, which implements byte ranges, If-Range, ETag and
Last-Modified (RFC 9110) as Replicate's delivery network does.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StoredFile:
    """One stored file; `expires_at` is a `time.time()` instant."""

    key: str
    path: Path
    content_type: str
    size: int
    created_at: float
    expires_at: float

    @property
    def data(self) -> bytes:
        """The file's bytes, read from disk (OSError if it was deleted meanwhile)."""
        return self.path.read_bytes()


class FileStore:
    """Files by key; an expired file is gone (a lookup returns None) even before a sweep."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._files: dict[str, StoredFile] = {}
        # Cleaned up when the store is collected or the process exits.
        self._directory = tempfile.TemporaryDirectory(prefix="replicate-emulator-")
        self._root = Path(self._directory.name)

    def put(self, key: str, data: bytes, content_type: str, ttl_seconds: float) -> StoredFile:
        """Store `data` under `key` (any text: the file is named by the key's hash)."""
        now = self._clock()
        path = self._root / hashlib.sha256(key.encode()).hexdigest()
        temporary = path.with_suffix(".part")
        temporary.write_bytes(data)
        temporary.replace(path)  # a reader never sees half a file
        stored = StoredFile(key, path, content_type, len(data), now, now + ttl_seconds)
        self._files[key] = stored
        return stored

    def get(self, key: str) -> StoredFile | None:
        """The file under `key`, or None if there is none or it has expired (it is
        deleted then)."""
        stored = self._files.get(key)
        if stored is None:
            return None
        if stored.expires_at <= self._clock():
            self.delete(key)
            return None
        return stored

    def delete(self, key: str) -> bool:
        """Delete the file under `key`; whether there was one."""
        stored = self._files.pop(key, None)
        if stored is None:
            return False
        stored.path.unlink(missing_ok=True)
        return True

    def sweep(self) -> int:
        """Delete every expired file; return how many went."""
        now = self._clock()
        expired = [key for key, stored in self._files.items() if stored.expires_at <= now]
        for key in expired:
            self.delete(key)
        return len(expired)

    def __len__(self) -> int:
        return len(self._files)
