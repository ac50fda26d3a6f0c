"""Shared feeds (api/fanout.py) at their edges, against a real server on real sockets.

The fixtures and clients are those of tests/test_shared_feeds.py. A subscriber
whose socket does not keep up is handed back with its queue still to go out; if
its operation ends meanwhile (the client completes it, or its socket goes), that
queue must go with it: not a frame more for that id, nor memory held for it.
"""

from __future__ import annotations

import asyncio

import pytest

from services.validation import PLANNER_DATA_MAX
from tests.realtime_harness import Api, Feed
from tests.test_shared_feeds import (
    WITH_PLANNER,
    Running,
    _masked,
    queued_bytes,
    server,
    setup,
    sockets,
    stalled_subscriber,
    subscribe_all,
    until,
)

pytestmark = pytest.mark.e2e

__all__ = ["server"]  # the fixture, shared


async def _flood_until_handed_back(
    server: Running, owner: Api, project_id: str, feed: Feed
) -> None:
    """Large events until the stalled subscriber is out of its group (its queue full)."""
    planner = "p" * (PLANNER_DATA_MAX - 10)
    for n in range(60):
        await owner.mutate(
            "updateProject",
            {"id": project_id, "promptPlannerData": f"{n:08}{planner}"},
            "project { id }",
        )
        await feed.next()
        if server.members() == [1]:
            return
    raise AssertionError("the stalled subscriber was never handed back")


async def test_a_handed_back_queue_goes_when_its_operation_is_completed(server: Running) -> None:
    """The client completes a subscription whose queue waits for its socket: the queue
    was kept, and written on under that id after the `complete`, for as long as the
    socket lived. A client could leave one such queue (up to OUTBOX_BYTES) per
    subscription it opened and completed, without limit."""
    owner, project_id, _, _ = await setup(server)
    variables = {"projectId": project_id}
    stalled = await stalled_subscriber(server, owner.token, WITH_PLANNER, variables)
    loop = asyncio.get_running_loop()
    try:
        async with sockets(server, owner.token, 1) as reading:
            feed = (await subscribe_all(reading, WITH_PLANNER, variables))[0]
            await until(lambda: server.members() == [2], "both parked")
            await _flood_until_handed_back(server, owner, project_id, feed)
            assert max(queued_bytes()) > 0  # its queue waits for the socket
            await loop.sock_sendall(stalled, _masked({"id": "1", "type": "complete"}))
            await until(lambda: max(queued_bytes()) == 0, "the completed operation's queue gone")
    finally:
        stalled.close()
