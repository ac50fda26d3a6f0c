"""Shared feeds (api/fanout.py) at their edges, against a real server on real sockets.

The fixtures and clients are those of tests/test_shared_feeds.py. A parked
subscriber whose socket lags has frames queued for it. Handed back (a notice, a
check due, its queue full), it drops what is not yet written and reads it again
from the table once it has checked its access: nothing lost, nothing sent past a
logout. When the shared stream ends, its queue goes out first; if its operation
ends meanwhile (the client completes it), the queue goes with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import socket as tcp
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text, update
from sqlmodel import col

from api.fanout import Follower
from api.websocket import TransportWSHandler
from api.ws_protocol import TextMessage
from services.accounts.accounts import hash_token
from services.realtime.bus import EventBus
from services.realtime.events import access_channel
from services.tables import AccessTokenRow
from services.validation import PLANNER_DATA_MAX
from tests.factories import PASSWORD
from tests.realtime_harness import PROJECT_EVENTS, WAIT, Api, Feed, Socket
from tests.test_shared_feeds import (
    WITH_PLANNER,
    Running,
    _masked,
    queued_bytes,
    server,
    setup,
    sockets,
    stalled_beside_reading,
    stalled_subscriber,
    subscribe_all,
    until,
)

pytestmark = pytest.mark.e2e

__all__ = ["server"]  # the fixture, shared

PLANNER = "p" * (PLANNER_DATA_MAX - 10)
_MARKS = itertools.count()


async def _large_events(
    owner: Api, project_id: str, feed: Feed, count: int, *, until_alone: Running | None = None
) -> int:
    """`count` large events (fewer if `until_alone` and its groups come down to one
    member first), each received by `feed`; how many were made."""
    for n in range(count):
        mark = f"{next(_MARKS):08}"  # a change each time: the same text would be none
        await owner.mutate(
            "updateProject",
            {"id": project_id, "promptPlannerData": f"{mark}{PLANNER}"},
            "project { id }",
        )
        assert (await feed.next())["projectEvents"]["node"]["promptPlannerData"][:8] == mark
        if until_alone is not None and until_alone.members() == [1]:
            return n + 1
    return count


async def _queue_waits(server: Running, owner: Api, project_id: str, feed: Feed) -> None:
    """Large events until the stalled subscriber has a queue (not a full one)."""
    for n in range(40):
        await _large_events(owner, project_id, feed, 1)
        if max(queued_bytes()) > 0:
            assert server.members() == [2], n
            return
    raise AssertionError("the stalled subscriber never had a queue")


async def test_a_queue_draining_at_the_end_goes_when_its_operation_is_completed(
    server: Running,
) -> None:
    """The shared stream ends (the project deleted) while a subscriber's queue waits
    for its socket; the client completes the subscription. The cancel left the
    writer running (shielded): the queue stayed, written on under the completed id,
    for as long as the socket lived."""
    owner, project_id, _, _ = await setup(server)
    loop = asyncio.get_running_loop()
    async with stalled_beside_reading(server, owner.token, project_id) as (stalled, feed):
        await _queue_waits(server, owner, project_id, feed)
        await owner.mutate("deleteProject", {"id": project_id}, "deletedId")
        assert (await feed.next())["projectEvents"]["kind"] == "PROJECT_DELETED"
        await until(lambda: server.members() == [], "the group ended")
        assert max(queued_bytes()) > 0  # the end waits behind the queue
        await loop.sock_sendall(stalled, _masked({"id": "1", "type": "complete"}))
        await until(lambda: max(queued_bytes()) == 0, "the completed operation's queue gone")


async def test_a_queue_waiting_for_a_lagging_socket_is_not_sent_after_a_logout(
    server: Running,
) -> None:
    """A parked subscriber with a queue for its lagging socket, told of a logout,
    wrote the whole queue before it looked at the notice: a client reading slowly
    went on receiving events after the logout for as long as it took to read them,
    and its 4403 waited behind them. Unshared, a feed checks before each event."""
    owner, project_id, _, _ = await setup(server)
    async with stalled_beside_reading(server, owner.token, project_id) as (_, feed):
        await _queue_waits(server, owner, project_id, feed)
        await owner.data("mutation { logOut { userErrors { code } } }")
        assert await feed.socket.close_code() == 4403
        await until(lambda: max(queued_bytes()) == 0, "the queue dropped at the logout")


def _whole_frames(buffer: bytes) -> tuple[list[dict[str, Any]], bytes]:
    """The whole text messages at the start of `buffer` (server frames: unmasked,
    one frame each), and the bytes after them. A close frame is the message
    `{"close": <its code>}`."""
    messages: list[dict[str, Any]] = []
    while len(buffer) >= 2:
        length, start = buffer[1] & 0x7F, 2
        if length == 126:
            length, start = int.from_bytes(buffer[2:4], "big"), 4
        elif length == 127:
            length, start = int.from_bytes(buffer[2:10], "big"), 10
        if len(buffer) < start + length:
            break
        payload = buffer[start : start + length]
        if buffer[0] == 0x88:  # a close frame
            messages.append({"close": int.from_bytes(payload[:2], "big")})
        else:
            assert buffer[0] == 0x81, buffer[:2]  # a whole text frame
            messages.append(json.loads(payload))
        buffer = buffer[start + length :]
    return messages, buffer


async def _frames(
    raw: tcp.socket, wanted: int | None = None, *, quiet: float = 1.5
) -> list[dict[str, Any]]:
    """`wanted` text messages from a raw socket; with `wanted` None, every one it
    receives until it has been quiet for `quiet` s (or closed)."""
    loop = asyncio.get_running_loop()
    buffer = b""
    messages: list[dict[str, Any]] = []
    while wanted is None or len(messages) < wanted:
        try:
            chunk = await asyncio.wait_for(
                loop.sock_recv(raw, 1 << 20), quiet if wanted is None else WAIT
            )
        except TimeoutError:
            if wanted is not None:
                raise
            break
        if not chunk:
            assert wanted is None, f"closed after {len(messages)} messages"
            break
        found, buffer = _whole_frames(buffer + chunk)
        messages += found
    return messages if wanted is None else messages[:wanted]


async def test_a_subscriber_handed_back_with_a_full_queue_misses_nothing(server: Running) -> None:
    """Its queue dropped when it is handed back, the lagging subscriber reads the
    events again from the table: when the client reads at last, it gets every event,
    in order, each once."""
    owner, project_id, _, _ = await setup(server)
    async with stalled_beside_reading(server, owner.token, project_id) as (stalled, feed):
        made = await _large_events(owner, project_id, feed, 60, until_alone=server)
        assert server.members() == [1]  # handed back
        more = await _large_events(owner, project_id, feed, 3)
        stalled.setsockopt(tcp.SOL_SOCKET, tcp.SO_RCVBUF, 1 << 20)
        got = await _frames(stalled, 1 + made + more)  # the snapshot, the events
    assert {message["id"] for message in got} == {"1"}
    events = [message["payload"]["data"]["projectEvents"] for message in got]
    assert events[0]["kind"] == "SNAPSHOT"
    sequences = [event["sequence"] for event in events]
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))
    # (An event read again from the table shows its node as it is now: the last text.)
    assert events[-1]["node"]["promptPlannerData"][:8] == f"{next(_MARKS) - 1:08}"


# A group's payload for an event, as `_Group._distribute` hands it to `Follower.deliver`.
FRAME = '{"data":{"projectEvents":{"sequence":0,"kind":"PROJECT_UPDATED"}}}'


def _handler_of(follower: Follower) -> tuple[TransportWSHandler, str]:
    """The protocol handler running the follower's operation, and the operation's id."""
    for handler in gc.get_objects():
        if isinstance(handler, TransportWSHandler):
            for operation_id, (_, running) in handler._followers.items():
                if running is follower:
                    return handler, operation_id
    raise AssertionError("no handler runs this follower")


def _protocol_of(follower: Follower) -> Any:
    """The WebSocket protocol (api/ws_protocol.py) whose `write_now` the follower writes with."""
    protocol = getattr(follower._write_now, "__self__", None)
    assert protocol is not None
    return protocol


async def _two_on_one_socket(
    server: Running, project_id: str, socket: Socket
) -> tuple[Feed, Feed, Follower, TransportWSHandler]:
    """Two like subscriptions on one socket, both parked in one group: the first, the
    second, the first's follower and their protocol handler."""
    first, second = [
        await socket.subscribe(PROJECT_EVENTS, {"projectId": project_id}) for _ in range(2)
    ]
    for feed in (first, second):
        assert (await feed.next())["projectEvents"]["kind"] == "SNAPSHOT"
    await until(lambda: server.members() == [2], "both parked")
    (group,) = server.fanout._groups.values()
    for follower in group._members.values():
        handler, operation_id = _handler_of(follower)
        if operation_id == first.id:
            return first, second, follower, handler
    raise AssertionError("the first subscription is not in the group")


