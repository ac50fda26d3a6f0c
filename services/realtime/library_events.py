"""Library events: each change of a team's assets, numbered per team, and who may receive it.

The library's counterpart of `services.realtime.events` (see it for recording,
ordering and publishing, which work the same way): `library_recording` notes
changes of assets and their shares and numbers them per team in `library_events`
(with `library_event_counters`, taken last); they are published after the commit on
`library:<team id>`; `LibraryStream` lets `feed.follow_stream` follow them.

Kinds: ASSET_CREATED, ASSET_UPDATED (with the changed columns), ASSET_DELETED, and
ASSET_SHARED (a share of the asset made, changed or revoked), plus SNAPSHOT, where a
feed starts. Each event keeps the asset's share level and creator as they were when
it was recorded, and an ASSET_SHARED event the user the share is to.

Who receives an event (`reaches`) is decided when it is sent, with the current time
and the current rows, by the one access rule (`services.library.access.permission`):
the library feed is a team's, followed by its members only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.accounts.access import Actor
from services.library.access import ADMIN, permission
from services.library.tables import (
    AssetRow,
    AssetShareRow,
    LibraryEventCounterRow,
    LibraryEventRow,
    ShareLevel,
)
from services.realtime.bus import Message
from services.realtime.events import SNAPSHOT
from services.realtime.feed import Stream
from services.tables import utcnow

ASSET_CREATED = "ASSET_CREATED"
ASSET_UPDATED = "ASSET_UPDATED"
ASSET_DELETED = "ASSET_DELETED"
ASSET_SHARED = "ASSET_SHARED"
KINDS = (SNAPSHOT, ASSET_CREATED, ASSET_UPDATED, ASSET_DELETED, ASSET_SHARED)
"""Every kind a library feed sends (`schema.library_events.LibraryEventKind` names them)."""


def library_channel(team_id: int) -> str:
    """The bus channel of a team's library events, `library:<id>` (the bus prefixes its
    namespace): every `LibraryEvent.message` of the team is published on it."""
    return f"library:{team_id}"


@dataclass(frozen=True)
class LibraryEvent:
    """One numbered change in a team's library (or, with kind SNAPSHOT, the point a feed
    starts at; its `asset_id` is then 0).

    `share_level` and `creator_id`: the asset's when the change was recorded;
    `recipient_id`: for ASSET_SHARED, the user the share is to; `changes`: for
    ASSET_UPDATED the columns that changed, for ASSET_SHARED the share's.
    """

    team_id: int
    sequence: int
    kind: str
    asset_id: int
    at: datetime
    changes: tuple[str, ...] = ()
    share_level: str | None = None
    creator_id: int | None = None
    recipient_id: int | None = None

    def message(self) -> dict[str, Any]:
        """The event as the bus carries it: a JSON-ready dict with keys team, sequence,
        kind, asset, changes (a list), level, creator, recipient and at (ISO 8601 with its
        UTC offset). `from_message` reads it back."""
        return {
            "team": self.team_id,
            "sequence": self.sequence,
            "kind": self.kind,
            "asset": self.asset_id,
            "changes": list(self.changes),
            "level": self.share_level,
            "creator": self.creator_id,
            "recipient": self.recipient_id,
            "at": self.at.isoformat(),
        }

    @classmethod
    def from_message(cls, message: Message) -> LibraryEvent:
        """The event a `message()` dict describes (as decoded from the bus).

        Raises KeyError for a missing key, ValueError or TypeError for a value of the
        wrong shape."""
        return cls(
            team_id=int(message["team"]),
            sequence=int(message["sequence"]),
            kind=str(message["kind"]),
            asset_id=int(message["asset"]),
            at=datetime.fromisoformat(message["at"]),
            changes=tuple(str(name) for name in message.get("changes") or ()),
            share_level=None if message.get("level") is None else str(message["level"]),
            creator_id=_optional_int(message.get("creator")),
            recipient_id=_optional_int(message.get("recipient")),
        )

    @classmethod
    def from_row(cls, row: LibraryEventRow) -> LibraryEvent:
        """The event a stored `library_events` row holds (NULL `changes` reads as ())."""
        return cls(
            team_id=row.team_id,
            sequence=row.sequence,
            kind=row.kind,
            asset_id=row.node_id,
            at=row.at,
            changes=tuple(row.changes or ()),
            share_level=row.share_level,
            creator_id=row.creator_id,
            recipient_id=row.recipient_id,
        )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


async def last_sequence(session: AsyncSession, team_id: int) -> int:
    """The number of the team's last library event; 0 before the first (or no such team)."""
    found = await session.get(LibraryEventCounterRow, team_id)
    return found.last_sequence if found is not None else 0


