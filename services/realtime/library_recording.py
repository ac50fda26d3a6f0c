"""Recording library events: what each write transaction changed in a team's assets.

The flush hook of `services.realtime.recording` hands every asset and asset share
it sees created, changed or deleted to `note`; `record`, called by
`recording.record` at the end of the transaction (after the project events, so every
writer takes its counter rows in one order), numbers them per team in
`library_events`, taking the team's `library_event_counters` row last, and returns
the messages to publish once the transaction commits. See
`services.realtime.library_events`.

Not events: bookkeeping columns (`events.BOOKKEEPING`, the generation ones), the
`views` counter (every open of an asset bumps it: it would flood every member's feed
while telling a grid nothing it needs at once), the constellation position (a layout
rewrites thousands of rows at a time; the map is read with `constellation`) and the
links to the shot image or selection an asset came from (no field shows them).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import insert, inspect
from sqlalchemy.orm import Session
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.library.tables import (
    AssetRow,
    AssetShareRow,
    LibraryEventCounterRow,
    LibraryEventRow,
)
from services.realtime.counters import take_numbers
from services.realtime.events import BOOKKEEPING, CREATED, DELETED, UPDATED
from services.realtime.library_events import (
    ASSET_SHARED,
    LibraryEvent,
    library_channel,
)
from services.tables import utcnow

_PENDING = "studio.library_events"

QUIET = BOOKKEEPING | {
    "views",
    "constellation_x",
    "constellation_y",
    "constellation_cluster",
    "constellation_basis",
    "position_pinned",
    "shot_image_id",
    "selection_id",
    "generation_status",
    "prediction_id",
}
"""Columns of assets and shares whose change alone is not a library event (see the module)."""

TRACKED: tuple[type, ...] = (AssetRow, AssetShareRow)


@dataclass
class _Change:
    """A noted change: of an asset (`recipient_id` None) or of a share of it."""

    asset_id: int
    change: str
    team_id: int | None
    share_level: str | None
    creator_id: int | None
    recipient_id: int | None = None
    fields: list[str] = field(default_factory=list)

    def merge(self, later: _Change) -> _Change | None:
        """This change followed by a later one to the same row, as one change (or none)."""
        if later.change == DELETED:
            return None if self.change == CREATED else later
        if self.change != CREATED:
            self.fields.extend(name for name in later.fields if name not in self.fields)
        # The asset as it is at the end counts: its level and creator then.
        self.team_id = later.team_id or self.team_id
        self.share_level = later.share_level or self.share_level
        self.creator_id = later.creator_id if later.creator_id is not None else self.creator_id
        return self


def _changed_fields(row: Any) -> list[str]:
    state = inspect(row)
    return [
        attribute.key
        for attribute in state.mapper.column_attrs
        if attribute.key not in QUIET and state.attrs[attribute.key].history.has_changes()
    ]


def note(session: Session, row: Any, change: str) -> bool:
    """Note `row`'s change if it is an asset or an asset share (True), else False.

    Called by the flush hook (`recording.note_flush`) with CREATED, UPDATED or DELETED.
    """
    if not isinstance(row, TRACKED):
        return False
    fields = _changed_fields(row) if change == UPDATED else []
    if change == UPDATED and not fields:
        return True
    if isinstance(row, AssetRow):
        assert row.id is not None  # after a flush, every row has its id
        key: tuple[Any, ...] = ("asset", row.id)
        noted = _Change(row.id, change, row.team_id, row.share_level, row.creator_id, None, fields)
    else:
        assert isinstance(row, AssetShareRow)
        key = ("share", row.asset_id, row.user_id)
        noted = _Change(row.asset_id, change, None, None, None, row.user_id, fields)
    pending: dict[tuple[Any, ...], _Change] = session.info.setdefault(_PENDING, {})
    earlier = pending.pop(key, None)
    merged = noted if earlier is None else earlier.merge(noted)
    if merged is not None:
        pending[key] = merged
    return True


def forget(session: Session) -> None:
    """Drop what was noted: the transaction rolled back (`recording.forget_pending`)."""
    session.info.pop(_PENDING, None)


async def record(session: AsyncSession) -> list[tuple[str, dict[str, Any]]]:
    """Number and store this transaction's library changes; the (channel, message) pairs
    to publish once it commits. Call after the last flush (`recording.record` does)."""
    pending: dict[tuple[Any, ...], _Change] = session.info.pop(_PENDING, {})
    if not pending:
        return []
    assets = {key[1]: c for key, c in pending.items() if key[0] == "asset"}
    unknown = {c.asset_id for c in pending.values() if c.recipient_id is not None} - assets.keys()
    stored: dict[int, tuple[int, str, int | None]] = {}
    if unknown:
        found = await session.exec(
            select(AssetRow.id, AssetRow.team_id, AssetRow.share_level, AssetRow.creator_id).where(
                col(AssetRow.id).in_(unknown)
            )
        )
        stored = {int(i or 0): (team, level, creator) for i, team, level, creator in found}
    by_team: dict[int, list[LibraryEvent]] = {}
    now = utcnow()
    for c in pending.values():
        if c.recipient_id is not None:  # a share: the asset's team, level and creator
            asset = assets.get(c.asset_id)
            if asset is not None:
                c.team_id, c.share_level, c.creator_id = (
                    asset.team_id,
                    asset.share_level,
                    asset.creator_id,
                )
            elif c.asset_id in stored:
                c.team_id, c.share_level, c.creator_id = stored[c.asset_id]
        if c.team_id is None:
            continue  # a share of an asset gone without our seeing it: nothing to tell
        kind = ASSET_SHARED if c.recipient_id is not None else f"ASSET_{c.change}"
        by_team.setdefault(c.team_id, []).append(
            LibraryEvent(
                team_id=c.team_id,
                sequence=0,  # numbered below
                kind=kind,
                asset_id=c.asset_id,
                at=now,
                changes=tuple(c.fields),
                share_level=c.share_level,
                creator_id=c.creator_id,
                recipient_id=c.recipient_id,
            )
        )
    outbox: list[tuple[str, dict[str, Any]]] = []
    for team_id in sorted(by_team):  # one order for every writer: no lock cycles
        unnumbered = by_team[team_id]
        first = (
            await take_numbers(session, LibraryEventCounterRow, "team_id", team_id, len(unnumbered))
            - len(unnumbered)
            + 1
        )
        numbered = [replace(e, sequence=first + offset) for offset, e in enumerate(unnumbered)]
        await session.exec(
            insert(LibraryEventRow),
            params=[
                {
                    "team_id": e.team_id,
                    "sequence": e.sequence,
                    "kind": e.kind,
                    "node_type": "Asset",
                    "node_id": e.asset_id,
                    "changes": list(e.changes) or None,
                    "share_level": e.share_level,
                    "creator_id": e.creator_id,
                    "recipient_id": e.recipient_id,
                    "at": e.at,
                }
                for e in numbered
            ],
        )
        outbox.extend((library_channel(team_id), e.message()) for e in numbered)
    return outbox
