"""Subscriptions shared over graphql-transport-ws: one execution and one encoded frame per
event for every subscriber of the same operation, variables and user.

Each subscription starts on its own, exactly as an unshared one: signed in, checked,
limited, its first message (a snapshot, or a replay after `after`) its own. Once it
has sent everything there is and its access checks are current, its feed
(`services.realtime.feed.follow_stream`) parks it with the group of its key:

- the key is the document, the operation name, the variables and the user. Rights
  in this API are a user's (their teams and roles), never a token's, so one user's
  subscribers see the same result; two users never share a frame;
- the group runs the subscription once more, as a source that starts after the
  first subscriber's last event (no snapshot), executes each event once, encodes
  the `next` payload once, and writes `{"id":<id>,"type":"next","payload":...}`
  to each parked subscriber, only the id spliced in;
- before each frame it asks the subscriber's own gate (`feed.Parked.open`): a
  subscriber for whom an access notice came in (a logout, a change of team) or
  whose next check is due (its token's expiry, the periodic check) is handed back
  instead: it checks at once as an unshared one does, reads on from the events
  table after the last frame it was sent, and may park again later;
- a subscriber whose socket does not keep up (`OUTBOX` frames or `OUTBOX_BYTES`
  of payload queued, the group's own text rather than a copy) is handed back
  too: memory stays bounded and nothing is lost, as with the bus's own cut-off;
- a queued frame is written only while that gate is open: the writer asks it
  again before each one, the write that waited for the socket to drain included,
  whenever the socket drains, the subscriber parked or leaving;
- a subscriber handed back with frames queued and not yet written, or whose
  writer found its gate closed, drops them and reads them again from the table
  after the last frame written, once it has checked its access: a queue is never
  sent past a logout or a removal;
- when the source's stream ends (the project deleted, the shot deleted) its
  subscribers end with it after its last frame, once their queues have gone out;
  one whose queue was cut short checks and reads the rest, the end included,
  from the table itself. When the source fails (its own access check, an error
  before any data) they are handed back and decide for themselves.

So the database is read once per event and group, whatever the number of
subscribers, and each subscriber costs a gate check and a socket write.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope
from starlette.types import Send as ASGISend
from strawberry.schema.base import BaseSchema
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.utils.aio import aclosing

from api.ws_protocol import StudioWebSocketProtocol, TextMessage
from schema.context import Context, signed_in
from services.realtime.feed import Parked

logger = logging.getLogger("studio.fanout")

OUTBOX = 256
"""Frames a subscriber's socket may have waiting before it is handed back (like the
bus's `queue_size`)."""

OUTBOX_BYTES = 4 * 1024 * 1024
"""Bytes of payload (ASCII JSON) a subscriber's socket may have waiting before it is
handed back, however few the frames: a storyboard's frame can be hundreds of kB."""

EMPTY_FOR = 10.0
"""Seconds a group with no subscriber waits for one before it stops."""

FAILED_FOR = 5.0
"""Seconds after a group failed before its key gets another (its subscribers go on
unshared meanwhile), so a failure that repeats costs little."""

Key = tuple[str, str | None, str, int]
Send = Callable[[Message], Coroutine[Any, Any, None]]

TRANSPORT_SEND = "studio.transport_send"
"""The scope key under which `TransportSend` keeps the server's own ASGI `send`."""

TRANSPORT_WRITE = "studio.transport_write"
"""The scope key under which `TransportSend` keeps the WebSocket protocol's
`write_now` (`api.ws_protocol.StudioWebSocketProtocol`), when the server runs it."""

WriteNow = Callable[[TextMessage], bool]


