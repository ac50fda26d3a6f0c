"""Files uploaded to the emulator's `POST /v1/files`, kept until they expire."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.replicate.emulator.predictions import iso, new_prediction_id, utc_now
from services.replicate.emulator.store import FileStore


@dataclass
class Upload:
    """A file uploaded to `POST /v1/files` (https://replicate.com/docs/reference/http#files.create).

    size in bytes; sha256 and md5 as lowercase hex of the bytes; created_at and
    expires_at aware UTC datetimes; base_url the emulator's origin, for the file's URL.
    """

    id: str
    name: str
    content_type: str
    size: int
    sha256: str
    md5: str
    metadata: dict[str, Any]
    created_at: datetime
    expires_at: datetime
    base_url: str

    @property
    def store_key(self) -> str:
        """Where the bytes are in the emulator's `FileStore`: `uploads/<id>`."""
        return f"uploads/{self.id}"

    def to_json(self) -> dict[str, Any]:
        """The file object Replicate's files API answers with: id, name, content_type,
        size (bytes), etag (the MD5), checksums {sha256, md5}, metadata, created_at and
        expires_at (ISO 8601 UTC, `Z`) and `urls.get`, the file's API URL
        (https://replicate.com/docs/reference/http#files.get)."""
        return {
            "id": self.id,
            "name": self.name,
            "content_type": self.content_type,
            "size": self.size,
            "etag": self.md5,
            "checksums": {"sha256": self.sha256, "md5": self.md5},
            "metadata": self.metadata,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "urls": {"get": f"{self.base_url}/v1/files/{self.id}"},
        }


class Uploads:
    """The uploads by id; their bytes live in the emulator's `FileStore`, with its expiry."""

    def __init__(self, files: FileStore) -> None:
        self._files = files
        self._by_id: dict[str, Upload] = {}

    def add(
        self,
        data: bytes,
        *,
        filename: str,
        content_type: str,
        metadata: dict[str, Any],
        base_url: str,
        ttl: float,
    ) -> Upload:
        """Store `data` for `ttl` seconds; the new upload."""
        now = utc_now()
        upload = Upload(
            id=new_prediction_id(),
            name=filename,
            content_type=content_type,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
            metadata=metadata,
            created_at=now,
            expires_at=datetime.fromtimestamp(now.timestamp() + ttl, tz=now.tzinfo),
            base_url=base_url,
        )
        self._files.put(upload.store_key, data, content_type, ttl)
        self._by_id[upload.id] = upload
        return upload

    def get(self, file_id: str) -> Upload | None:
        """The upload, or None if unknown or expired."""
        upload = self._by_id.get(file_id)
        if upload is None:
            return None
        if self._files.get(upload.store_key) is None:  # expired
            del self._by_id[file_id]
            return None
        return upload

    def delete(self, file_id: str) -> bool:
        """Forget an upload and its bytes; False if there was none."""
        upload = self._by_id.pop(file_id, None)
        if upload is None:
            return False
        self._files.delete(upload.store_key)
        return True

    def current(self) -> list[Upload]:
        """Every upload that has not expired, newest first."""
        uploads = [upload for file_id in list(self._by_id) if (upload := self.get(file_id))]
        uploads.sort(key=lambda upload: upload.created_at, reverse=True)
        return uploads

    def sweep(self, now: float) -> None:
        """Forget uploads expired by `now` (seconds since the epoch)."""
        for file_id in [
            key for key, upload in self._by_id.items() if upload.expires_at.timestamp() <= now
        ]:
            del self._by_id[file_id]
