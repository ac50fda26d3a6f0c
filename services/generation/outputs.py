"""Copying outputs into our storage: provider outputs and imported images.

Replicate deletes outputs after an hour, so each is copied as soon as it exists,
through the one outbound policy (`services.outbound`), a bounded number of times
(fresh ones first, failed ones after a pause); the stored type is the one sniffed
from the bytes. A row is COMPLETE only once its copy is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import or_
from sqlmodel import col, select

from services.generation.kinds import output_destination
from services.generation.statuses import Row, advance, load_row, set_status, status_of
from services.library import assets as library_assets
from services.library import thumbnails
from services.library.tables import AssetKind, AssetRow
from services.outbound import (
    FetchError,
    FetchGone,
    FetchUnavailable,
    MediaKind,
)
from services.storyboard import workflow
from services.storyboard.projects import lock_project_row
from services.tables import (
    GenerationStatus,
    ShotImageRow,
    ShotRow,
    StoryboardSelectionRow,
    utcnow,
)

# The one text an imported image's failed copy shows, whatever went wrong: a
# client must not learn which ports or hosts answer (the cause goes to the log).
IMPORT_COPY_FAILED = (
    "This image could not be copied from its URL into the studio's storage; "
    "it cannot be refined or animated. Add it again from a public http(s) URL."
)

if TYPE_CHECKING:
    from services.database import Database
    from services.generation.engine import EngineSettings
    from services.media.storage import Storage
    from services.outbound import Fetcher

logger = logging.getLogger("studio.generation")


class OutputCopying:
    """The engine's copying of outputs (a part of `GenerationEngine`)."""

    # Set by GenerationEngine.__init__.
    db: Database
    storage: Storage
    settings: EngineSettings
    output_fetcher: Fetcher
    import_fetcher: Fetcher
    _copying_outputs: asyncio.Semaphore
    _copying_imports: asyncio.Semaphore
    _copies_running: set[tuple[str, int]]

    if TYPE_CHECKING:  # defined by GenerationEngine

        def _spawn(self, coroutine: Any) -> None: ...

    async def copy_outputs(
        self,
        image_ids: Sequence[int | None] | None = None,
        selection_ids: Sequence[int | None] | None = None,
        asset_ids: Sequence[int | None] | None = None,
        *,
        wait: bool = True,
    ) -> None:
        """Copy finished outputs and imported images into storage: the given rows, or a batch
        (of each table whose ids are None).

        Rows never tried come first, then those whose last failed try is at least
        `copy_retry_seconds` old, oldest first: a copy that keeps failing waits its
        turn and never holds up the others. Provider outputs and imports have a
        `copy_concurrency` each, so slow client URLs never delay generated work.
        With `wait=False` (the sweep) the copies run in the background.
        """
        retry_before = utcnow() - timedelta(seconds=self.settings.copy_retry_seconds)
        image_outputs = col(ShotImageRow.provider_output).is_not(None) & (
            ShotImageRow.status == GenerationStatus.PROCESSING
        )
        imports = (
            col(ShotImageRow.imported)
            & (ShotImageRow.status == GenerationStatus.COMPLETE)
            & col(ShotImageRow.storage_key).is_(None)
            & col(ShotImageRow.image_url).is_not(None)
            & col(ShotImageRow.error).is_(None)
        )
        selection_outputs = col(StoryboardSelectionRow.provider_output).is_not(None) & (
            StoryboardSelectionRow.animation_status == GenerationStatus.PROCESSING
        )
        asset_outputs = col(AssetRow.provider_output).is_not(None) & (
            AssetRow.generation_status == GenerationStatus.PROCESSING
        )
        found: list[tuple[type[Row], int, bool]] = []
        async with self.db.session() as session:
            for table, waiting, imported, wanted in (
                (ShotImageRow, image_outputs, False, image_ids),
                (StoryboardSelectionRow, selection_outputs, False, selection_ids),
                (AssetRow, asset_outputs, False, asset_ids),
                (ShotImageRow, imports, True, image_ids),
            ):
                query = (
                    select(table.id)
                    .where(
                        waiting,
                        or_(
                            col(table.copy_attempts) == 0,
                            col(table.checked_at).is_(None),
                            col(table.checked_at) <= retry_before,
                        ),
                    )
                    .order_by(col(table.copy_attempts), col(table.checked_at), col(table.id))
                    .limit(self.settings.batch)
                )
                if wanted is not None:
                    query = query.where(col(table.id).in_([i for i in wanted if i]))
                found.extend(
                    (table, int(row_id or 0), imported) for row_id in await session.exec(query)
                )
        copies = [self._copy_guarded(table, row_id, imported) for table, row_id, imported in found]
        if wait:
            await asyncio.gather(*copies)
        else:
            for copy in copies:
                self._spawn(copy)

    async def _copy_guarded(self, table: type[Row], row_id: int, imported: bool) -> None:
        # A webhook's copy and a sweep's may pick the same row: one download is enough.
        running = (table.__tablename__, row_id)
        if running in self._copies_running:
            return
        self._copies_running.add(running)
        try:
            async with self._copying_imports if imported else self._copying_outputs:
                await self._copy(table, row_id)
        except Exception as error:
            # One row's fault (storage full, a bug) must not stop the others' copies, and
            # counts as a failed try, so a row that always fails ends after COPY_MAX_TRIES.
            logger.exception("copying %s %d failed", table.__tablename__, row_id)
            with contextlib.suppress(Exception):
                await self._copy_failed(table, row_id, FetchUnavailable(repr(error)))
        finally:
            self._copies_running.discard(running)

    async def _copy(self, table: type[Row], row_id: int) -> None:
        async with self.db.session() as session:
            row = await load_row(session, table, row_id)
            if row is None:
                return
            imported = isinstance(row, ShotImageRow) and row.imported
            if imported:
                assert isinstance(row, ShotImageRow)
                if row.storage_key or not row.image_url or row.error:
                    return
                url = row.image_url
            elif row.provider_output and status_of(row) is GenerationStatus.PROCESSING:
                url = row.provider_output[0]
            else:
                return
            key_base, expect = output_destination(row, row_id)
            if isinstance(row, ShotImageRow):
                shot = await session.get(ShotRow, row.shot_id)
                project_id = shot.project_id if shot is not None else None
            elif isinstance(row, StoryboardSelectionRow):
                project_id = row.project_id
            else:
                project_id = None  # an asset's regeneration writes no project row
        fetcher = self.import_fetcher if imported else self.output_fetcher
        try:
            fetched = await fetcher.fetch(url, expect=expect)
        except FetchError as error:
            logger.warning(
                "copy of %s %d from %r failed: %s",
                table.__tablename__,
                row_id,
                _loggable(url),
                error.reason,
            )
            await self._copy_failed(table, row_id, error, source=None if imported else url)
            return
        # The key's extension is the sniffed type's: storage derives the served type from it.
        key = f"{key_base}-{secrets.token_hex(4)}{fetched.extension}"
        await self.storage.put(key, fetched.data, content_type=fetched.content_type)
        # Measured and thumbnailed from the bytes in hand, before the transaction that
        # records the copy and its library asset together.
        media = await thumbnails.prepare(
            self.storage,
            key,
            fetched.data,
            mime_type=fetched.content_type,
            kind=AssetKind.IMAGE if expect is MediaKind.IMAGE else AssetKind.VIDEO,
        )
        async with self.db.transaction() as session:
            # The project first, as every writer of a project does (the same order, so
            # no deadlock): a finished animation may advance its status, and the new
            # asset's key check on it would otherwise wait on a writer holding it while
            # that writer waits for this row. Then the row, read again under the lock.
            project = None if project_id is None else await lock_project_row(session, project_id)
            row = await load_row(session, table, row_id, lock=True)
            if row is None:
                await thumbnails.discard(self.storage, media)
                return
            if isinstance(row, ShotImageRow) and row.imported:
                if row.storage_key or status_of(row) is not GenerationStatus.COMPLETE:
                    await thumbnails.discard(self.storage, media)
                    return
                row.storage_key = key  # `image_url` stays: where it came from
                row.updated_at = utcnow()
                await library_assets.record_copy(session, row, media)
                return
            if not _waits_for(row, url):
                # Discarded or started again while it downloaded: not this row's output.
                await thumbnails.discard(self.storage, media)
                return
            if isinstance(row, ShotImageRow):
                row.storage_key = key
                row.image_url = None
            elif isinstance(row, StoryboardSelectionRow):
                row.video_storage_key = key
                row.animated_video_url = None
            row.provider_output = None
            set_status(row, GenerationStatus.COMPLETE)
            await library_assets.record_copy(session, row, media)  # an asset takes the file
            if project is not None and isinstance(row, StoryboardSelectionRow):
                await workflow.advance(session, project)

    async def _copy_failed(
        self, table: type[Row], row_id: int, error: FetchError, *, source: str | None = None
    ) -> None:
        """Count a failed copy; give up at once if it cannot work, or after the last try.

        `source`: the provider output that failed to copy; a row no longer waiting
        for it (its generation discarded or started again) is left alone.
        """
        async with self.db.transaction() as session:
            row = await load_row(session, table, row_id)
            if row is None or (source is not None and not _waits_for(row, source)):
                return
            row.copy_attempts += 1
            row.checked_at = utcnow()
            if error.transient and row.copy_attempts < self.settings.copy_max_tries:
                return
            if isinstance(row, ShotImageRow) and row.imported:
                if not row.storage_key:
                    row.error = IMPORT_COPY_FAILED
                    row.updated_at = utcnow()
                return
            if status_of(row) is GenerationStatus.PROCESSING:
                row.provider_output = None
                advance(row, GenerationStatus.FAILED, error=_copy_error(error, row.copy_attempts))

    async def _finish(
        self,
        table: type[Row],
        row_id: int,
        status: GenerationStatus,
        *,
        attempt: str | None,
        error: str | None = None,
    ) -> None:
        """Move the row forward to `status` if it is still in `attempt` (see `advance`)."""
        async with self.db.transaction() as session:
            row = await load_row(session, table, row_id, lock=True)
            if row is not None and row.attempt_id == attempt:
                advance(row, status, error=error)


def _waits_for(row: Row, url: str) -> bool:
    """Whether the row is PROCESSING with the provider output at `url` still to copy.

    Each prediction's outputs have URLs of their own, so this holds only for the
    attempt whose prediction made them.
    """
    return (
        status_of(row) is GenerationStatus.PROCESSING
        and row.provider_output is not None
        and row.provider_output[:1] == [url]
    )


def _copy_error(error: FetchError, tries: int) -> str:
    """What a client sees of an output that could not be stored (no addresses, no ports)."""
    if isinstance(error, FetchGone):
        return "The provider no longer has this output."
    if error.transient:
        return f"The provider's output could not be downloaded after {tries} tries."
    return (
        "The provider's output could not be stored: it is not a downloadable image or "
        "video file of an accepted type and size."
    )


def _loggable(url: str) -> str:
    """`url` as it may be logged: its scheme, host, port and path only. A query, a
    fragment or user info can hold a secret (our own signed links' signatures, a
    client's token in an address it gave), and logs are read by more people than the
    rows are."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<an unparsable URL>"
    host = f"[{host}]" if ":" in host else host
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))