class TransportSend:
    """ASGI middleware, outside every other that sees WebSockets: keeps the server's
    own `send` in a WebSocket's scope (`TRANSPORT_SEND`), for `Follower` to write
    shared frames with.

    A shared `next` frame goes to a thousand sockets per event; through Starlette's
    `WebSocket.send` and each middleware's wrapper it costs about a tenth more CPU
    per subscriber than written directly. None of them needs to see those frames:
    `api.limits.UnsignedWebSocketCap` watches for `connection_ack` only, which, as
    the handshake, every unshared frame and the close, still goes through them all.

    Under `studio serve` that `send` is `StudioWebSocketProtocol.send`; its
    protocol's `write_now` is kept too (`TRANSPORT_WRITE`), which writes a frame
    with no coroutine at all and, for a small one, the bytes framed once per event.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: ASGISend) -> None:
        if scope["type"] == "websocket":
            scope[TRANSPORT_SEND] = send
            protocol = getattr(send, "__self__", None)
            if isinstance(protocol, StudioWebSocketProtocol):
                scope[TRANSPORT_WRITE] = protocol.write_now
        await self.app(scope, receive, send)


def group_key(
    query: str, operation_name: str | None, variables: dict[str, object] | None, user_id: int
) -> Key:
    """The key subscribers share a group by: document, operation name, variables, user."""
    canonical = json.dumps(variables or {}, sort_keys=True, separators=(",", ":"))
    return (query, operation_name, canonical, user_id)


class FanOut:
    """The groups of this process, by key. One per app (the GraphQL view holds it)."""

    def __init__(self, schema: BaseSchema) -> None:
        self._schema = schema
        self._groups: dict[Key, _Group] = {}
        self._failed: dict[Key, float] = {}

    @property
    def groups(self) -> int:
        """Groups running now."""
        return len(self._groups)

    def follower(
        self,
        key: Key,
        operation_id: str,
        send: Send,
        context: Context,
        query: str,
        variables: dict[str, object] | None,
        operation_name: str | None,
        write_now: WriteNow | None = None,
    ) -> Follower:
        """The sharing part of one subscription (`Context.sharing`): `send` is its
        socket's ASGI send (`TRANSPORT_SEND`, or the WebSocket's own); `write_now`,
        its protocol's (`TRANSPORT_WRITE`), when there is one. Its protocol handler
        calls `stop` when the client completes the operation."""
        return Follower(
            self, key, operation_id, send, context, query, variables, operation_name, write_now
        )

    def _group_for(self, follower: Follower, last: int) -> _Group | None:
        group = self._groups.get(follower.key)
        if group is None or group.closed:
            now = asyncio.get_running_loop().time()
            if self._failed.get(follower.key, now) > now:
                return None
            self._failed.pop(follower.key, None)
            group = _Group(self, follower, last)
            self._groups[follower.key] = group
        return group

    def _discard(self, group: _Group, *, failed: bool = False) -> None:
        if self._groups.get(group.key) is group:
            del self._groups[group.key]
        if failed:
            now = asyncio.get_running_loop().time()
            if len(self._failed) > 1000:  # forget the keys whose wait is over
                self._failed = {key: until for key, until in self._failed.items() if until > now}
            self._failed[group.key] = now + FAILED_FOR


class Follower:
    """One subscription's side of sharing (a `feed.Sharing` follower): parks with its
    group, and writes the group's frames to its socket with its id spliced in."""

    resume_from: int | None = None

    def __init__(
        self,
        fanout: FanOut,
        key: Key,
        operation_id: str,
        send: Send,
        context: Context,
        query: str,
        variables: dict[str, object] | None,
        operation_name: str | None,
        write_now: WriteNow | None = None,
    ) -> None:
        self.fanout = fanout
        self._write_now = write_now
        self.key = key
        self.context = context
        self.query, self.variables, self.operation_name = query, variables, operation_name
        self._send = send
        self._prefix = '{"id":' + json.dumps(operation_id) + ',"type":"next","payload":'
        self._parked: Parked | None = None
        # The Parked it was parked with, kept after it leaves: its writer asks its gate
        # before each queued frame, even while the stream's last frames drain.
        self._gate: Parked | None = None
        self._group: _Group | None = None
        # The group's payloads waiting for the socket: the text every subscriber shares,
        # made a frame only when written, so a queue holds no copy of its own.
        self._outbox: collections.deque[tuple[str, int]] = collections.deque()
        self._queued = 0
        self._written = -1  # the position of the last frame written to the socket
        self._cut_short = False  # queued frames were dropped since it parked
        self._writer: asyncio.Future[None] | None = None
        # The write that had to wait (its own task, awaited by the writer): dropped
        # with the writer, even one that has not yet run a step to await it.
        self._waiting: asyncio.Future[None] | None = None

    @property
    def queued_bytes(self) -> int:
        """Bytes of the payloads waiting for this subscriber's socket."""
        return self._queued

    def reached(self, sequence: int) -> None:
        """A follower reports nothing: only a source does."""

    def ready(self, last: int) -> bool:
        """Whether its group (made now if there is none) takes it after `last`."""
        group = self.fanout._group_for(self, last)
        return group is not None and group.accepts(last)

    def park(self, parked: Parked) -> bool:
        """Join the group: from now on its frames are written for this subscription."""
        group = self.fanout._group_for(self, parked.last)
        if group is None or not group.accepts(parked.last):
            return False
        self._parked, self._gate, self._group = parked, parked, group
        self._written = parked.last
        self._cut_short = False
        parked.on_leave = self._leave
        group.add(self)
        return True

    def deliver(
        self, text: str, position: int, now: float, messages: dict[str, TextMessage]
    ) -> None:
        """Write the group's payload `text` for event `position`, unless the subscriber
        has it already, or its gate is closed as of `now` (the event loop's time when
        the event's delivery began; then it is handed back). `messages` holds the
        event's frames by operation id prefix, each made once for all the
        subscribers whose operation has that id (most clients number theirs from 1)."""
        parked = self._parked
        if parked is None or position <= parked.last:
            return
        if not parked.open(now):
            self._hand_back()
            return
        parked.last = position
        if self._writer is not None:
            self._outbox.append((text, position))
            self._queued += len(text)
            if len(self._outbox) >= OUTBOX or self._queued >= OUTBOX_BYTES:
                self._hand_back()  # it reads what is queued again from the table
            return
        # The write runs now: writing to a thousand sockets costs a thousand calls, not
        # a thousand tasks (nor coroutines, with `write_now`); only a write that must
        # wait (the socket's buffer is full) becomes a task, which runs the rest.
        message = messages.get(self._prefix)
        if message is None:
            message = messages[self._prefix] = TextMessage(self._prefix + text + "}")
        write_now = self._write_now
        if write_now is not None and write_now(message):
            self._written = position
            return
        try:
            writing = self._send({"type": "websocket.send", "text": message.text})
            try:
                waiting = writing.send(None)
            except StopIteration:  # written without a wait, as nearly always
                self._written = position
                return
        except Exception:  # the socket is gone: its handler ends the operation
            self._hand_back()
            return
        # Made only if the gate is still open when the socket drains, and counted
        # written in the step that writes it: a follower handed back in the same turn
        # (its task may run before the writer's) must not read that event again.
        self._waiting = asyncio.ensure_future(
            _Rest(
                writing,
                waiting,
                may_write=parked.open,
                written=functools.partial(self._wrote, position),
            )
        )
        self._writer = asyncio.ensure_future(self._drain(self._waiting, position))

    def stop(self) -> None:
        """The client completed the operation (its handler's `cleanup_operation`):
        nothing more goes out under its id, from now. Its group forgets it, and what
        waits for its socket is dropped, a write already waiting for the socket to
        take more included (cancelled before it runs). The operation's task, which
        is cancelled too, leaves at its next step; a write that waited would have
        gone out in between, whenever the socket drained in the same turn of the loop."""
        if self._group is not None:
            self._group.remove(self)
        self._parked = None  # nothing more is delivered (`deliver` asks first)
        writer = self._writer
        if writer is not None:
            self._drop(writer)

    def _frame(self, text: str) -> Message:
        return {"type": "websocket.send", "text": self._prefix + text + "}"}

    def release(self, *, ended: bool) -> None:
        """The group stops: its stream ended (`ended`), or it failed."""
        parked = self._parked
        if parked is not None:
            parked.finish(ended=ended)

    def _hand_back(self) -> None:
        if self._group is not None:
            self._group.remove(self)
        if self._parked is not None:
            self._parked.finish(ended=False)

    async def _drain(self, pending: Awaitable[None], position: int) -> None:
        """The writer: finish the write that waits for the socket (`pending`, the
        frame of event `position`, made only if the gate is open then), then write
        the queue as the socket takes it, each frame only while the gate is open.
        The gate may close in any turn of the loop (a notice handed over, a check
        due) before the follower's own task can act, and while the stream's last
        frames drain nothing else asks it."""
        try:
            await pending
            self._waiting = None
            self._written = position
            gate = self._gate
            while self._outbox:
                if gate is None or not gate.open():
                    self._forget_queue()
                    self._hand_back()
                    return
                text, position = self._outbox[0]
                # Asked again if the socket makes it wait (see `_Rest`).
                await _Rest(
                    self._send(self._frame(text)),
                    _UNSTARTED,
                    may_write=gate.open,
                    written=functools.partial(self._wrote, position),
                )
                self._outbox.popleft()
                self._queued -= len(text)
                self._written = position
        except Exception:
            self._forget_queue()
            self._hand_back()
        finally:
            if self._writer is asyncio.current_task():
                self._writer, self._waiting = None, None

    def _wrote(self, position: int) -> None:
        """The frame of event `position`, which had to wait, went to the socket."""
        self._written = position

    def _forget_queue(self) -> None:
        """Drop what is queued and not yet written: it is read again from the table
        (the gate's `last` goes back to the last frame written), after the access
        check the follower makes first, so it is never sent unchecked."""
        self._outbox.clear()
        self._queued = 0
        self._cut_short = True
        if self._gate is not None:
            self._gate.last = self._written

    async def _leave(self, drain: bool) -> bool:
        """`Parked.on_leave`: stop delivering; with `drain`, wait for the queue to go
        out (or for the writer to find the gate closed and drop it). True if
        everything delivered since it parked went out, False if a queue was dropped
        (the follower checks, then reads on from the gate's `last`)."""
        if self._group is not None:
            self._group.remove(self)
        self._group, self._parked = None, None
        writer = self._writer
        if writer is not None and drain:
            try:
                await asyncio.shield(writer)
            except asyncio.CancelledError:
                # The operation ends while its queue drains (the client completed it, or
                # the socket is closing): nothing more may go out under its id, and the
                # queue must not outlive it.
                self._drop(writer)
                raise
        elif writer is not None:
            self._forget_queue()
            self._drop(writer)
        return not self._cut_short

    def _drop(self, writer: asyncio.Future[None]) -> None:
        self._outbox.clear()
        self._queued = 0
        writer.cancel()
        # A writer cancelled before its first step never awaits (so never cancels) the
        # write waiting for the socket, which would go out once the socket drained.
        if self._waiting is not None:
            self._waiting.cancel()
        if self._writer is writer:
            self._writer, self._waiting = None, None