async def test_nothing_goes_out_under_an_operation_the_client_completed(server: Running) -> None:
    """A client's `complete` cancels its operation's task, which leaves its group at
    its next step. A frame the group delivers in between (here, delivered at once
    after the `complete` was handled, as an event's fan-out can be) went out under
    the completed id, which the protocol forbids and a client may reuse."""
    owner, project_id, scene_id, _ = await setup(server)
    async with sockets(server, owner.token, 1) as (socket,):
        completed, going_on, follower, handler = await _two_on_one_socket(
            server, project_id, socket
        )
        parked = follower._parked
        assert parked is not None
        # What the server does with the client's {"type": "complete"}, then a frame
        # for the follower, in the same step of the loop.
        await handler.handle_complete({"id": completed.id, "type": "complete"})
        follower.deliver(FRAME, parked.last + 1, asyncio.get_running_loop().time(), {})
        await owner.rename_scene(scene_id, "Pier")
        assert (await going_on.next())["projectEvents"]["kind"] == "SCENE_UPDATED"
        assert completed.queue.empty(), completed.queue.get_nowait()
        await until(lambda: server.members() == [1], "the completed one left")


async def test_a_frame_waiting_for_the_socket_is_not_written_after_a_complete(
    server: Running,
) -> None:
    """A parked subscriber's socket lags: one frame waits for the socket to take more,
    others are queued behind it. The client completes the operation, and in the same
    turn of the loop its socket drains (the transport calls `resume_writing`, as it
    does once the client has read). The waiting frame, then the queue, went out
    under the completed id before the operation's cancelled task got to drop them:
    the check that `deliver` makes was made by nothing that writes later."""
    owner, project_id, _, _ = await setup(server)
    async with stalled_beside_reading(server, owner.token, project_id) as (stalled, feed):
        await _queue_waits(server, owner, project_id, feed)
        (group,) = server.fanout._groups.values()
        follower = next(f for f in group._members.values() if f._writer is not None)
        handler, _ = _handler_of(follower)
        protocol = _protocol_of(follower)
        assert not protocol.writable.is_set()  # a write waits for the socket
        written = follower._written
        # In one turn of the loop: the client's socket has drained (its transport
        # calls `resume_writing`, which wakes the waiting write) and its
        # {"type": "complete"} is handled before that write runs.
        protocol.resume_writing()
        await handler.handle_complete({"id": "1", "type": "complete"})
        await until(lambda: server.members() == [1], "the completed one left")
        stalled.setsockopt(tcp.SOL_SOCKET, tcp.SO_RCVBUF, 1 << 20)
        got = await _frames(stalled)
    events = [message["payload"]["data"]["projectEvents"] for message in got]
    assert events[0]["kind"] == "SNAPSHOT"
    late = [event["sequence"] for event in events[1:] if event["sequence"] > written]
    assert late == [], f"written after the complete: {late} (last written before: {written})"


