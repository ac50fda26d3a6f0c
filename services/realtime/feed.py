"""Following a project's events: the ordered, gapless stream every subscription is built on.

`follow` subscribes to the bus first, then sends the current state (or replays from
the events table after a cursor), then the live events; an event already sent is
dropped, and a gap (a lost publish, a bus outage) is read from the table first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.errors import InvalidInput, NotFound
from services.realtime.bus import EventBus, Message, SubscriberTooSlow, Subscription
from services.realtime.events import (
    PROJECT_DELETED,
    SNAPSHOT,
    ProjectEvent,
    access_channel,
    project_channel,
)
from services.tables import (
    ProjectEventCounterRow,
    ProjectEventRow,
    ProjectRow,
    utcnow,
)

logger = logging.getLogger("studio.events")


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
    """The subscriber may no longer see the project (removed from its team, signed out)."""

    def __init__(self) -> None:
        super().__init__("project")


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
    """Raise unless every event after `after` is still in the table.

    InvalidInput (INVALID_CURSOR, field `after`) for a number past the project's last
    event; CursorExpired when events after it were pruned.
    """
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

Allowed = bool | datetime
"""What an access check answers: False (access is gone), True, or an aware datetime:
allowed until then (the token's expiry), when access ends by itself."""


async def follow(
    bus: EventBus,
    session: Opener,
    project_id: int,
    *,
    after: int | None,
    user_id: int,
    still_allowed: Callable[[], Awaitable[Allowed]],
    allowed_until: datetime | None = None,
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

    Access (`still_allowed`) is checked again when the user's access changes (a
    notice on the bus), when the bus resyncs, after the bus cut the queue off
    (a notice may have been dropped with it), and on a schedule that no event
    moves: `recheck_every` seconds after the last check (a notice can be lost),
    or sooner, at the instant access ends by itself (`allowed_until` as the
    caller last checked it, then what each check answers: a token's expiry).
    No event is sent once a check is due and before it has run: every event,
    whether replayed from the table or live, first passes that gate, which also
    sees a notice still waiting in the queue behind a long replay. When access
    is gone, AccessLost is raised; `still_allowed` may raise its own error instead.
    """
    async with session() as reading:
        if after is not None:
            await check_cursor(reading, project_id, after)
            last = after
        else:
            last = -1
    checks = _Checks(still_allowed, recheck_every, allowed_until)
    first = True
    notices_lost = False
    while True:
        async with bus.subscribe(
            project_channel(project_id), access_channel(user_id), notices=_NOTICES
        ) as live:
            checks.watch(live, notices_lost=notices_lost)
            if first and (last == -1 or snapshot_on_resume):
                if last == -1:
                    async with session() as reading:
                        last = await last_sequence(reading, project_id)
                await checks.before_sending()
                yield ProjectEvent(project_id, last, SNAPSHOT, "Project", project_id, utcnow())
            first = False
            catch_up = True  # after (re)subscribing, the table first
            try:
                while True:
                    if catch_up:
                        async for missed in _read_table(session, project_id, last):
                            await checks.before_sending()
                            last = missed.sequence
                            yield missed
                            if missed.kind == PROJECT_DELETED:
                                return
                        catch_up = False
                    message = await _next_message(live, checks.seconds_left())
                    if message is None or any(key in message for key in _NOTICES):
                        await checks.run()
                        catch_up = True
                        continue
                    live_event = ProjectEvent.from_message(message)
                    if live_event.kind == PROJECT_DELETED:
                        await checks.before_sending()
                        yield live_event
                        return
                    if live_event.sequence == last + 1:
                        await checks.before_sending()
                        last = live_event.sequence
                        yield live_event
                    elif live_event.sequence > last + 1:
                        catch_up = True  # a gap: a publish was lost; the table has it
            except SubscriberTooSlow:
                logger.info(
                    "a subscriber of project %s fell behind; reading on from the table",
                    project_id,
                )
                notices_lost = True


_NOTICES = ("access", "resync")
"""Keys of the bus messages that make a feed check access: an access notice
(`events.access_channel`) and the bus's own resync."""


class _Checks:
    """When `follow` must check access next, and the check: `still_allowed`, then the
    next instant due (`recheck_every` seconds on, or sooner at the end its answer gives).

    The instant is kept on the event loop's clock, read after the wall clock, so a
    check is never due before the wall-clock instant it stands for.
    """

    def __init__(
        self,
        still_allowed: Callable[[], Awaitable[Allowed]],
        recheck_every: float,
        allowed_until: datetime | None,
    ) -> None:
        self._still_allowed = still_allowed
        self._recheck_every = recheck_every
        self._clock = asyncio.get_running_loop().time
        self._check_at = self._due_after(allowed_until)
        self._live: Subscription | None = None
        self._notices_seen = 0

    def _due_after(self, until: datetime | None) -> float:
        wait = _seconds_to_check(self._recheck_every, until)
        return self._clock() + wait  # the clock read after the wall clock: never before the instant

    def watch(self, live: Subscription, *, notices_lost: bool) -> None:
        """Look for notices on `live` from now on; `notices_lost`: an earlier queue was
        cut off, so a notice may never arrive, and the next event waits for a check."""
        self._live = live
        self._notices_seen = -1 if notices_lost else live.notices_received

    def seconds_left(self) -> float:
        """Seconds until the next check is due (0 or less: due now)."""
        return self._check_at - self._clock()

    async def run(self) -> None:
        """Check access now; raises AccessLost (or what `still_allowed` raises) if it is gone."""
        if self._live is not None:  # every notice queued so far is answered by this check
            self._notices_seen = self._live.notices_received
        allowed = await self._still_allowed()
        if allowed is False:
            raise AccessLost
        self._check_at = self._due_after(allowed if isinstance(allowed, datetime) else None)

    async def before_sending(self) -> None:
        """The gate before each event: check first if a check is due, or a notice came
        into the queue since the last check (it stays queued, and is read in its turn)."""
        live = self._live
        if self.seconds_left() <= 0 or (
            live is not None and live.notices_received != self._notices_seen
        ):
            await self.run()


def _seconds_to_check(recheck_every: float, until: datetime | None) -> float:
    """How long until access must be checked again: `recheck_every`, or less if it ends sooner."""
    if until is None:
        return recheck_every
    return min(recheck_every, (until - utcnow()).total_seconds())


async def _next_message(live: Subscription, within: float) -> Message | None:
    """The next bus message, or None when `within` seconds pass first (a check is due)."""
    if within <= 0:
        return None  # due already: a busy feed must not put its check off
    try:
        return await asyncio.wait_for(live.get(), within)
    except TimeoutError:
        return None


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