async def events_after(
    session: AsyncSession, team_id: int, after: int, *, limit: int = 500
) -> list[LibraryEvent]:
    """Up to `limit` stored library events of the team numbered above `after`, in order.
    No access check, and no filtering per viewer (`reaches` does that)."""
    rows = await session.exec(
        select(LibraryEventRow)
        .where(col(LibraryEventRow.team_id) == team_id, col(LibraryEventRow.sequence) > after)
        .order_by(col(LibraryEventRow.sequence))
        .limit(limit)
    )
    return [LibraryEvent.from_row(row) for row in rows]


class LibraryStream(Stream[LibraryEvent]):
    """One team's library events, for `feed.follow_stream`. It has no end event: a
    member who leaves, or a team that goes, ends the feed by the access check."""

    what = "team"

    def __init__(self, team_id: int) -> None:
        self.team_id = team_id

    @property
    def channel(self) -> str:
        return library_channel(self.team_id)

    async def last_sequence(self, session: AsyncSession) -> int:
        return await last_sequence(session, self.team_id)

    async def first_kept(self, session: AsyncSession) -> int | None:
        query = select(func.min(LibraryEventRow.sequence)).where(
            col(LibraryEventRow.team_id) == self.team_id
        )
        first: int | None = (await session.exec(query)).one()
        return first

    async def events_after(
        self, session: AsyncSession, after: int, limit: int
    ) -> list[LibraryEvent]:
        return await events_after(session, self.team_id, after, limit=limit)

    def snapshot(self, sequence: int) -> LibraryEvent:
        return LibraryEvent(self.team_id, sequence, SNAPSHOT, 0, utcnow())

    def from_message(self, message: Message) -> LibraryEvent:
        return LibraryEvent.from_message(message)


_SHARED_LEVELS = (ShareLevel.TEAM.value, ShareLevel.PUBLIC.value)


def reaches(
    actor: Actor,
    event: LibraryEvent,
    asset: AssetRow | None,
    share: AssetShareRow | None,
    *,
    now: datetime | None = None,
) -> bool:
    """Whether `event` of the actor's team library is sent to them now.

    asset: the event's asset as it is now (None once deleted); share: the actor's share
    of it (None if none). The rule, with `permission` at `now` (default: the clock):

    - SNAPSHOT: always (the feed checked membership already);
    - ASSET_CREATED / ASSET_UPDATED: if they may see the asset now (not once it is
      deleted: its ASSET_DELETED follows). Also an update that changed the share level
      to PRIVATE reaches every member of the team (all could see it until then: its
      level was TEAM or PUBLIC), so their grids drop it, even when read late; the
      asset itself stays hidden from them;
    - ASSET_DELETED: by the level stored with it: TEAM or PUBLIC, every member;
      PRIVATE, its creator only;
    - ASSET_SHARED: the share's recipient, and whoever holds ADMIN on the asset now.

    The actor must be a member of the event's team (the feed makes sure of it).
    """
    if event.kind == SNAPSHOT:
        return True
    if event.kind == ASSET_DELETED:
        return event.share_level in _SHARED_LEVELS or event.creator_id == actor.user_id
    granted = permission(actor, asset, share, now=now) if asset is not None else None
    if event.kind == ASSET_SHARED:
        return event.recipient_id == actor.user_id or (
            granted is not None and granted.allows(ADMIN)
        )
    if granted is not None and granted.permission is not None:
        return True
    went_private = "share_level" in event.changes and event.share_level == ShareLevel.PRIVATE
    return event.kind == ASSET_UPDATED and went_private


async def prune(session: AsyncSession, *, older_than: timedelta) -> int:
    """Delete library events older than the retention; a team's counter keeps its place,
    so a cursor from before is refused with CURSOR_EXPIRED. The number deleted."""
    result = await session.exec(
        delete(LibraryEventRow).where(col(LibraryEventRow.at) < utcnow() - older_than)
    )
    return int(result.rowcount or 0)
