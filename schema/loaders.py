"""Per-request DataLoaders: each relation of the graph costs one statement per request level.

Made fresh for every operation (and every subscription event), never kept on a
connection, so they never serve stale rows. Every batch of one operation reads
through that operation's `ReadSession`: one database session, whose connection a
query holds from its first read to its end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from functools import cached_property
from typing import Any, TypeVar

from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession
from strawberry.dataloader import DataLoader

from services.accounts import invitations
from services.database import Database
from services.library import access as library_access
from services.library import assets as library_assets
from services.library import collection_pages, sharing
from services.library import usage as library_usage
from services.library.collection_pages import CollectionStats, ItemsKey, ViewerKey
from services.library.tables import AssetRow, AssetShareRow, CollectionItemRow, CollectionRow
from services.storyboard import lookups, shot_images, workflow
from services.storyboard.workflow import Progress
from services.tables import (
    ProjectRow,
    SceneRow,
    ShotImageRow,
    ShotRow,
    StoryboardSelectionRow,
    TeamInvitationRow,
    TeamMemberRow,
    TeamRow,
    UserRow,
)

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")
Row = TypeVar("Row", bound=SQLModel)


class SharedLoader(DataLoader[K, V]):
    """A DataLoader whose awaiters never cancel each other.

    Strawberry's `load` hands every caller of one key the same future. graphql-core
    cancels a field's pending siblings when an error nulls their parent, and a
    cancelled awaiter of a bare future cancels the future itself: another field
    waiting on the same key (under another root field, say) then got CancelledError
    and the whole operation failed instead of answering. Each caller here awaits its
    own shield of the shared future (`asyncio.shield`), so only it is cancelled.
    """

    def load(self, key: K) -> Awaitable[V]:
        return asyncio.shield(super().load(key))


async def _close(session: AsyncSession) -> None:
    """Close the session, giving its connection back to the pool, to the end even when
    the operation is cancelled meanwhile (its client left); the cancellation is raised
    once it has closed. A close cut short mid-rollback left the pool to discard the
    connection, which SQLAlchemy logs as an error with a traceback (its own
    `async with` of a session closes the same way)."""
    closing = asyncio.ensure_future(session.close())
    cancelled: asyncio.CancelledError | None = None
    while not closing.done():
        try:
            await asyncio.shield(closing)
        except asyncio.CancelledError as error:
            if closing.cancelled():
                raise
            cancelled = error
    closing.result()
    if cancelled is not None:
        raise cancelled


class ReadSession:
    """The database session of one GraphQL operation, for its reads (its writes use
    `Database.transaction()`, as ever).

    `run(read)` calls `read(session)` on the operation's one session, made at the
    first read; the connection is checked out at its first statement. With `hold`
    (set for queries by `schema.context.OneReadSession`) the connection is kept
    until `release()`, so a query checks out one connection however many batches
    its loaders send; without it (mutations, subscription events, signing in) it
    goes back to the pool after each read, so nothing holds a connection while it
    waits for a write's or for the next event. Either way a read costs only its
    statements (see `services.database`).

    graphql-core resolves sibling fields concurrently, but one connection runs one
    statement at a time: reads take turns (an asyncio lock), each holding the
    session for the whole of `read`. A `read` must therefore not itself wait for
    another read of the same operation (a DataLoader's): that would wait forever.
    The readers here (the loaders' fetch functions, the token check) only send
    statements; a `read` that calls `run` again directly raises RuntimeError.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._session: AsyncSession | None = None
        self._lock = asyncio.Lock()
        self._reading: asyncio.Task[Any] | None = None
        self.hold = False
        # How many blocks of this operation use another connection of the pool now
        # (`lent`): while any does, no connection is held between reads.
        self._lent = 0

    async def run(self, read: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """`read(session)`'s result; whatever it raises propagates (and the
        connection is given back)."""
        if self._reading is not None and self._reading is asyncio.current_task():
            raise RuntimeError("a read of this operation waits for another of its reads")
        async with self._lock:
            if self._session is None:
                self._session = self._db.read_session()
            session = self._session
            self._reading = asyncio.current_task()
            done = False
            try:
                result = await read(session)
                done = True
            finally:
                self._reading = None
                if not (done and self.hold and not self._lent):
                    # Back to the pool, and the rows read so far forgotten; the
                    # session too (an idle subscription's context keeps none).
                    self._session = None
                    await _close(session)
            return result

    @asynccontextmanager
    async def lent(self) -> AsyncIterator[None]:
        """A block in which the operation uses another connection of the pool (a
        `Database.session()` or `transaction()`, which enter it through
        `services.database.HELD_READ_CONNECTION`): the held connection is given back
        on entry and none is held until the block ends, so the operation never holds
        one while it waits for the pool (a wait that, with every connection held so,
        would never end). Reads in the block still run, each on a connection
        checked out for it."""
        self._lent += 1
        try:
            if self._reading is None or self._reading is not asyncio.current_task():
                await self.release()
            yield
        finally:
            self._lent -= 1

    async def release(self) -> None:
        """Give the connection back to the pool (and forget the rows read); the next
        read checks out another."""
        async with self._lock:
            session, self._session = self._session, None
            if session is not None:
                await _close(session)


class Loaders:
    """Every DataLoader of one operation, each made the first time it is used.

    Subscriptions make a fresh `Loaders` for every message to every subscriber, so
    making only the loaders a message needs matters.
    """

    def __init__(self, reads: ReadSession) -> None:
        self._reads = reads

    @cached_property
    def user(self) -> DataLoader[int, UserRow | None]:
        return self._rows(UserRow)

    @cached_property
    def team(self) -> DataLoader[int, TeamRow | None]:
        return self._rows(TeamRow)

    @cached_property
    def project(self) -> DataLoader[int, ProjectRow | None]:
        return self._rows(ProjectRow)

    @cached_property
    def scene(self) -> DataLoader[int, SceneRow | None]:
        return self._rows(SceneRow)

    @cached_property
    def shot(self) -> DataLoader[int, ShotRow | None]:
        return self._rows(ShotRow)

    @cached_property
    def image(self) -> DataLoader[int, ShotImageRow | None]:
        return self._rows(ShotImageRow)

    @cached_property
    def selection(self) -> DataLoader[int, StoryboardSelectionRow | None]:
        return self._rows(StoryboardSelectionRow)

    @cached_property
    def scenes_of_project(self) -> DataLoader[int, list[SceneRow]]:
        return self._grouped(lookups.scenes_for_projects, list)

    @cached_property
    def shots_of_scene(self) -> DataLoader[int, list[ShotRow]]:
        return self._grouped(lookups.shots_for_scenes, list)

    @cached_property
    def images_of_shot(self) -> DataLoader[int, list[ShotImageRow]]:
        return self._grouped(shot_images.images_for_shots, list)

    @cached_property
    def selection_of_shot(self) -> DataLoader[int, StoryboardSelectionRow | None]:
        return self._grouped(lookups.selections_for_shots, lambda: None)

    @cached_property
    def storyboard_of_project(self) -> DataLoader[int, list[StoryboardSelectionRow]]:
        return self._grouped(lookups.selections_for_projects, list)

    @cached_property
    def members_of_team(self) -> DataLoader[int, list[TeamMemberRow]]:
        return self._grouped(lookups.members_for_teams, list)

    @cached_property
    def memberships_of_user(self) -> DataLoader[int, list[TeamMemberRow]]:
        return self._grouped(lookups.memberships_for_users, list)

    @cached_property
    def pending_invitation(self) -> DataLoader[int, TeamInvitationRow | None]:
        """An invitation by id while it is unexpired; None once it has expired."""
        return self._grouped(invitations.pending_by_id, lambda: None)

    @cached_property
    def invitations_of_team(self) -> DataLoader[int, list[TeamInvitationRow]]:
        return self._grouped(invitations.pending_for_teams, list)

    @cached_property
    def progress_of_project(self) -> DataLoader[int, Progress]:
        return self._grouped(workflow.progress_for_projects, Progress)

    @cached_property
    def asset(self) -> DataLoader[int, AssetRow | None]:
        return self._rows(AssetRow)

    @cached_property
    def collection(self) -> DataLoader[int, CollectionRow | None]:
        return self._rows(CollectionRow)

    @cached_property
    def asset_share(self) -> DataLoader[tuple[int, int], AssetShareRow | None]:
        """The share of (asset id, user id), expired or not; None if there is none."""
        return self._batch(library_access.shares_for, lambda: None)

    # --- collections ---
    @cached_property
    def collection_item(self) -> DataLoader[int, CollectionItemRow | None]:
        return self._rows(CollectionItemRow)

    @cached_property
    def collection_stats(self) -> DataLoader[tuple[int, ViewerKey], CollectionStats]:
        """A collection's item count and duration as one viewer sees them."""
        return self._batch(collection_pages.stats_for, CollectionStats)

    @cached_property
    def collection_items(self) -> DataLoader[ItemsKey, list[CollectionItemRow]]:
        """A page of a collection's items, as one viewer sees them."""
        return self._batch(collection_pages.items_for, list)

    # --- sharing ---
    @cached_property
    def share(self) -> DataLoader[int, AssetShareRow | None]:
        """A share by id, expired or not."""
        return self._rows(AssetShareRow)

    @cached_property
    def shares_of_asset(self) -> DataLoader[int, list[AssetShareRow]]:
        """Every share of an asset, expired or not, oldest first."""
        return self._grouped(sharing.shares_of_assets, list)

    @cached_property
    def image_thumbnail(self) -> DataLoader[int, str | None]:
        """A shot image's stored thumbnail key (its asset's), or None."""
        return self._batch(library_assets.image_thumbnails, lambda: None)

    # --- edits ---
    @cached_property
    def projects_using_asset(self) -> DataLoader[int, int]:
        """How many distinct projects' storyboards use each asset's image."""
        return self._batch(library_usage.projects_using, int)

    def _batch(
        self,
        fetch: Callable[[AsyncSession, Sequence[K]], Awaitable[dict[K, V]]],
        missing: Callable[[], V],
    ) -> DataLoader[K, V]:
        reads = self._reads  # not `self`: a closure over self would make every Loaders a cycle

        async def load(keys: list[K]) -> list[V]:
            found = await reads.run(lambda session: fetch(session, keys))
            return [found[key] if key in found else missing() for key in keys]

        return SharedLoader(load_fn=load)

    def _rows(self, table: type[Row]) -> DataLoader[int, Row | None]:
        async def fetch(session: AsyncSession, keys: Sequence[int]) -> dict[Any, Row | None]:
            return dict(await lookups.by_ids(session, table, keys))

        return self._batch(fetch, lambda: None)

    def _grouped(
        self,
        fetch: Callable[[AsyncSession, Sequence[int]], Awaitable[dict[int, V]]],
        missing: Callable[[], V],
    ) -> DataLoader[int, V]:
        return self._batch(fetch, missing)