async def test_a_write_that_had_to_wait_is_dropped_with_its_queue_before_it_started(
    server: Running,
) -> None:
    """A frame for a socket whose buffer is over its high-water mark becomes a write
    that waits (a task of its own) and a writer task behind it. Dropping the queue
    cancelled the writer only: dropped before the writer had run a step, the waiting
    write was left to go out once the socket drained, under an operation the client
    had completed (or past a logout, or again after the subscriber read it from the
    table)."""
    owner, project_id, scene_id, _ = await setup(server)
    async with sockets(server, owner.token, 1) as (socket,):
        completed, going_on, follower, handler = await _two_on_one_socket(
            server, project_id, socket
        )
        parked = follower._parked
        assert parked is not None
        protocol = _protocol_of(follower)
        # In one turn of the loop: the socket's buffer passes its high-water mark (the
        # transport calls `pause_writing`), a frame for the follower has to wait, and
        # the client's {"type": "complete"} is handled; later the socket drains.
        protocol.pause_writing()
        follower.deliver(FRAME, parked.last + 1, asyncio.get_running_loop().time(), {})
        assert follower._writer is not None  # the frame waits
        await handler.handle_complete({"id": completed.id, "type": "complete"})
        protocol.resume_writing()
        await until(lambda: server.members() == [1], "the completed one left")
        await owner.rename_scene(scene_id, "Pier")
        assert (await going_on.next())["projectEvents"]["kind"] == "SCENE_UPDATED"
        assert completed.queue.empty(), completed.queue.get_nowait()


