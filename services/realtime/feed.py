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
    notice on the bus), when the bus resyncs, and on a schedule that no event
    moves: `recheck_every` seconds after the last check (a notice can be lost),
    or sooner, at the instant access ends by itself (`allowed_until` as the
    caller last checked it, then what each check answers: a token's expiry).
    No event is sent once a check is due and before it has run. When access is
    gone, AccessLost is raised; `still_allowed` may raise its own error instead.
    """
    async with session() as reading:
        if after is not None:
            await check_cursor(reading, project_id, after)
            last = after
        else:
            last = -1
    clock = asyncio.get_running_loop().time
    wait = _seconds_to_check(recheck_every, allowed_until)
    check_at = clock() + wait  # the clock read after the wall clock: never before the instant
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
                    message = await _next_message(live, check_at - clock())
                    if message is None or "access" in message or "resync" in message:
                        allowed = await still_allowed()
                        if allowed is False:
                            raise AccessLost
                        until = allowed if isinstance(allowed, datetime) else None
                        wait = _seconds_to_check(recheck_every, until)
                        check_at = clock() + wait
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
