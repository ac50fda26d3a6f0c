"""Project events: every change to a project's data, recorded, numbered and published.

This is the one place that turns changes into events; no service or resolver
writes or publishes one by hand.

- Recording. A hook on every flush notes which projects, scenes, shots, images
  and selections were created, changed (and which of their fields) or deleted.
  When a write transaction ends, `record` numbers those changes per project and
  writes them to `project_events` in the same transaction, so an event exists
  if and only if its change was committed.
- Ordering. A project's numbers come from its row in `project_event_counters`,
  updated last in the transaction: the row lock it takes is held until commit,
  so a project's events are committed in the order of their numbers, and a
  reader that has seen number n has seen every number below it. Taking it last
  means it never waits while holding it, so it cannot join a deadlock.
- Publishing. After the commit, `Database.transaction()` hands the events to the
  bus (`publish`), which sends them from its own task: the writer does not wait
  for the bus or for subscribers. Events carry ids, never whole rows. A publish
  that fails loses nothing: followers notice the gap, or are told to resync, and
  read the table.
- Following. `follow` is the ordered, gapless stream of one project's events
  that every subscription is built on; see its docstring.

Access changes (a member removed, a token revoked) are published the same way,
to the user they concern, so that user's open subscriptions re-check access.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, event, insert, inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, UOWTransaction
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.errors import InvalidInput, NotFound
from services.realtime.bus import EventBus, SubscriberTooSlow
from services.tables import (
    AccessTokenRow,
    ProjectEventCounterRow,
    ProjectEventRow,
    ProjectRow,
    SceneRow,
    ShotImageRow,
    ShotRow,
    StoryboardSelectionRow,
    StudioRow,
    TeamMemberRow,
    utcnow,
)

logger = logging.getLogger("studio.events")

_PENDING = "studio.events"
_OUTBOX = "studio.outbox"

TRACKED: dict[type, str] = {
    ProjectRow: "Project",
    SceneRow: "Scene",
    ShotRow: "Shot",
    ShotImageRow: "ShotImage",
    StoryboardSelectionRow: "StoryboardSelection",
}
# Bookkeeping no client sees: changing only these is not an event.
_INTERNAL = frozenset(
    {
        "dispatch_claimed_at",
        "dispatch_claimed_by",
        "submitted_at",
        "failed_tries",
        "resubmissions",
        "copy_attempts",
        "animation_metadata",  # the provider input of an animation: not a GraphQL field
        "imported",  # set once, when an image is recorded
        "checked_at",
        "provider_output",
        "updated_at",
        "created_at",
    }
)
# Columns whose GraphQL field has another name.
_FIELD_NAMES = {
    "storage_key": "imageUrl",
    "image_url": "imageUrl",
    "video_storage_key": "animatedVideoUrl",
    "animated_video_url": "animatedVideoUrl",
    "generation_metadata": "metadata",
    "selected_image_id": "selectedImage",
    "parent_image_id": "parentImage",
    "shot_id": "shot",
    "scene_id": "scene",
    "project_id": "project",
    "team_id": "team",
    "owner_id": "owner",
}

CREATED, UPDATED, DELETED = "CREATED", "UPDATED", "DELETED"
SNAPSHOT = "SNAPSHOT"
PROJECT_DELETED = "PROJECT_DELETED"


async def studio_id(session: AsyncSession) -> str:
    """This studio's id (made by the migrations): the namespace of its bus channels."""
    row = await session.get(StudioRow, 1)
    if row is None:
        raise RuntimeError("the studio table is empty: run the migrations")
    return row.studio_id


def project_channel(project_id: int) -> str:
    return f"project:{project_id}"


def access_channel(user_id: int) -> str:
    return f"access:{user_id}"


def kind_of(node_type: str, change: str) -> str:
    """`ShotImage` + `UPDATED` is `SHOT_IMAGE_UPDATED`."""
    return f"{re.sub(r'(?<!^)(?=[A-Z])', '_', node_type).upper()}_{change}"