def _lagging() -> Follower:
    """The one shared subscriber with frames queued for its socket."""
    (follower,) = [
        follower
        for follower in gc.get_objects()
        if isinstance(follower, Follower) and follower._outbox
    ]
    return follower


def _hand_over(bus: EventBus, channel: str, message: dict[str, Any]) -> None:
    """What the bus's listener does with a message it received on `channel`: hand it
    to each of this process's subscriptions of the channel, at once."""
    for subscription in list(bus._subscribers.get(bus._wire(channel), ())):
        bus._deliver(subscription, message, channel)


def _notices_waiting(bus: EventBus, user_id: int) -> bool:
    """Whether every subscription to the user's access notices has had one handed over."""
    subscriptions = bus._subscribers.get(bus._wire(access_channel(user_id)), set())
    return bool(subscriptions) and all(s.notices_received for s in subscriptions)


async def _logout_heard_as_it_drains(
    server: Any, follower: Follower, protocol: Any, stalled: tcp.socket
) -> None:
    """The follower's user signed out (unannounced), then in one turn of the loop the
    logout's notice arrives and the stalled socket drains and reads on."""
    user_id = follower.key[3]
    await _signed_out_unannounced(server, user_id)
    _hand_over(server.state.bus, access_channel(user_id), {"access": "changed"})
    protocol.resume_writing()
    stalled.setsockopt(tcp.SOL_SOCKET, tcp.SO_RCVBUF, 1 << 20)


async def _signed_out_unannounced(server: Running, user_id: int) -> None:
    """What `logOut` does in the database (here every token of the user goes), its
    notice to the user's subscriptions held back."""
    async with server.db.write_engine.begin() as connection:
        await connection.execute(
            text("DELETE FROM access_tokens WHERE user_id = :user_id"), {"user_id": user_id}
        )


def _sequences(got: list[dict[str, Any]]) -> list[int]:
    """The event numbers of the `next` messages among `got`."""
    return [
        message["payload"]["data"]["projectEvents"]["sequence"]
        for message in got
        if message.get("type") == "next"
    ]


async def test_a_queue_is_not_written_past_a_logout_heard_as_the_socket_drains(
    server: Running,
) -> None:
    """A parked subscriber's socket lags: one frame waits for the socket to take more,
    others are queued behind it. The user logs out, and the bus hands the notice
    over in the turn of the loop in which the socket drains (its transport calls
    `resume_writing`, as it does once the client reads again). The writer wrote the
    whole queue before the subscriber's own task got to drop it: the client
    received events after its logout, before its 4403."""
    owner, project_id, _, _ = await setup(server)
    async with stalled_beside_reading(server, owner.token, project_id) as (stalled, feed):
        await _queue_waits(server, owner, project_id, feed)
        follower = _lagging()
        first_queued = follower._outbox[0][1]
        protocol = _protocol_of(follower)
        assert not protocol.writable.is_set()  # a write waits for the socket
        await _logout_heard_as_it_drains(server, follower, protocol, stalled)
        got = await _frames(stalled)
        assert await feed.socket.close_code() == 4403
    late = [sequence for sequence in _sequences(got) if sequence >= first_queued]
    assert late == [], f"queued, and written after the logout: {late}"
    assert got[-1] == {"close": 4403}