class _Source:
    """A group's own subscription's side of sharing (a `feed.Sharing` source)."""

    def __init__(self, group: _Group, after: int) -> None:
        self.group = group
        self.resume_from: int | None = after

    def reached(self, sequence: int) -> None:
        self.group.position = sequence

    def ready(self, last: int) -> bool:
        return False

    def park(self, parked: Parked) -> bool:
        return False


class _Group:
    """Subscribers of one key, and the one subscription that executes for them all."""

    def __init__(self, fanout: FanOut, first: Follower, after: int) -> None:
        self.fanout = fanout
        self.key = first.key
        self.after = after
        self.position = after
        self.last_frame = after
        self.closed = False
        self.executions = 0
        self._members: dict[int, Follower] = {}
        self._empty: asyncio.TimerHandle | None = None
        self._task = asyncio.ensure_future(self._run(first))
        self._schedule_stop()

    def accepts(self, last: int) -> bool:
        """Whether a follower that has sent all up to `last` misses nothing by joining."""
        return not self.closed and self.after <= last and self.last_frame <= last

    def add(self, follower: Follower) -> None:
        self._members[id(follower)] = follower
        if self._empty is not None:
            self._empty.cancel()
            self._empty = None

    def remove(self, follower: Follower) -> None:
        self._members.pop(id(follower), None)
        if not self._members:
            self._schedule_stop()

    def _schedule_stop(self) -> None:
        if self._empty is None and not self.closed:
            self._empty = asyncio.get_running_loop().call_later(EMPTY_FOR, self._stop_if_empty)

    def _stop_if_empty(self) -> None:
        self._empty = None
        if not self._members and not self.closed:
            self.closed = True
            self.fanout._discard(self)
            self._task.cancel()

    async def _run(self, first: Follower) -> None:
        ended = stopped = False
        try:
            ended = await self._execute(first)
        except asyncio.CancelledError:
            stopped = True
        except Exception:
            logger.exception("a shared subscription failed; its subscribers go on unshared")
        finally:
            self.closed = True
            self.fanout._discard(self, failed=not (ended or stopped))
            if self._empty is not None:
                self._empty.cancel()
            members, self._members = list(self._members.values()), {}
            for follower in members:
                follower.release(ended=ended)

    async def _execute(self, first: Follower) -> bool:
        """Run the subscription for the group; True if its stream ended by itself."""
        own = first.context
        # The followers' subscriptions are counted against the limits; this one is not.
        resources = dataclasses.replace(own.resources, limits=None)
        context = await signed_in(resources, own.token)
        if context.actor is None:
            return False
        context.address = own.address
        context.sharing = _Source(self, self.after)
        schema = first.fanout._schema
        source = await schema.subscribe(
            first.query,
            variable_values=first.variables,
            context_value=context,
            operation_name=first.operation_name,
        )
        async with aclosing(source):
            async for result in source:
                if isinstance(result, PreExecutionError) or result.data is None:
                    return False  # each follower finds out for itself
                self._distribute(result)
        return True

    def _distribute(self, result: ExecutionResult) -> None:
        self.executions += 1
        payload: dict[str, object] = {"data": result.data}
        if result.errors:
            payload["errors"] = [error.formatted for error in result.errors]
        if result.extensions:
            payload["extensions"] = result.extensions
        text = json.dumps(payload, separators=(",", ":"))
        position = self.position
        # One clock reading for the event: the gates' due checks are compared with the
        # moment its delivery began (a thousand writes take a few ms).
        now = asyncio.get_running_loop().time()
        messages: dict[str, TextMessage] = {}
        for follower in list(self._members.values()):
            follower.deliver(text, position, now, messages)
        self.last_frame = position