@dataclass(frozen=True)
class ProjectEvent:
    """One numbered change in a project (or, with kind SNAPSHOT, the point a feed starts at)."""

    project_id: int
    sequence: int
    kind: str
    node_type: str
    node_id: int
    at: datetime
    shot_id: int | None = None
    changes: tuple[str, ...] = ()

    @property
    def change(self) -> str:
        return self.kind.rsplit("_", 1)[-1]

    def message(self) -> dict[str, Any]:
        return {
            "project": self.project_id,
            "sequence": self.sequence,
            "kind": self.kind,
            "type": self.node_type,
            "id": self.node_id,
            "shot": self.shot_id,
            "changes": list(self.changes),
            "at": self.at.isoformat(),
        }

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> ProjectEvent:
        return cls(
            project_id=int(message["project"]),
            sequence=int(message["sequence"]),
            kind=str(message["kind"]),
            node_type=str(message["type"]),
            node_id=int(message["id"]),
            at=datetime.fromisoformat(message["at"]),
            shot_id=None if message.get("shot") is None else int(message["shot"]),
            changes=tuple(message.get("changes") or ()),
        )

    @classmethod
    def from_row(cls, row: ProjectEventRow) -> ProjectEvent:
        return cls(
            project_id=row.project_id,
            sequence=row.sequence,
            kind=row.kind,
            node_type=row.node_type,
            node_id=row.node_id,
            at=row.at,
            shot_id=row.shot_id,
            changes=tuple(row.changes or ()),
        )


# --- recording ----------------------------------------------------------------------


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


def _camel(name: str) -> str:
    if name in _FIELD_NAMES:
        return _FIELD_NAMES[name]
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _changed_fields(row: Any) -> list[str]:
    state = inspect(row)
    names: list[str] = []
    for attribute in state.mapper.column_attrs:
        if attribute.key in _INTERNAL:
            continue
        if state.attrs[attribute.key].history.has_changes():
            name = _camel(attribute.key)
            if name not in names:
                names.append(name)
    return names


def _note(session: Session, row: Any, change: str) -> None:
    node_type = TRACKED.get(type(row))
    if node_type is None:
        if change != CREATED:  # gaining access needs no notice; losing it does
            _note_access(session, row)
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
    if isinstance(row, TeamMemberRow | AccessTokenRow):
        send(session, access_channel(row.user_id), {"access": "changed"})


def send(session: Session | AsyncSession, channel: str, message: dict[str, Any]) -> None:
    """Publish `message` on `channel` once this session's transaction commits (never if not)."""
    outbox: list[tuple[str, dict[str, Any]]] = session.info.setdefault(_OUTBOX, [])
    if (channel, message) not in outbox:
        outbox.append((channel, message))


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _context: UOWTransaction) -> None:
    # Still the flush's own view here: `new`, `dirty`, `deleted` and attribute history.
    for row in session.new:
        _note(session, row, CREATED)
    for row in session.dirty:
        if session.is_modified(row, include_collections=False):
            _note(session, row, UPDATED)
    for row in session.deleted:
        _note(session, row, DELETED)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_OUTBOX, None)


Outbox = list[tuple[str, dict[str, Any]]]


async def record(session: AsyncSession) -> Outbox:
    """Number and store the changes of this transaction; what to publish once it commits.

    Call last in a write transaction (`Database.transaction()` does).
    """
    await session.flush()
    pending: dict[tuple[str, int], _Change] = session.info.pop(_PENDING, {})
    outbox: Outbox = session.info.pop(_OUTBOX, [])
    if not pending:
        return outbox
    changes = list(pending.values())
    shots = {c.shot_id for c in changes if c.project_id is None and c.shot_id is not None}
    project_of_shot: dict[int, int] = {}
    if shots:
        found = await session.exec(
            select(ShotRow.id, ShotRow.project_id).where(col(ShotRow.id).in_(shots))
        )
        project_of_shot = {int(shot or 0): int(project) for shot, project in found}
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
        last = await _take_numbers(session, project_id, len(project_changes))
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
            insert(ProjectEventRow),
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
    return outbox


async def _take_numbers(session: AsyncSession, project_id: int, count: int) -> int:
    """Reserve `count` sequence numbers in the project; the last one reserved."""
    dialect = session.get_bind().dialect.name
    upsert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(
        ProjectEventCounterRow
    )
    statement = upsert.values(project_id=project_id, last_sequence=count).on_conflict_do_update(
        index_elements=["project_id"],
        set_={"last_sequence": ProjectEventCounterRow.last_sequence + count},
    )
    result = await session.exec(statement.returning(col(ProjectEventCounterRow.last_sequence)))
    return int(result.scalar_one())


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


# --- following ----------------------------------------------------------------------


class CursorExpired(InvalidInput):
    def __init__(self) -> None:
        super().__init__(
            "Events after that cursor are no longer kept; subscribe again without `after` "
            "to start from the current state.",
            code="CURSOR_EXPIRED",
            field=("after",),
        )


class AccessLost(NotFound):
    """The subscriber may no longer see the project (removed from its team, signed out)."""

    def __init__(self) -> None:
        super().__init__("project")


PAGE = 500


async def last_sequence(session: AsyncSession, project_id: int) -> int:
    found = await session.get(ProjectEventCounterRow, project_id)
    return found.last_sequence if found is not None else 0


