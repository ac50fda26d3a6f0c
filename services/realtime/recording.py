"""Recording project events: what each write transaction changed, numbered per project and stored.

A hook on every flush notes which projects, scenes, shots, images and selections
were created, changed (and which of their fields) or deleted; `record` numbers
them per project and writes them to `project_events` in the same transaction;
`publish` hands them to the bus after the commit. See `services.realtime.events`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, inspect
from sqlalchemy.orm import Session, UOWTransaction
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.library.tables import AssetShareRow
from services.realtime import library_recording, team_recording
from services.realtime.bus import EventBus
from services.realtime.counters import take_numbers
from services.realtime.events import (
    BOOKKEEPING,
    CREATED,
    DELETED,
    PROJECT_DELETED,
    UPDATED,
    ProjectEvent,
    access_channel,
    kind_of,
    project_channel,
)
from services.tables import (
    AccessTokenRow,
    ProjectEventCounterRow,
    ProjectEventRow,
    ProjectRow,
    SceneRow,
    ShotImageRow,
    ShotRow,
    StoryboardSelectionRow,
    TeamMemberRow,
    utcnow,
)

_PENDING = "studio.events"
_OUTBOX = "studio.outbox"
_SHOT_PROJECTS = "studio.shot_projects"

TRACKED: dict[type, str] = {
    ProjectRow: "Project",
    SceneRow: "Scene",
    ShotRow: "Shot",
    ShotImageRow: "ShotImage",
    StoryboardSelectionRow: "StoryboardSelection",
}
# Bookkeeping no client sees: changing only these is not an event.
_INTERNAL = BOOKKEEPING


@dataclass
class _Change:
    node_type: str
    node_id: int
    change: str
    project_id: int | None
    shot_id: int | None
    fields: list[str] = field(default_factory=list)

    def merge(self, later: _Change) -> _Change | None:
        """This change followed by a later one to the same row, as one change (or none)."""
        if later.change == DELETED:
            return None if self.change == CREATED else later
        if self.change == CREATED:
            return self
        self.fields.extend(name for name in later.fields if name not in self.fields)
        return self


def _changed_fields(row: Any) -> list[str]:
    """The columns of `row` this flush changed, bookkeeping left out (`schema.events`
    names them as GraphQL fields)."""
    state = inspect(row)
    return [
        attribute.key
        for attribute in state.mapper.column_attrs
        if attribute.key not in _INTERNAL and state.attrs[attribute.key].history.has_changes()
    ]


def _note(session: Session, row: Any, change: str) -> None:
    if change != CREATED:  # gaining access needs no notice; losing it does
        _note_access(session, row)
    team_recording.note(session, row, change)
    if library_recording.note(session, row, change):
        return
    node_type = TRACKED.get(type(row))
    if node_type is None:
        return
    fields = _changed_fields(row) if change == UPDATED else []
    if change == UPDATED and not fields:
        return
    if isinstance(row, ProjectRow):
        project_id, shot_id = row.id, None
    elif isinstance(row, ShotImageRow):
        project_id, shot_id = None, row.shot_id  # found from the shot when recorded
    elif isinstance(row, StoryboardSelectionRow):
        project_id, shot_id = row.project_id, row.shot_id
    else:
        project_id, shot_id = row.project_id, None
    pending: dict[tuple[str, int], _Change] = session.info.setdefault(_PENDING, {})
    key = (node_type, row.id)
    noted = _Change(node_type, row.id, change, project_id, shot_id, fields)
    earlier = pending.pop(key, None)
    merged = noted if earlier is None else earlier.merge(noted)
    if merged is not None:
        pending[key] = merged


def _note_access(session: Session, row: Any) -> None:
    # A share changed (its permission or expiry) or revoked may take its recipient's access.
    if isinstance(row, TeamMemberRow | AccessTokenRow | AssetShareRow):
        send(session, access_channel(row.user_id), {"access": "changed"})


def send(session: Session | AsyncSession, channel: str, message: dict[str, Any]) -> None:
    """Publish `message` on `channel` once this session's transaction commits (never if not)."""
    outbox: list[tuple[str, dict[str, Any]]] = session.info.setdefault(_OUTBOX, [])
    if (channel, message) not in outbox:
        outbox.append((channel, message))


def note_flush(session: Session, _context: UOWTransaction) -> None:
    """The `after_flush` hook of our sessions (`services.database.StudioSession`)."""
    # Still the flush's own view here: `new`, `dirty`, `deleted` and attribute history.
    for row in session.new:
        _note(session, row, CREATED)
    for row in session.dirty:
        if session.is_modified(row, include_collections=False):
            _note(session, row, UPDATED)
    for row in session.deleted:
        _note(session, row, DELETED)


def note_projects_of_shots(session: Session | AsyncSession, projects: dict[int, int]) -> None:
    """Tell the recording the project of each shot (shot ID -> project ID) that a
    write in this session read along with its rows, so that numbering their events
    asks the database only about the others. A shot never changes project."""
    known: dict[int, int] = session.info.setdefault(_SHOT_PROJECTS, {})
    known.update(projects)


