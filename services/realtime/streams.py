"""What a feed follows: numbered events of one stream, kept in a table, and the cursors
into them.

A `Stream` is one project's events (`ProjectStream`), one team's library events
(`services.realtime.library_events`) or one team's events
(`services.realtime.team_events`); `services.realtime.feed` follows any of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Generic, Protocol, TypeVar

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.errors import InvalidInput, NotFound
from services.realtime.bus import Message
from services.realtime.events import PROJECT_DELETED, SNAPSHOT, ProjectEvent, project_channel
from services.tables import ProjectEventCounterRow, ProjectEventRow, ProjectRow, utcnow


class CursorExpired(InvalidInput):
    """CURSOR_EXPIRED (field `after`): the events after a feed's cursor are no longer
    kept (pruned by housekeeping); the client starts again from the current state."""

    def __init__(self) -> None:
        super().__init__(
            "Events after that cursor are no longer kept; subscribe again without `after` "
            "to start from the current state.",
            code="CURSOR_EXPIRED",
            field=("after",),
        )


class AccessLost(NotFound):
    """The subscriber may no longer see what they follow (removed from its team, signed
    out): NOT_FOUND for `what` ("project", or "team" for a library feed)."""

    def __init__(self, what: str = "project") -> None:
        super().__init__(what)


PAGE = 500


async def last_sequence(session: AsyncSession, project_id: int) -> int:
    """The number of the project's last recorded event (its `project_event_counters`
    row); 0 for a project with no events yet, or no such project."""
    found = await session.get(ProjectEventCounterRow, project_id)
    return found.last_sequence if found is not None else 0


async def events_after(
    session: AsyncSession, project_id: int, after: int, *, limit: int = PAGE
) -> list[ProjectEvent]:
    """Up to `limit` stored events of the project numbered above `after`, in number
    order ([] when there are none). No access check: callers have made it."""
    rows = await session.exec(
        select(ProjectEventRow)
        .where(ProjectEventRow.project_id == project_id, col(ProjectEventRow.sequence) > after)
        .order_by(col(ProjectEventRow.sequence))
        .limit(limit)
    )
    return [ProjectEvent.from_row(row) for row in rows]


async def check_cursor(session: AsyncSession, project_id: int, after: int) -> None:
    """Raise unless every event of the project after `after` is still in the table
    (`check_stream_cursor` of its `ProjectStream`)."""
    await check_stream_cursor(session, ProjectStream(project_id), after)


class Event(Protocol):
    """What a followed stream carries: events numbered 1, 2, 3... with a kind."""

    @property
    def sequence(self) -> int: ...

    @property
    def kind(self) -> str: ...


E = TypeVar("E", bound=Event)


class Stream(ABC, Generic[E]):
    """One numbered sequence of events in a table, published live on one bus channel:
    what `follow_stream` follows. Subclasses say where the events are kept and how
    they read; `follow_stream` does the ordering, gaps, replays and access checks.
    """

    what: str = "project"
    """What the stream is of, as NotFound names it when access is lost."""

    @property
    @abstractmethod
    def channel(self) -> str:
        """The bus channel its events are published on."""

    @abstractmethod
    async def last_sequence(self, session: AsyncSession) -> int:
        """The number of its last recorded event (0 before the first)."""

    @abstractmethod
    async def first_kept(self, session: AsyncSession) -> int | None:
        """The number of its first event still in the table (None: none is kept)."""

    @abstractmethod
    async def events_after(self, session: AsyncSession, after: int, limit: int) -> list[E]:
        """Up to `limit` stored events numbered above `after`, in number order."""

    @abstractmethod
    def snapshot(self, sequence: int) -> E:
        """The SNAPSHOT event marking `sequence` as the point a feed starts from."""

    @abstractmethod
    def from_message(self, message: Message) -> E:
        """The event a bus message carries (KeyError, ValueError, TypeError if malformed)."""

    def is_end(self, event: E) -> bool:
        """Whether `event` ends the stream (sent, then the feed stops); none does by default."""
        return False

    async def end_after(self, session: AsyncSession, last: int) -> E | None:
        """The event ending the stream if its subject is gone (read after the table's
        last page, numbered after `last`); None while it lasts (the default)."""
        return None


class ProjectStream(Stream[ProjectEvent]):
    """One project's events (`project_events`), ended by PROJECT_DELETED."""

    def __init__(self, project_id: int) -> None:
        self.project_id = project_id

    @property
    def channel(self) -> str:
        return project_channel(self.project_id)

    async def last_sequence(self, session: AsyncSession) -> int:
        return await last_sequence(session, self.project_id)

    async def first_kept(self, session: AsyncSession) -> int | None:
        query = select(func.min(ProjectEventRow.sequence)).where(
            ProjectEventRow.project_id == self.project_id
        )
        first: int | None = (await session.exec(query)).one()
        return first

    async def events_after(
        self, session: AsyncSession, after: int, limit: int
    ) -> list[ProjectEvent]:
        return await events_after(session, self.project_id, after, limit=limit)

    def snapshot(self, sequence: int) -> ProjectEvent:
        return ProjectEvent(
            self.project_id, sequence, SNAPSHOT, "Project", self.project_id, utcnow()
        )

    def from_message(self, message: Message) -> ProjectEvent:
        return ProjectEvent.from_message(message)

    def is_end(self, event: ProjectEvent) -> bool:
        return event.kind == PROJECT_DELETED

    async def end_after(self, session: AsyncSession, last: int) -> ProjectEvent | None:
        # A deleted project keeps no events, and its last one may never have reached
        # this process (published while the bus was down, or to a queue cut off), so
        # the table read also notices the deletion itself.
        if await session.get(ProjectRow, self.project_id) is not None:
            return None
        return ProjectEvent(
            self.project_id, last + 1, PROJECT_DELETED, "Project", self.project_id, utcnow()
        )


async def check_stream_cursor(session: AsyncSession, stream: Stream[Any], after: int) -> None:
    """Raise unless every event of `stream` after `after` is still in the table.

    InvalidInput (INVALID_CURSOR, field `after`) for a number past the stream's last
    event; CursorExpired when events after it were pruned.
    """
    last = await stream.last_sequence(session)
    if after > last:
        raise InvalidInput(
            f"That cursor is not one of this {stream.what}'s.",
            code="INVALID_CURSOR",
            field=("after",),
        )
    if after == last:
        return
    first = await stream.first_kept(session)
    if first is None or first > after + 1:
        raise CursorExpired