_UNSTARTED: Any = object()
"""`_Rest`'s `waiting` for a coroutine not yet started: its first step is its own."""


class _Rest:
    """The rest of a coroutine that `Follower.deliver` started and that now waits on
    `waiting` (a write waiting for the socket to take more), or the whole of one not
    yet started (`waiting` is `_UNSTARTED`: the caller asked the gate just now, so
    its first step, nearly always the only one, asks nothing). Each later step that
    would resume it asks `may_write` first: a write that waited is not made once the
    gate has closed (the coroutine is closed unwritten, and `_GateClosed` raised).
    `written` is called in the very step in which it returns (the frame went to the
    socket), not a turn of the loop later as its awaiter would learn."""

    def __init__(
        self,
        coroutine: Coroutine[Any, Any, None],
        waiting: Any,
        *,
        may_write: Callable[[], bool],
        written: Callable[[], None],
    ) -> None:
        self._coroutine = coroutine
        self._waiting = waiting
        self._may_write = may_write
        self._written = written

    def __await__(self) -> Generator[Any, Any, None]:
        waiting = self._waiting
        if waiting is _UNSTARTED:
            try:
                waiting = self._coroutine.send(None)
            except StopIteration:
                self._written()
                return
        while True:
            try:
                sent = yield waiting
            except BaseException as error:  # cancelled, or thrown in: pass it on
                try:
                    waiting = self._coroutine.throw(error)
                except StopIteration:
                    return
                continue
            if not self._may_write():
                self._coroutine.close()
                raise _GateClosed
            try:
                waiting = self._coroutine.send(sent)
            except StopIteration:
                self._written()
                return


class _GateClosed(Exception):
    """A write that waited for the socket was not made: the subscriber's gate closed
    meanwhile (its writer drops the queue and hands it back)."""