async def test_a_queue_draining_at_the_end_is_not_written_past_a_logout(
    server: Running,
) -> None:
    """The shared stream ends (the project deleted) while a subscriber's queue waits
    for its lagging socket, and the user logs out. Its feed waited for the queue to
    go out before it ended, and nothing asked the gate again: when the client read
    at last it received the queued events, after its logout, and the end, where an
    unshared subscription closes with 4403."""
    owner, project_id, _, _ = await setup(server)
    async with stalled_beside_reading(server, owner.token, project_id) as (stalled, feed):
        await _queue_waits(server, owner, project_id, feed)
        follower = _lagging()
        first_queued = follower._outbox[0][1]
        await owner.mutate("deleteProject", {"id": project_id}, "deletedId")
        assert (await feed.next())["projectEvents"]["kind"] == "PROJECT_DELETED"
        await until(lambda: server.members() == [], "the group ended")
        assert follower._outbox  # the end waits behind the queue
        await owner.data("mutation { logOut { userErrors { code } } }")
        user_id = follower.key[3]
        await until(lambda: _notices_waiting(server.state.bus, user_id), "the logout heard")
        stalled.setsockopt(tcp.SOL_SOCKET, tcp.SO_RCVBUF, 1 << 20)
        got = await _frames(stalled)
    late = [sequence for sequence in _sequences(got) if sequence >= first_queued]
    assert late == [], f"queued, and written after the logout: {late}"
    assert got[-1] == {"close": 4403}


async def test_a_queue_cut_short_at_the_end_by_a_notice_still_ends_the_stream(
    server: Running,
) -> None:
    """The same with a notice that leaves access as it was (the user signs out of
    another device): the queue is dropped all the same, the subscriber checks,
    reads on from the table (a deleted project keeps no events) and ends the stream
    itself: the events written before, in order, then the end and `complete`. (The
    frame that waited for the socket is dropped with the queue: the gate closed
    before the socket drained.)"""
    owner, project_id, _, _ = await setup(server)
    async with stalled_beside_reading(server, owner.token, project_id) as (stalled, feed):
        await _queue_waits(server, owner, project_id, feed)
        follower = _lagging()
        written = follower._written
        await owner.mutate("deleteProject", {"id": project_id}, "deletedId")
        assert (await feed.next())["projectEvents"]["kind"] == "PROJECT_DELETED"
        await until(lambda: server.members() == [], "the group ended")
        assert follower._outbox  # the end waits behind the queue
        other = await owner.mutate("logIn", {"email": owner.email, "password": PASSWORD}, "token")
        async with owner.as_user(other["token"]) as other_device:
            await other_device.data("mutation { logOut { userErrors { code } } }")
        user_id = follower.key[3]
        await until(lambda: _notices_waiting(server.state.bus, user_id), "the notice heard")
        stalled.setsockopt(tcp.SOL_SOCKET, tcp.SO_RCVBUF, 1 << 20)
        got = await _frames(stalled)
    sequences = _sequences(got)
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))
    events = [message["payload"]["data"]["projectEvents"] for message in got[:-1]]
    assert [events[0]["kind"], events[-1]["kind"]] == ["SNAPSHOT", "PROJECT_DELETED"]
    assert events[-1]["sequence"] == written + 1  # the end, read by the subscriber
    assert got[-1] == {"id": "1", "type": "complete"}


