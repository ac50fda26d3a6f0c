"""Following numbered events: the ordered, gapless stream every subscription is built on.

`follow_stream` subscribes to the bus first, then sends the current state (or replays
from the events table after a cursor), then the live events; an event already sent is
dropped, and a gap (a lost publish, a bus outage) is read from the table first. What
it follows is a `Stream`: one project's events (`ProjectStream`, and `follow` for
short), one team's library events (`services.realtime.library_events`) or one team's
events (`services.realtime.team_events`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol, TypeVar

from services.realtime.bus import EventBus, Message, SubscriberTooSlow, Subscription
from services.realtime.events import (
    ProjectEvent,
    access_channel,
)

# What a feed follows (services.realtime.streams), named here too as callers know it.
from services.realtime.streams import PAGE as PAGE
from services.realtime.streams import AccessLost as AccessLost
from services.realtime.streams import CursorExpired as CursorExpired
from services.realtime.streams import Event as Event
from services.realtime.streams import ProjectStream as ProjectStream
from services.realtime.streams import Stream as Stream
from services.realtime.streams import check_cursor as check_cursor
from services.realtime.streams import check_stream_cursor as check_stream_cursor
from services.realtime.streams import events_after as events_after
from services.realtime.streams import last_sequence as last_sequence
from services.tables import (
    utcnow,
)

logger = logging.getLogger("studio.events")

E = TypeVar("E", bound=Event)


Opener = Callable[[], Any]  # an async context manager yielding an AsyncSession


class Parked:
    """A follower whose events a shared source delivers for now (see `Sharing`).

    The source reads `last` (the number of the last event this follower has sent),
    moves it on as it delivers, and asks `open()` before each event: closed once an
    access notice came in for the follower or its next access check is due. A
    source that cannot deliver (closed, or it stops) calls `finish(ended=False)`;
    the follower then checks its access and reads on from the table after `last`
    itself. `finish(ended=True)`: the stream ended after the last event delivered.
    A source that writes what it delivered later (a slow socket) asks `open()`
    again before each write, and drops what the gate no longer lets through,
    moving `last` back to the last event written (see `leave`).
    """

    def __init__(
        self,
        last: int,
        notices: Subscription,
        check_at: float,
        closer: contextlib.AbstractAsyncContextManager[Subscription],
    ) -> None:
        self.last = last
        self.notices = notices
        self._seen = notices.notices_received
        self._check_at = check_at
        self._closer = closer
        self._clock = asyncio.get_running_loop().time
        self.outcome: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.on_leave: Callable[[bool], Awaitable[bool]] | None = None
        """Set by the source: stop delivering (and, if told, wait for what it queued);
        True if everything it delivered went out (see `leave`)."""

    def open(self, now: float | None = None) -> bool:
        """Whether the source may deliver an event now: no notice waits, no check is due
        (as of `now`, the event loop's time, when the source read it once for all its
        followers; else as of this call)."""
        if now is None:
            now = self._clock()
        return self.notices.notices_received == self._seen and now < self._check_at

    def finish(self, *, ended: bool) -> None:
        """Give the follower back (see the class)."""
        if not self.outcome.done():
            self.outcome.set_result(ended)

    async def leave(self, *, drain: bool) -> bool:
        """The follower takes its delivery back; with `drain`, once what the source
        queued for it has gone out; without, the source drops what it queued and did
        not write, and moves `last` back to the last event it wrote (the follower
        reads the rest from the table, after checking access). True if everything
        delivered went out; False if some was dropped, with `drain` too (the gate
        closed while it drained): then the follower checks and reads on after `last`
        as well. Its notices subscription closes."""
        self.finish(ended=False)
        try:
            if self.on_leave is not None:
                return await self.on_leave(drain)
            return True
        finally:
            await self._closer.__aexit__(None, None, None)


class Sharing(Protocol):
    """How a follow takes part in sharing one feed between followers (api/fanout.py).

    A follower offers itself to a source with `park` at points where its own checks
    are current and it has sent everything up to `last`; a source (a follow started
    `after=resume_from`, without a snapshot) says which event it is about to hand on.
    `follow_stream` calls these; it works the same without any.
    """

    @property
    def resume_from(self) -> int | None:
        """For a source: the number it starts after (no snapshot); None for a follower."""

    def ready(self, last: int) -> bool:
        """Whether `park` would take a follower that has sent everything up to `last`
        (cheap: asked at every point a follower could park)."""

    def reached(self, sequence: int) -> None:
        """A source is about to yield event `sequence`."""

    def park(self, parked: Parked) -> bool:
        """A follower offers to have its events delivered from now on; True if taken.

        Called with no await between the follower's last check of its notices and
        its leaving the bus, so nothing it must answer can slip in between.
        """


Allowed = bool | datetime
"""What an access check answers: False (access is gone), True, or an aware datetime:
allowed until then (the token's expiry), when access ends by itself."""


def follow(
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
    """Every event of a project, in order, each once: `follow_stream` of its `ProjectStream`."""
    return follow_stream(
        bus,
        session,
        ProjectStream(project_id),
        after=after,
        user_id=user_id,
        still_allowed=still_allowed,
        allowed_until=allowed_until,
        snapshot_on_resume=snapshot_on_resume,
        recheck_every=recheck_every,
    )


async def follow_stream(
    bus: EventBus,
    session: Opener,
    stream: Stream[E],
    *,
    after: int | None,
    user_id: int,
    still_allowed: Callable[[], Awaitable[Allowed]],
    allowed_until: datetime | None = None,
    snapshot_on_resume: bool = False,
    recheck_every: float = 60.0,
    sharing: Sharing | None = None,
) -> AsyncGenerator[E, None]:
    """Every event of a stream, in order, each once, for as long as the caller reads.

    Subscribes to the bus first, then starts: with `after`, from the events table
    after that number (first a SNAPSHOT marking it, if `snapshot_on_resume`);
    without it, with a SNAPSHOT marking the current number.
    Live events then follow; one already seen is dropped, and one that leaves a
    gap (a lost publish, a bus outage) makes the table fill the gap first. A
    reconnected bus says "resync", which also reads the table. An event the
    stream calls its end (`Stream.is_end`, PROJECT_DELETED) is sent last.

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

    Sharing (`sharing`, see `Sharing`): a follower whose checks are current and who
    has read all there is may hand its delivery to a shared source; it then keeps
    only a subscription to its access notices, and takes its delivery back (checking
    access at once, reading on from the table) when a notice comes, a check is due,
    or the source lets it go. When the source's stream ends, the follower ends once
    what the source queued for it has gone out; if the source dropped some of it
    instead (the gate closed meanwhile), it checks, reads on and ends by itself.
    A source reports what it follows, and starts after `sharing.resume_from`
    without a snapshot.
    """
    if sharing is not None and sharing.resume_from is not None:
        after, snapshot_on_resume = sharing.resume_from, False
    async with session() as reading:
        if after is not None:
            await check_stream_cursor(reading, stream, after)
            last = after
        else:
            last = -1
    checks = _Checks(still_allowed, recheck_every, allowed_until, stream.what)
    first = True
    notices_lost = False
    check_now = False
    while True:
        parked: Parked | None = None
        async with bus.subscribe(stream.channel, access_channel(user_id), notices=_NOTICES) as live:
            checks.watch(live, notices_lost=notices_lost)
            if check_now:  # taken back from a shared source: answer what it left unanswered
                await checks.run()
                check_now = False
            if first and (last == -1 or snapshot_on_resume):
                if last == -1:
                    async with session() as reading:
                        last = await stream.last_sequence(reading)
                await checks.before_sending()
                if sharing is not None:
                    sharing.reached(last)
                yield stream.snapshot(last)
            first = False
            catch_up = True  # after (re)subscribing, the table first
            try:
                while True:
                    if catch_up:
                        async for missed in _read_table(session, stream, last):
                            await checks.before_sending()
                            last = missed.sequence
                            if sharing is not None:
                                sharing.reached(last)
                            yield missed
                            if stream.is_end(missed):
                                return
                        catch_up = False
                    if sharing is not None and checks.current() and sharing.ready(last):
                        parked = await _park(bus, user_id, sharing, checks, last)
                        if parked is not None:
                            break
                    message = await _next_message(live, checks.seconds_left())
                    if message is None or any(key in message for key in _NOTICES):
                        await checks.run()
                        catch_up = True
                        continue
                    live_event = stream.from_message(message)
                    if stream.is_end(live_event):
                        await checks.before_sending()
                        if sharing is not None:
                            sharing.reached(live_event.sequence)
                        yield live_event
                        return
                    if live_event.sequence == last + 1:
                        await checks.before_sending()
                        last = live_event.sequence
                        if sharing is not None:
                            sharing.reached(last)
                        yield live_event
                    elif live_event.sequence > last + 1:
                        catch_up = True  # a gap: a publish was lost; the table has it
            except SubscriberTooSlow:
                logger.info(
                    "a subscriber of %s fell behind; reading on from the table", stream.channel
                )
                notices_lost = True
        if parked is not None:
            ended = False
            try:
                ended = await _parked(parked, checks)
            except BaseException:
                await parked.leave(drain=False)
                raise
            # The stream's last frames go out before it ends; otherwise (or if the gate
            # closed while they drained) what the source queued and did not write is
            # read again from the table, the end included, after a check.
            drained = await parked.leave(drain=ended)
            last = parked.last
            if ended and drained:
                return
            check_now = True


async def _park(
    bus: EventBus, user_id: int, sharing: Sharing, checks: _Checks, last: int
) -> Parked | None:
    """Offer the follower to the shared source: its Parked (holding a subscription to
    the user's access notices) if taken, None if not."""
    closer = bus.subscribe(access_channel(user_id), notices=_NOTICES)
    subscription = await closer.__aenter__()
    # Subscribed to the notices before leaving the follower's own subscription, and
    # none waits unanswered there: every notice from now on reaches `subscription`.
    if checks.current():
        parked = Parked(last, subscription, checks.check_at, closer)
        if sharing.park(parked):
            return parked
    await closer.__aexit__(None, None, None)
    return None


async def _parked(parked: Parked, checks: _Checks) -> bool:
    """Wait while the source delivers: True when the stream ended, False to read on
    (a notice came, a check is due, or the source let the follower go)."""
    waiter: asyncio.Future[Any] = asyncio.ensure_future(parked.notices.get())
    outcome: asyncio.Future[Any] = parked.outcome
    try:
        await asyncio.wait(
            [outcome, waiter],
            timeout=max(0.0, checks.seconds_left()),
            return_when=asyncio.FIRST_COMPLETED,
        )
    finally:
        waiter.cancel()
    return parked.outcome.done() and parked.outcome.result()


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
        what: str = "project",
    ) -> None:
        self._still_allowed = still_allowed
        self._what = what
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

    @property
    def check_at(self) -> float:
        """When the next check is due, on the event loop's clock."""
        return self._check_at

    def current(self) -> bool:
        """Whether the last check still holds: none is due, no notice waits unanswered."""
        live = self._live
        return self.seconds_left() > 0 and (
            live is None or live.notices_received == self._notices_seen
        )

    async def run(self) -> None:
        """Check access now; raises AccessLost (or what `still_allowed` raises) if it is gone."""
        if self._live is not None:  # every notice queued so far is answered by this check
            self._notices_seen = self._live.notices_received
        allowed = await self._still_allowed()
        if allowed is False:
            raise AccessLost(self._what)
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


async def _read_table(session: Opener, stream: Stream[E], after: int) -> AsyncIterator[E]:
    """The stored events after `after`; then, if the stream's subject is gone, its end."""
    while True:
        async with session() as reading:
            page = await stream.events_after(reading, after, PAGE)
            end = None
            if len(page) < PAGE:
                end = await stream.end_after(reading, page[-1].sequence if page else after)
        for item in page:
            yield item
        if end is not None:
            yield end
            return
        if len(page) < PAGE:
            return
        after = page[-1].sequence
