"""Assets' thumbnails and measurements in storage: made with each copy, or filled in later.

A thumbnail is its own object under `thumbnails/` (a WebP, see
`services.library.measurements`), named after its asset's file plus a random part,
so no two assets ever share one by accident.

`prepare` runs before the transaction that records an asset: it measures the bytes
already in memory and stores the thumbnail, so the transaction itself only writes
rows. `fill_missing` completes assets that lack a thumbnail or a measurement
(those back-filled by migration 0011, which has no storage, and those whose
thumbnail failed): `studio thumbnails` runs it to the end, the server at start-up
in the background, a bounded number each time. It is idempotent: an asset already
complete is never read again.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, and_, or_
from sqlmodel import col, select

from services.database import Database
from services.library.measurements import Measurements, measure
from services.library.tables import AssetKind, AssetRow, AssetStatus
from services.media.storage import Storage, StorageError
from services.tables import utcnow

logger = logging.getLogger("studio.library")

THUMBNAIL_PREFIX = "thumbnails/"
THUMBNAIL_TYPE = "image/webp"


@dataclass(frozen=True)
class StoredMedia:
    """Our stored copy of an asset's file: its key, sniffed MIME type, size (bytes),
    measurements, and the key of its stored thumbnail (None if none could be made)."""

    storage_key: str
    mime_type: str
    file_size: int
    measurements: Measurements = field(default_factory=Measurements)
    thumbnail_key: str | None = None


def thumbnail_key_for(storage_key: str) -> str:
    """A new key for a thumbnail of the file at `storage_key`:
    "images/7/12-ab.png" gives "thumbnails/images/7/12-ab-<8 hex>.webp"."""
    stem = storage_key.rsplit(".", 1)[0] if "." in storage_key.rsplit("/", 1)[-1] else storage_key
    return f"{THUMBNAIL_PREFIX}{stem}-{secrets.token_hex(4)}.webp"


async def prepare(
    storage: Storage, storage_key: str, data: bytes, *, mime_type: str, kind: AssetKind
) -> StoredMedia:
    """Measure `data` (stored at `storage_key`) and store its thumbnail.

    Never raises for the file's content or for storing the thumbnail: an asset
    without a thumbnail is better than none (the failure is logged, and
    `fill_missing` tries again later).
    """
    try:
        facts = await measure(data, kind)
    except Exception:  # a scratch file that cannot be written, a thread that died
        logger.exception("%s could not be measured", storage_key)
        facts = Measurements()
    thumbnail_key = await _store_thumbnail(storage, storage_key, facts.thumbnail)
    return StoredMedia(storage_key, mime_type, len(data), facts, thumbnail_key)


async def discard(storage: Storage, media: StoredMedia) -> None:
    """Delete the file and the thumbnail of a copy that was not recorded."""
    await storage.delete(media.storage_key)
    if media.thumbnail_key is not None:
        await storage.delete(media.thumbnail_key)


async def _store_thumbnail(
    storage: Storage, storage_key: str, thumbnail: bytes | None
) -> str | None:
    if thumbnail is None:
        return None
    key = thumbnail_key_for(storage_key)
    try:
        await storage.put(key, thumbnail, content_type=THUMBNAIL_TYPE)
    except (OSError, StorageError) as error:
        logger.warning("the thumbnail of %s could not be stored: %r", storage_key, error)
        return None
    return key


def incomplete() -> ColumnElement[bool]:
    """SQL: READY image and video assets with a file whose thumbnail or measurements
    are missing (for a video: also its duration or fps)."""
    return and_(
        col(AssetRow.kind).in_([AssetKind.IMAGE.value, AssetKind.VIDEO.value]),
        col(AssetRow.status) == AssetStatus.READY.value,
        col(AssetRow.storage_key).is_not(None),
        or_(
            col(AssetRow.thumbnail_key).is_(None),
            col(AssetRow.width).is_(None),
            col(AssetRow.height).is_(None),
            col(AssetRow.file_size).is_(None),
            and_(
                col(AssetRow.kind) == AssetKind.VIDEO.value,
                or_(col(AssetRow.duration).is_(None), col(AssetRow.fps).is_(None)),
            ),
        ),
    )


@dataclass
class FillReport:
    """What `fill_missing` did: assets looked at, completed (every fact found),
    still incomplete (a fact could not be found), and whose file is missing."""

    seen: int = 0
    completed: int = 0
    incomplete: int = 0
    missing: int = 0


async def fill_missing(
    db: Database, storage: Storage, *, batch: int = 20, limit: int | None = None
) -> FillReport:
    """Fill thumbnail, file size, width, height, duration and fps of the assets that
    lack them (`incomplete`), `batch` at a time in id order, at most `limit` (None:
    all). Each asset is read from storage, measured in a worker thread, and written
    in a transaction of its own, only the facts still missing (a concurrent edit is
    kept); an asset deleted meanwhile leaves no thumbnail behind.

    One pass never reads an asset twice, so files that cannot be measured do not
    hold it up; a later pass tries them again.
    """
    report = FillReport()
    after = 0
    while limit is None or report.seen < limit:
        size = batch if limit is None else min(batch, limit - report.seen)
        async with db.session() as session:
            found: Sequence[AssetRow] = (
                await session.exec(
                    select(AssetRow)
                    .where(incomplete(), col(AssetRow.id) > after)
                    .order_by(col(AssetRow.id))
                    .limit(size)
                )
            ).all()
        if not found:
            break
        for asset in found:
            assert asset.id is not None
            after = asset.id
            report.seen += 1
            await _fill_one(db, storage, asset, report)
    return report


async def _fill_one(db: Database, storage: Storage, asset: AssetRow, report: FillReport) -> None:
    key = asset.storage_key
    assert key is not None
    assert asset.id is not None
    try:
        data = b"".join([chunk async for chunk in storage.read(key)])
    except (OSError, StorageError) as error:
        logger.warning("asset %d: its file %s cannot be read: %r", asset.id, key, error)
        report.missing += 1
        return
    kind = AssetKind(asset.kind)
    facts = await measure(data, kind)
    thumbnail_key = None
    if asset.thumbnail_key is None:
        thumbnail_key = await _store_thumbnail(storage, key, facts.thumbnail)
    async with db.transaction() as session:
        row = await session.get(AssetRow, asset.id, with_for_update=True)
        if row is None or row.storage_key != key:
            if thumbnail_key is not None:
                await storage.delete(thumbnail_key)
            return
        keep = thumbnail_key is None or row.thumbnail_key is None
        if thumbnail_key is not None and keep:
            row.thumbnail_key = thumbnail_key
        if row.file_size is None:
            row.file_size = len(data)
        row.width = row.width if row.width is not None else facts.width
        row.height = row.height if row.height is not None else facts.height
        if kind is AssetKind.VIDEO:
            row.duration = row.duration if row.duration is not None else facts.duration
            row.fps = row.fps if row.fps is not None else facts.fps
        row.updated_at = utcnow()
        done = row.thumbnail_key is not None and None not in (row.width, row.height)
        if kind is AssetKind.VIDEO:
            done = done and None not in (row.duration, row.fps)
    if thumbnail_key is not None and not keep:
        await storage.delete(thumbnail_key)  # another pass stored one meanwhile
    if done:
        report.completed += 1
    else:
        report.incomplete += 1


async def fill_in_background(db: Database, storage: Storage, *, limit: int) -> None:
    """`fill_missing` for at most `limit` assets, for the server's start-up task: logs
    what it did, and logs (never raises) what went wrong, so a bad file or a lost
    connection never stops the server. Cancelled with the server."""
    try:
        report = await fill_missing(db, storage, limit=limit)
    except Exception:
        logger.exception("filling assets' thumbnails and measurements stopped")
        return
    if report.seen:
        logger.info(
            "assets' thumbnails and measurements: %d completed, %d still incomplete, "
            "%d without their file (of %d; `studio thumbnails` does the rest)",
            report.completed,
            report.incomplete,
            report.missing,
            report.seen,
        )