async def test_a_frame_the_socket_took_as_the_subscriber_was_handed_back_is_not_sent_twice(
    server: Running,
) -> None:
    """A parked subscriber's socket lags: one frame waits for the socket, others are
    queued behind it. The source lets it go (`finish(ended=False)`, as when its queue
    fills) in the turn of the loop in which the socket drains. The waiting frame is
    written at once, but the writer only counted it written a turn later: the
    subscriber, woken first, moved `last` back before that frame and read it again
    from the table, and the client received that event twice."""
    owner, project_id, _, _ = await setup(server)
    async with stalled_beside_reading(server, owner.token, project_id) as (stalled, feed):
        await _queue_waits(server, owner, project_id, feed)
        follower = _lagging()
        protocol = _protocol_of(follower)
        assert not protocol.writable.is_set()  # a write waits for the socket
        parked = follower._parked
        assert parked is not None
        # In one turn of the loop: the source lets the subscriber go, the socket drains.
        parked.finish(ended=False)
        protocol.resume_writing()
        stalled.setsockopt(tcp.SOL_SOCKET, tcp.SO_RCVBUF, 1 << 20)
        got = await _frames(stalled)
    sequences = _sequences(got)
    assert len(sequences) == len(set(sequences)), f"sent twice: {sequences}"
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))


async def test_the_frame_waiting_for_the_socket_is_not_written_past_a_logout(
    server: Running,
) -> None:
    """As `test_a_queue_is_not_written_past_a_logout_heard_as_the_socket_drains`, the
    frame that waits for the socket included: it is not in the
    transport yet (its write waits for the buffer to drain), and the logout is heard
    in the turn in which the socket drains. It went out after the logout."""
    owner, project_id, _, _ = await setup(server)
    async with stalled_beside_reading(server, owner.token, project_id) as (stalled, feed):
        await _queue_waits(server, owner, project_id, feed)
        follower = _lagging()
        written = follower._written
        protocol = _protocol_of(follower)
        assert not protocol.writable.is_set()  # a write waits for the socket
        await _logout_heard_as_it_drains(server, follower, protocol, stalled)
        got = await _frames(stalled)
        assert await feed.socket.close_code() == 4403
    late = [sequence for sequence in _sequences(got) if sequence > written]
    assert late == [], f"written after the logout: {late}"
    assert got[-1] == {"close": 4403}


async def test_a_socket_that_trickles_gets_every_event_once_in_order(server: Running) -> None:
    """A parked subscriber's client reads a little after each event, so its transport
    pauses and resumes again and again (write_now declining, writes waiting, queues
    forming and draining), while notices that leave its access as it was hand it back
    now and then: it receives every event, in order, each once."""
    owner, project_id, _, _ = await setup(server)
    loop = asyncio.get_running_loop()
    async with stalled_beside_reading(server, owner.token, project_id) as (stalled, feed):
        stalled.setblocking(False)
        received = b""
        made = 0
        for n in range(30):
            made += await _large_events(owner, project_id, feed, 1)
            if n % 7 == 3:
                other = await owner.mutate(
                    "logIn", {"email": owner.email, "password": PASSWORD}, "token"
                )
                async with owner.as_user(other["token"]) as other_device:
                    await other_device.data("mutation { logOut { userErrors { code } } }")
            for _ in range(2):
                try:
                    received += await asyncio.wait_for(loop.sock_recv(stalled, 96 << 10), 0.05)
                except TimeoutError:
                    break
        stalled.setsockopt(tcp.SOL_SOCKET, tcp.SO_RCVBUF, 1 << 20)
        found, rest = _whole_frames(received)
        got = found + await _frames_after(stalled, rest)
    sequences = _sequences(got)
    assert len(sequences) == len(set(sequences)), f"sent twice: {sequences}"
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))
    assert len(sequences) == 1 + made


async def _frames_after(raw: tcp.socket, buffer: bytes, quiet: float = 1.5) -> list[dict[str, Any]]:
    """The messages that `buffer` (the start of a message) and what follows it on
    `raw` make, until the socket has been quiet for `quiet` s."""
    loop = asyncio.get_running_loop()
    messages: list[dict[str, Any]] = []
    while True:
        try:
            chunk = await asyncio.wait_for(loop.sock_recv(raw, 1 << 20), quiet)
        except TimeoutError:
            break
        if not chunk:
            break
        found, buffer = _whole_frames(buffer + chunk)
        messages += found
    return messages


