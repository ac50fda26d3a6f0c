"""Team events: what a team's projects list and team page show, numbered per team.

The team's counterpart of `services.realtime.events` (see it for recording,
ordering and publishing, which work the same way): `team_recording` notes the
changes of a team's projects, members and invitations and numbers them per team in
`team_events` (with `team_event_counters`, taken last); they are published after the
commit on `team:<team id>`; `TeamStream` lets `feed.follow_stream` follow them.

Kinds, plus SNAPSHOT, where a feed starts:

- PROJECT_CREATED, PROJECT_DELETED;
- PROJECT_UPDATED: anything a projects list shows changed: the project's title,
  status or workflow version, or its progress (scenes or shots made or deleted, a
  shot moved to another scene, a master image selected or unselected, a clip
  finished or undone). One event per project per transaction, whatever it changed
  (`changes` names each: columns, and `progress`);
- MEMBER_JOINED, MEMBER_LEFT (removed, or left), MEMBER_ROLE_CHANGED (no mutation
  changes a role yet; a change to the row is still told);
- INVITATION_CREATED, INVITATION_ACCEPTED, INVITATION_REVOKED (revoked, or its maker
  removed from the team), INVITATION_EXPIRED (deleted by housekeeping once expired).

Members receive every event, except the invitation ones, which go to the team's
owners and admins only, as the invitations themselves do (`reaches`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.accounts.access import MANAGERS, Actor
from services.realtime.bus import Message
from services.realtime.events import SNAPSHOT
from services.realtime.feed import Stream
from services.tables import TeamEventCounterRow, TeamEventRow, utcnow

PROJECT_CREATED = "PROJECT_CREATED"
PROJECT_UPDATED = "PROJECT_UPDATED"
PROJECT_DELETED = "PROJECT_DELETED"
MEMBER_JOINED = "MEMBER_JOINED"
MEMBER_LEFT = "MEMBER_LEFT"
MEMBER_ROLE_CHANGED = "MEMBER_ROLE_CHANGED"
INVITATION_CREATED = "INVITATION_CREATED"
INVITATION_ACCEPTED = "INVITATION_ACCEPTED"
INVITATION_REVOKED = "INVITATION_REVOKED"
INVITATION_EXPIRED = "INVITATION_EXPIRED"
KINDS = (
    SNAPSHOT,
    PROJECT_CREATED,
    PROJECT_UPDATED,
    PROJECT_DELETED,
    MEMBER_JOINED,
    MEMBER_LEFT,
    MEMBER_ROLE_CHANGED,
    INVITATION_CREATED,
    INVITATION_ACCEPTED,
    INVITATION_REVOKED,
    INVITATION_EXPIRED,
)
"""Every kind a team feed sends (`schema.team_events.TeamEventKind` names them)."""

INVITATION_KINDS = frozenset(
    {INVITATION_CREATED, INVITATION_ACCEPTED, INVITATION_REVOKED, INVITATION_EXPIRED}
)
GONE = frozenset({PROJECT_DELETED, INVITATION_ACCEPTED, INVITATION_REVOKED, INVITATION_EXPIRED})
"""Kinds whose object no longer exists once the event is recorded."""

PROGRESS = "progress"
"""The name in `changes` of a change to a project's progress (its counts)."""


def team_channel(team_id: int) -> str:
    """The bus channel of a team's events, `team:<id>` (the bus prefixes its namespace):
    every `TeamEvent.message` of the team is published on it."""
    return f"team:{team_id}"