def forget_pending(session: Session) -> None:
    """The `after_rollback` hook of our sessions: a rolled-back write has no event."""
    session.info.pop(_PENDING, None)
    session.info.pop(_OUTBOX, None)
    session.info.pop(_SHOT_PROJECTS, None)
    library_recording.forget(session)
    team_recording.forget(session)


Outbox = list[tuple[str, dict[str, Any]]]

_INSERT_EVENTS = insert(ProjectEventRow.__table__)  # type: ignore[attr-defined]
"""The table's own INSERT, built once, not the ORM's bulk one: nothing stored here
is an object."""


async def record(session: AsyncSession) -> Outbox:
    """Number and store the changes of this transaction; what to publish once it commits.

    Call last in a write transaction (`Database.transaction()` does). Project events
    first, then library events (`library_recording`), then team events
    (`team_recording`): every writer takes its counter rows in that one order.
    """
    await session.flush()
    pending: dict[tuple[str, int], _Change] = session.info.pop(_PENDING, {})
    outbox: Outbox = session.info.pop(_OUTBOX, [])
    known_projects: dict[int, int] = session.info.pop(_SHOT_PROJECTS, {})
    if pending:
        await _record_projects(session, pending, outbox, known_projects)
    outbox.extend(await library_recording.record(session))
    outbox.extend(await team_recording.record(session))
    return outbox


async def _record_projects(
    session: AsyncSession,
    pending: dict[tuple[str, int], _Change],
    outbox: Outbox,
    known_projects: dict[int, int],
) -> None:
    """Number and store the noted project changes, adding their messages to `outbox`;
    `known_projects` are shots' projects already read (`note_projects_of_shots`)."""
    changes = list(pending.values())
    gone = {c.node_id for c in changes if c.node_type == "Shot" and c.change == DELETED}
    project_of_shot = {shot: p for shot, p in known_projects.items() if shot not in gone}
    shots = {
        c.shot_id
        for c in changes
        if c.project_id is None and c.shot_id is not None and c.shot_id not in project_of_shot
    }
    if shots:
        found = await session.exec(
            select(ShotRow.id, ShotRow.project_id).where(col(ShotRow.id).in_(shots))
        )
        project_of_shot.update((int(shot or 0), int(project)) for shot, project in found)
    by_project: dict[int, list[_Change]] = {}
    for change in changes:
        project_id = change.project_id
        if project_id is None and change.shot_id is not None:
            project_id = project_of_shot.get(change.shot_id)
        if project_id is None:
            continue  # an image whose shot went in the same transaction: its shot's event says so
        by_project.setdefault(project_id, []).append(change)
    now = utcnow()
    for project_id in sorted(by_project):  # one order for every writer: no lock cycles
        project_changes = by_project[project_id]
        if any(c.node_type == "Project" and c.change == DELETED for c in project_changes):
            outbox.append(await _project_deleted(session, project_id, now))
            continue
        last = await take_numbers(
            session, ProjectEventCounterRow, "project_id", project_id, len(project_changes)
        )
        first = last - len(project_changes) + 1
        events = [
            ProjectEvent(
                project_id=project_id,
                sequence=first + offset,
                kind=kind_of(c.node_type, c.change),
                node_type=c.node_type,
                node_id=c.node_id,
                at=now,
                shot_id=c.shot_id,
                changes=tuple(c.fields),
            )
            for offset, c in enumerate(project_changes)
        ]
        await session.exec(
            _INSERT_EVENTS,
            params=[
                {
                    "project_id": e.project_id,
                    "sequence": e.sequence,
                    "kind": e.kind,
                    "node_type": e.node_type,
                    "node_id": e.node_id,
                    "shot_id": e.shot_id,
                    "changes": list(e.changes) or None,
                    "at": e.at,
                }
                for e in events
            ],
        )
        outbox.extend((project_channel(project_id), e.message()) for e in events)


async def _project_deleted(
    session: AsyncSession, project_id: int, now: datetime
) -> tuple[str, dict[str, Any]]:
    """A deleted project keeps no events: its last one is published, not stored."""
    result = await session.exec(
        delete(ProjectEventCounterRow)
        .where(col(ProjectEventCounterRow.project_id) == project_id)
        .returning(col(ProjectEventCounterRow.last_sequence))
    )
    last = result.scalar_one_or_none() or 0
    await session.exec(delete(ProjectEventRow).where(col(ProjectEventRow.project_id) == project_id))
    gone = ProjectEvent(
        project_id=project_id,
        sequence=last + 1,
        kind=PROJECT_DELETED,
        node_type="Project",
        node_id=project_id,
        at=now,
    )
    return project_channel(project_id), gone.message()


def publish(bus: EventBus | None, outbox: Outbox) -> None:
    """Hand committed events to the bus and return at once (see the module).

    The bus publishes them in order from its own task: the writer never waits for
    the backend or for any subscriber, however many there are. A failure there is
    logged, and followers read what they missed from the events table.
    """
    if bus is None:
        return
    for channel, message in outbox:
        bus.post(channel, message)


async def prune(session: AsyncSession, *, older_than: timedelta) -> int:
    """Delete events older than the retention; a project's counter keeps its place."""
    result = await session.exec(
        delete(ProjectEventRow).where(col(ProjectEventRow.at) < utcnow() - older_than)
    )
    return int(result.rowcount or 0)