async def events_after(
    session: AsyncSession, project_id: int, after: int, *, limit: int = PAGE
) -> list[ProjectEvent]:
    rows = await session.exec(
        select(ProjectEventRow)
        .where(ProjectEventRow.project_id == project_id, col(ProjectEventRow.sequence) > after)
        .order_by(col(ProjectEventRow.sequence))
        .limit(limit)
    )
    return [ProjectEvent.from_row(row) for row in rows]


async def check_cursor(session: AsyncSession, project_id: int, after: int) -> None:
    """Raise unless every event after `after` is still in the table."""
    last = await last_sequence(session, project_id)
    if after > last:
        raise InvalidInput(
            "That cursor is not one of this project's.", code="INVALID_CURSOR", field=("after",)
        )
    if after == last:
        return
    first = (
        await session.exec(
            select(func.min(ProjectEventRow.sequence)).where(
                ProjectEventRow.project_id == project_id
            )
        )
    ).one()
    if first is None or first > after + 1:
        raise CursorExpired


Opener = Callable[[], Any]  # an async context manager yielding an AsyncSession


async def follow(
    bus: EventBus,
    session: Opener,
    project_id: int,
    *,
    after: int | None,
    user_id: int,
    still_allowed: Callable[[], Awaitable[bool]],
    snapshot_on_resume: bool = False,
    recheck_every: float = 60.0,
) -> AsyncGenerator[ProjectEvent, None]:
    """Every event of a project, in order, each once, for as long as the caller reads.

    Subscribes to the bus first, then starts: with `after`, from the events table
    after that number (first a SNAPSHOT marking it, if `snapshot_on_resume`);
    without it, with a SNAPSHOT marking the current number.
    Live events then follow; one already seen is dropped, and one that leaves a
    gap (a lost publish, a bus outage) makes the table fill the gap first. A
    reconnected bus says "resync", which also reads the table.

    Slow readers: when this reader falls `bus.queue_size` messages behind, the
    bus cuts its queue off; the feed then subscribes again and carries on from
    the table, so memory stays bounded and nothing is lost.

    Access is checked again when the user's access changes, when the bus resyncs,
    and every `recheck_every` seconds without either (a notice can be lost; a
    token expires); when it is gone, AccessLost is raised.
    """
    async with session() as reading:
        if after is not None:
            await check_cursor(reading, project_id, after)
            last = after
        else:
            last = -1
    first = True
    while True:
        async with bus.subscribe(project_channel(project_id), access_channel(user_id)) as live:
            if first and (last == -1 or snapshot_on_resume):
                if last == -1:
                    async with session() as reading:
                        last = await last_sequence(reading, project_id)
                yield ProjectEvent(project_id, last, SNAPSHOT, "Project", project_id, utcnow())
            first = False
            catch_up = True  # after (re)subscribing, the table first
            try:
                while True:
                    if catch_up:
                        async for missed in _read_table(session, project_id, last):
                            last = missed.sequence
                            yield missed
                            if missed.kind == PROJECT_DELETED:
                                return
                        catch_up = False
                    try:
                        message = await asyncio.wait_for(live.get(), recheck_every)
                    except TimeoutError:
                        message = {"access": "recheck"}
                    if "access" in message or "resync" in message:
                        if not await still_allowed():
                            raise AccessLost
                        catch_up = True
                        continue
                    live_event = ProjectEvent.from_message(message)
                    if live_event.kind == PROJECT_DELETED:
                        yield live_event
                        return
                    if live_event.sequence == last + 1:
                        last = live_event.sequence
                        yield live_event
                    elif live_event.sequence > last + 1:
                        catch_up = True  # a gap: a publish was lost; the table has it
            except SubscriberTooSlow:
                logger.info(
                    "a subscriber of project %s fell behind; reading on from the table",
                    project_id,
                )


async def _read_table(session: Opener, project_id: int, after: int) -> AsyncIterator[ProjectEvent]:
    """The stored events after `after`; then, if the project is gone, its PROJECT_DELETED.

    A deleted project keeps no events, and its last one may never have reached
    this process (published while the bus was down, or to a queue cut off), so
    the table read that follows also notices the deletion itself.
    """
    while True:
        async with session() as reading:
            page = await events_after(reading, project_id, after)
            gone = len(page) < PAGE and await reading.get(ProjectRow, project_id) is None
        for item in page:
            yield item
        if gone:
            last = page[-1].sequence if page else after
            yield ProjectEvent(
                project_id, last + 1, PROJECT_DELETED, "Project", project_id, utcnow()
            )
            return
        if len(page) < PAGE:
            return
        after = page[-1].sequence