async def _subscribe_raw(raw: tcp.socket, operation_id: str, variables: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    message = {
        "id": operation_id,
        "type": "subscribe",
        "payload": {"query": WITH_PLANNER, "variables": variables},
    }
    await loop.sock_sendall(raw, _masked(message))


async def test_a_removal_from_a_team_stops_one_operation_on_a_lagging_socket_only(
    server: Running,
) -> None:
    """One lagging socket runs two shared subscriptions: a project of a team the user
    is removed from while frames wait for the socket, and a project of their own.
    Nothing of the first is written past the removal; the second gets every event,
    in order, each once."""
    owner, team_project, _, team_id = await setup(server)
    member = await Api(server.base_url).sign_up("Member")
    await member.join(owner, team_id)
    own_project = await member.create_project("Own")
    stalled = await stalled_subscriber(
        server, member.token, WITH_PLANNER, {"projectId": team_project}
    )
    try:
        await _subscribe_raw(stalled, "2", {"projectId": own_project})
        async with sockets(server, member.token, 2) as reading:
            team_feed = (
                await subscribe_all(reading[:1], WITH_PLANNER, {"projectId": team_project})
            )[0]
            own_feed = (await subscribe_all(reading[1:], WITH_PLANNER, {"projectId": own_project}))[
                0
            ]
            await until(lambda: server.members() == [2, 2], "all parked")
            made = 0
            for _ in range(12):
                await _large_events(owner, team_project, team_feed, 1)
                made += await _large_events(member, own_project, own_feed, 1)
            lagging = [f for f in gc.get_objects() if isinstance(f, Follower) and f._outbox]
            assert lagging, "no queue formed"
            team_written = [
                f._written
                for f in gc.get_objects()
                if isinstance(f, Follower)
                and f._prefix.startswith('{"id":"1"')
                and f._send is not None
                and f._outbox
            ]
            await owner.remove(member, team_id)
            for _ in range(4):
                made += await _large_events(member, own_project, own_feed, 1)
            stalled.setsockopt(tcp.SOL_SOCKET, tcp.SO_RCVBUF, 1 << 20)
            got = await _frames(stalled)
    finally:
        stalled.close()
    team = [m for m in got if m.get("id") == "1"]
    own = [m for m in got if m.get("id") == "2"]
    team_sequences = _sequences([m for m in team if m.get("payload", {}).get("data")])
    own_sequences = _sequences(own)
    assert own_sequences == list(range(own_sequences[0], own_sequences[0] + len(own_sequences)))
    assert len(own_sequences) == 1 + made, (own_sequences, made)
    assert len(team_written) == 1  # the team project's frames wait for the socket too
    late = [s for s in team_sequences if s > team_written[0]]
    assert late == [], f"written after the removal: {late}"
    assert team[-1]["type"] == "complete", team[-2:]
    assert team[-2]["payload"]["errors"], team[-2:]


async def test_a_queued_frame_waiting_for_the_socket_is_not_written_past_a_logout(
    server: Running,
) -> None:
    """As `test_the_frame_waiting_for_the_socket_is_not_written_past_a_logout`, with
    the writer further on: the client read a little, the writer wrote from its queue
    until the socket was full again, and its next queued frame waits for the socket.
    The logout is heard in the turn in which the socket drains: that frame went out
    after the logout (the writer had asked the gate before it began to wait)."""
    owner, project_id, _, _ = await setup(server)
    loop = asyncio.get_running_loop()
    async with stalled_beside_reading(server, owner.token, project_id) as (stalled, feed):
        await _queue_waits(server, owner, project_id, feed)
        await _large_events(owner, project_id, feed, 6)
        follower = _lagging()
        protocol = _protocol_of(follower)
        received = b""
        for _ in range(400):  # read a little until the writer waits inside its queue
            if (
                follower._waiting is None
                and follower._writer is not None
                and follower._outbox
                and not protocol.writable.is_set()
            ):
                break
            with contextlib.suppress(TimeoutError):
                received += await asyncio.wait_for(loop.sock_recv(stalled, 16 << 10), 0.05)
        else:
            raise AssertionError("the writer never waited inside its queue")
        written = follower._written
        await _logout_heard_as_it_drains(server, follower, protocol, stalled)
        found, rest = _whole_frames(received)
        got = found + await _frames_after(stalled, rest)
        assert await feed.socket.close_code() == 4403
    late = [sequence for sequence in _sequences(got) if sequence > written]
    assert late == [], f"written after the logout: {late}"
    assert got[-1] == {"close": 4403}


async def test_write_now_never_writes_past_the_high_water_mark_nor_after_a_loss(
    server: Running,
) -> None:
    """A socket that pauses and resumes again and again (the client reads a little at
    a time): whenever its transport holds more than its high-water mark, write_now
    declines; and once the client is gone while paused, it declines without raising."""
    owner, project_id, _, _ = await setup(server)
    loop = asyncio.get_running_loop()
    async with stalled_beside_reading(server, owner.token, project_id) as (stalled, feed):
        await _queue_waits(server, owner, project_id, feed)
        protocol = _protocol_of(_lagging())
        transport = protocol.transport
        _, high = transport.get_write_buffer_limits()
        probe = TextMessage('{"id":"probe","type":"next","payload":{}}')
        checked = 0
        for _ in range(40):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(loop.sock_recv(stalled, 32 << 10), 0.02)
            if transport.get_write_buffer_size() > high:
                before = transport.get_write_buffer_size()
                assert not protocol.write_now(probe)
                assert transport.get_write_buffer_size() == before
                checked += 1
            await _large_events(owner, project_id, feed, 1)
        assert checked
        stalled.close()
        await until(lambda: protocol.disconnected, "the loss seen")
        assert not protocol.write_now(probe)


@pytest.mark.parametrize("events_after", [False, True], ids=["quiet", "events-after"])
async def test_a_queue_is_not_written_past_its_token_expiry(
    server: Running, events_after: bool
) -> None:
    """A parked subscriber's token reaches its expiry while frames wait for its
    lagging socket; nothing is announced (an expiry is no notice), and the stream is
    quiet from then on or goes on (small events, so that its queue does not fill
    and hand it back before the expiry). When the client reads at last, nothing that
    waited goes out, nor anything later: the socket closes with 4403. The group's own source runs as the
    first subscriber, on another token of the same user, so it does not end at the
    expiry: each subscriber's own gate must. That one reads on."""
    owner, project_id, scene_id, _ = await setup(server)
    short = await owner.mutate("logIn", {"email": owner.email, "password": PASSWORD}, "token")
    expires_at = datetime.now(UTC) + timedelta(seconds=8)
    async with server.db.transaction() as session:
        await session.exec(
            update(AccessTokenRow)
            .where(col(AccessTokenRow.token_hash) == hash_token(short["token"]))
            .values(expires_at=expires_at)
        )
    variables = {"projectId": project_id}
    async with sockets(server, owner.token, 1) as reading:
        feed = (await subscribe_all(reading, WITH_PLANNER, variables))[0]
        await until(lambda: server.members() == [1], "the first parked")
        stalled = await stalled_subscriber(server, short["token"], WITH_PLANNER, variables)
        try:
            await until(lambda: server.members() == [2], "both parked")
            await _queue_waits(server, owner, project_id, feed)
            written = _lagging()._written
            assert datetime.now(UTC) < expires_at, "the queue formed after the expiry"
            renames = itertools.count()
            while datetime.now(UTC) < expires_at + timedelta(seconds=0.5):
                if events_after:  # small ones: its queue never fills before the expiry
                    await owner.rename_scene(scene_id, f"Quay {next(renames)}")
                    assert (await feed.next())["projectEvents"]["kind"] == "SCENE_UPDATED"
                await asyncio.sleep(0.2)
            stalled.setsockopt(tcp.SOL_SOCKET, tcp.SO_RCVBUF, 1 << 20)
            got = await _frames(stalled)
        finally:
            stalled.close()
        assert await _large_events(owner, project_id, feed, 1) == 1  # the first reads on
    late = [sequence for sequence in _sequences(got) if sequence > written]
    assert late == [], f"written after the expiry: {late} (last written before: {written})"
    assert got[-1] == {"close": 4403}