@dataclass(frozen=True)
class TeamEvent:
    """One numbered change in a team (or, with kind SNAPSHOT, the point a feed starts at;
    its node is then the team itself).

    node_type and node_id: the Project, User (of a member event) or Invitation it
    happened to; changes: for PROJECT_UPDATED the project's columns that changed and
    `progress`, for MEMBER_ROLE_CHANGED `role`, else ().
    """

    team_id: int
    sequence: int
    kind: str
    node_type: str
    node_id: int
    at: datetime
    changes: tuple[str, ...] = ()

    def message(self) -> dict[str, Any]:
        """The event as the bus carries it: a JSON-ready dict with keys team, sequence,
        kind, type, id, changes (a list) and at (ISO 8601 with its UTC offset).
        `from_message` reads it back."""
        return {
            "team": self.team_id,
            "sequence": self.sequence,
            "kind": self.kind,
            "type": self.node_type,
            "id": self.node_id,
            "changes": list(self.changes),
            "at": self.at.isoformat(),
        }

    @classmethod
    def from_message(cls, message: Message) -> TeamEvent:
        """The event a `message()` dict describes (as decoded from the bus).

        Raises KeyError for a missing key, ValueError or TypeError for a value of the
        wrong shape."""
        return cls(
            team_id=int(message["team"]),
            sequence=int(message["sequence"]),
            kind=str(message["kind"]),
            node_type=str(message["type"]),
            node_id=int(message["id"]),
            at=datetime.fromisoformat(message["at"]),
            changes=tuple(str(name) for name in message.get("changes") or ()),
        )

    @classmethod
    def from_row(cls, row: TeamEventRow) -> TeamEvent:
        """The event a stored `team_events` row holds (NULL `changes` reads as ())."""
        return cls(
            team_id=row.team_id,
            sequence=row.sequence,
            kind=row.kind,
            node_type=row.node_type,
            node_id=row.node_id,
            at=row.at,
            changes=tuple(row.changes or ()),
        )


async def last_sequence(session: AsyncSession, team_id: int) -> int:
    """The number of the team's last event; 0 before the first (or no such team)."""
    found = await session.get(TeamEventCounterRow, team_id)
    return found.last_sequence if found is not None else 0


async def events_after(
    session: AsyncSession, team_id: int, after: int, *, limit: int = 500
) -> list[TeamEvent]:
    """Up to `limit` stored events of the team numbered above `after`, in order.
    No access check, and no filtering per viewer (`reaches` does that)."""
    rows = await session.exec(
        select(TeamEventRow)
        .where(col(TeamEventRow.team_id) == team_id, col(TeamEventRow.sequence) > after)
        .order_by(col(TeamEventRow.sequence))
        .limit(limit)
    )
    return [TeamEvent.from_row(row) for row in rows]


class TeamStream(Stream[TeamEvent]):
    """One team's events, for `feed.follow_stream`. It has no end event: a member who
    leaves ends the feed by the access check."""

    what = "team"

    def __init__(self, team_id: int) -> None:
        self.team_id = team_id

    @property
    def channel(self) -> str:
        return team_channel(self.team_id)

    async def last_sequence(self, session: AsyncSession) -> int:
        return await last_sequence(session, self.team_id)

    async def first_kept(self, session: AsyncSession) -> int | None:
        query = select(func.min(TeamEventRow.sequence)).where(
            col(TeamEventRow.team_id) == self.team_id
        )
        first: int | None = (await session.exec(query)).one()
        return first

    async def events_after(self, session: AsyncSession, after: int, limit: int) -> list[TeamEvent]:
        return await events_after(session, self.team_id, after, limit=limit)

    def snapshot(self, sequence: int) -> TeamEvent:
        return TeamEvent(self.team_id, sequence, SNAPSHOT, "Team", self.team_id, utcnow())

    def from_message(self, message: Message) -> TeamEvent:
        return TeamEvent.from_message(message)


def reaches(actor: Actor, event: TeamEvent) -> bool:
    """Whether `event` is sent to `actor`, a member of its team (the feed makes sure of
    it), with their role as last checked: invitation events to owners and admins only
    (the invitations are theirs to see), every other event to every member."""
    if event.kind in INVITATION_KINDS:
        return actor.role_in(event.team_id) in MANAGERS
    return True


async def prune(session: AsyncSession, *, older_than: timedelta) -> int:
    """Delete team events older than the retention; a team's counter keeps its place,
    so a cursor from before is refused with CURSOR_EXPIRED. The number deleted."""
    result = await session.exec(
        delete(TeamEventRow).where(col(TeamEventRow.at) < utcnow() - older_than)
    )
    return int(result.rowcount or 0)
