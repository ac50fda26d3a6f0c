"""Recording team events: what each write transaction changed in a team's projects list and page.

The flush hook of `services.realtime.recording` hands every row it sees created,
changed or deleted to `note`, which keeps what a projects list or a team page shows:
projects (their listed columns), what their progress counts (scenes, shots, master
selections and finished clips), memberships and invitations. `record`, called by
`recording.record` at the end of the transaction (after the project and library
events, so every writer takes its counter rows in one order), folds them into one
event per project, member and invitation, numbers them per team in `team_events`,
taking the team's `team_event_counters` row last, and returns the messages to
publish once the transaction commits. See `services.realtime.team_events`.

Not events: a project's prompt and planner text (saved as a person types: a list
shows neither), images (no count of them is on a list; the first one moves the
project's status, which is an event), and a selection's animation moving between
PENDING, PROCESSING and FAILED (only reaching COMPLETE, or leaving it, changes the
count of clips).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, inspect
from sqlalchemy.orm import Session
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.realtime.counters import take_numbers
from services.realtime.events import CREATED, DELETED, UPDATED
from services.realtime.team_events import (
    INVITATION_ACCEPTED,
    INVITATION_CREATED,
    INVITATION_EXPIRED,
    INVITATION_REVOKED,
    MEMBER_JOINED,
    MEMBER_LEFT,
    MEMBER_ROLE_CHANGED,
    PROGRESS,
    PROJECT_CREATED,
    PROJECT_DELETED,
    PROJECT_UPDATED,
    TeamEvent,
    team_channel,
)
from services.tables import (
    GenerationStatus,
    ProjectRow,
    SceneRow,
    ShotRow,
    StoryboardSelectionRow,
    TeamEventCounterRow,
    TeamEventRow,
    TeamInvitationRow,
    TeamMemberRow,
    utcnow,
)

_PENDING = "studio.team_events"

LISTED = ("title", "status", "workflow_version", "owner_id")
"""The project columns a projects list shows: a change to one is a PROJECT_UPDATED."""


@dataclass
class _Change:
    """What one transaction did to a project, a membership or an invitation, so far.

    Merging is order-free (a flush's rows come in no set order): created and deleted
    are flags, fields a union in the order first seen.
    """

    node_type: str  # Project, User (a membership) or Invitation
    node_id: int
    team_id: int | None  # None: a project's, found when recorded
    created: bool = False
    deleted: bool = False
    expired: bool = False  # an invitation deleted once past its expiry
    fields: list[str] = field(default_factory=list)

    def merge(self, later: _Change) -> None:
        self.created = self.created or later.created
        self.deleted = self.deleted or later.deleted
        self.expired = self.expired or later.expired
        self.team_id = later.team_id if later.team_id is not None else self.team_id
        self.fields.extend(name for name in later.fields if name not in self.fields)


def _history(row: Any, name: str) -> tuple[list[Any], list[Any]] | None:
    """(new values, old values) of a column this flush changed; None if unchanged."""
    history = inspect(row).attrs[name].history
    if not history.has_changes():
        return None
    return list(history.added), list(history.deleted)


def _clips_changed(row: StoryboardSelectionRow) -> bool:
    """Whether this flush moved the selection's animation into or out of COMPLETE
    (an old value not loaded counts as a change: it may have been)."""
    changed = _history(row, "animation_status")
    if changed is None:
        return False
    added, deleted = changed
    return GenerationStatus.COMPLETE in added + deleted or not deleted


def _noted(row: Any, change: str) -> _Change | None:
    """The team-level change a row's change makes, if any."""
    created, deleted = change == CREATED, change == DELETED
    if isinstance(row, ProjectRow):
        fields = [name for name in LISTED if _history(row, name)] if change == UPDATED else []
        if change == UPDATED and not fields:
            return None
        return _Change("Project", row.id or 0, row.team_id, created, deleted, fields=fields)
    if isinstance(row, SceneRow | ShotRow | StoryboardSelectionRow):
        if change == UPDATED:
            moved = isinstance(row, ShotRow) and _history(row, "scene_id") is not None
            clips = isinstance(row, StoryboardSelectionRow) and _clips_changed(row)
            if not (moved or clips):
                return None
        return _Change("Project", row.project_id, None, fields=[PROGRESS])
    if isinstance(row, TeamMemberRow):
        fields = ["role"] if change == UPDATED and _history(row, "role") else []
        if change == UPDATED and not fields:
            return None
        return _Change("User", row.user_id, row.team_id, created, deleted, fields=fields)
    if isinstance(row, TeamInvitationRow):
        if change == UPDATED:
            return None
        expired = deleted and row.expires_at <= utcnow()
        return _Change("Invitation", row.id or 0, row.team_id, created, deleted, expired)
    return None


def note(session: Session, row: Any, change: str) -> None:
    """Note `row`'s change if a team's projects list or page shows it (see the module).

    Called by the flush hook (`recording.note_flush`) with CREATED, UPDATED or DELETED,
    for every row it sees.
    """
    noted = _noted(row, change)
    if noted is None:
        return
    key = (noted.node_type, noted.node_id, noted.team_id if noted.node_type == "User" else 0)
    pending: dict[tuple[str, int, int | None], _Change] = session.info.setdefault(_PENDING, {})
    earlier = pending.get(key)
    if earlier is None:
        pending[key] = noted
    else:
        earlier.merge(noted)


def forget(session: Session) -> None:
    """Drop what was noted: the transaction rolled back (`recording.forget_pending`)."""
    session.info.pop(_PENDING, None)


def _kind(change: _Change, joined: set[int]) -> str | None:
    """The event a noted change is (None: none, such as a row made and deleted at once).
    `joined`: the teams someone joined in this transaction (an invitation used up)."""
    if change.created and change.deleted:
        return None
    if change.node_type == "Project":
        if change.deleted:
            return PROJECT_DELETED
        return PROJECT_CREATED if change.created else PROJECT_UPDATED
    if change.node_type == "User":
        if change.created:
            return MEMBER_JOINED
        if change.deleted:
            return MEMBER_LEFT
        return MEMBER_ROLE_CHANGED
    if change.created:
        return INVITATION_CREATED
    if change.team_id in joined:
        return INVITATION_ACCEPTED
    return INVITATION_EXPIRED if change.expired else INVITATION_REVOKED


async def record(session: AsyncSession) -> list[tuple[str, dict[str, Any]]]:
    """Number and store this transaction's team changes; the (channel, message) pairs to
    publish once it commits. Call after the last flush (`recording.record` does)."""
    pending: dict[Any, _Change] = session.info.pop(_PENDING, {})
    if not pending:
        return []
    unknown = {c.node_id for c in pending.values() if c.team_id is None}
    if unknown:
        found = await session.exec(
            select(ProjectRow.id, ProjectRow.team_id).where(col(ProjectRow.id).in_(unknown))
        )
        team_of = {int(project or 0): team for project, team in found}
        for c in pending.values():
            if c.team_id is None:
                c.team_id = team_of.get(c.node_id)
    joined = {
        c.team_id
        for c in pending.values()
        if c.node_type == "User" and c.created and not c.deleted and c.team_id is not None
    }
    now = utcnow()
    by_team: dict[int, list[TeamEvent]] = {}
    for c in pending.values():
        kind = _kind(c, joined)
        if kind is None or c.team_id is None:
            continue  # the project went without our seeing it: nothing to tell
        changes = tuple(c.fields) if kind in (PROJECT_UPDATED, MEMBER_ROLE_CHANGED) else ()
        by_team.setdefault(c.team_id, []).append(
            TeamEvent(c.team_id, 0, kind, c.node_type, c.node_id, now, changes)
        )
    outbox: list[tuple[str, dict[str, Any]]] = []
    for team_id in sorted(by_team):  # one order for every writer: no lock cycles
        unnumbered = by_team[team_id]
        first = (
            await take_numbers(session, TeamEventCounterRow, "team_id", team_id, len(unnumbered))
            - len(unnumbered)
            + 1
        )
        numbered = [
            TeamEvent(e.team_id, first + n, e.kind, e.node_type, e.node_id, e.at, e.changes)
            for n, e in enumerate(unnumbered)
        ]
        await session.exec(
            insert(TeamEventRow),
            params=[
                {
                    "team_id": e.team_id,
                    "sequence": e.sequence,
                    "kind": e.kind,
                    "node_type": e.node_type,
                    "node_id": e.node_id,
                    "changes": list(e.changes) or None,
                    "at": e.at,
                }
                for e in numbered
            ],
        )
        outbox.extend((team_channel(team_id), e.message()) for e in numbered)
    return outbox
