"""Project events on each engine: recorded with their change, numbered, published, followed."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import inspect as sa_inspect
from sqlmodel import col, select

from api.schema import schema
from schema import ids
from schema.enums import ProjectEventKind
from schema.events import field_name, field_names
from services.database import Database
from services.errors import InvalidInput
from services.generation.statuses import apply_prediction
from services.realtime import events, feed, recording
from services.realtime.bus import EventBus
from services.replicate.gateway import Prediction
from services.tables import (
    ProjectEventCounterRow,
    ProjectEventRow,
    ProjectRow,
    ShotImageRow,
    utcnow,
)
from tests.factories import (
    Account,
    account,
    backlog,
    iteration,
    join,
    mutate,
    mutate_ok,
    project,
    scene,
    statements,
)


@pytest.fixture
async def bus() -> AsyncIterator[EventBus]:
    instance = EventBus("memory://", queue_size=8)
    await instance.start()
    yield instance
    await instance.stop()


@pytest.fixture
async def live_db(db: Database, bus: EventBus) -> AsyncIterator[Database]:
    """The test database, publishing on a memory bus as a server does."""
    database = Database(db.url, bus=bus)
    yield database
    await database.dispose()


async def rename(db: Database, owner: Account, project_id: str, title: str) -> None:
    """One project event: the project gets a new title."""
    await mutate_ok(
        db, "updateProject", {"id": project_id, "title": title}, "project { id }", token=owner.token
    )


async def recorded(db: Database, project_id: str) -> list[events.ProjectEvent]:
    async with db.session() as session:
        return await feed.events_after(session, ids.decode(project_id, "Project"), 0)


def kinds(found: list[events.ProjectEvent]) -> list[str]:
    return [event.kind for event in found]


async def test_every_change_is_an_event_numbered_in_order(db: Database) -> None:
    owner = await account(db)
    project_id = await project(db, owner)
    first = await scene(db, owner, project_id, title="One", shots=2)
    second = await scene(db, owner, project_id, title="Two")
    await mutate_ok(
        db, "updateScene", {"id": first["id"], "title": "Uno"}, "scene { id }", token=owner.token
    )
    await mutate_ok(
        db,
        "reorderScenes",
        {"parentId": project_id, "ids": [second["id"], first["id"]]},
        "project { id }",
        token=owner.token,
    )
    await mutate_ok(db, "deleteScene", {"id": second["id"]}, "deletedId", token=owner.token)

    found = await recorded(db, project_id)
    assert [event.sequence for event in found] == list(range(1, len(found) + 1))
    assert kinds(found) == [
        "PROJECT_CREATED",
        "SCENE_CREATED",
        "SHOT_CREATED",
        "SHOT_CREATED",
        "PROJECT_UPDATED",  # the workflow moved on: the project has shots now
        "SCENE_CREATED",
        "SCENE_UPDATED",
        "SCENE_UPDATED",  # reordered: both scenes renumbered
        "SCENE_UPDATED",
        "SCENE_DELETED",
        "SCENE_UPDATED",  # the first moves back up to 1
    ]
    assert found[4].changes == ("status",)
    assert found[6].changes == ("title",)
    assert found[7].changes == ("scene_number",)  # columns; the API names them as fields
    assert found[9].node_id == ids.decode(second["id"], "Scene")


async def test_image_events_belong_to_their_shot_and_project(db: Database) -> None:
    owner = await account(db)
    project_id = await project(db, owner)
    shot_id = (await scene(db, owner, project_id, shots=1))["shots"][0]["id"]
    images = (await iteration(db, owner, shot_id, count=3))["images"]
    await mutate_ok(
        db,
        "setImageFavorite",
        {"imageId": images[0]["id"], "isFavorite": True},
        "image { id }",
        token=owner.token,
    )
    found = await recorded(db, project_id)
    image_events = [event for event in found if event.node_type == "ShotImage"]
    assert kinds(image_events) == [*["SHOT_IMAGE_CREATED"] * 3, "SHOT_IMAGE_UPDATED"]
    assert {event.shot_id for event in image_events} == {ids.decode(shot_id, "Shot")}
    assert image_events[-1].changes == ("is_favorite",)


async def test_a_prediction_applied_records_its_image_event_in_few_statements(
    db: Database,
) -> None:
    """A webhook's transaction reads the images it moves with their shots' projects
    (`apply_prediction`): the event is numbered in the image's own project, with no
    read of the shot of its own, and the other tables holding generations cost one
    read together. Two projects, so a wrong project would show."""
    owner = await account(db)
    other_project = await project(db, owner, title="Other")
    await scene(db, owner, other_project, shots=1)
    project_id = await project(db, owner)
    shot_id = (await scene(db, owner, project_id, shots=1))["shots"][0]["id"]
    image_id = (await iteration(db, owner, shot_id, count=1))["images"][0]["id"]
    pk = ids.decode(image_id, "ShotImage")
    async with db.transaction() as session:
        image = await session.get(ShotImageRow, pk)
        assert image is not None
        image.status, image.prediction_id = "PENDING", "p-recorded"
    before = len(await recorded(db, project_id))
    prediction = Prediction.from_json({"id": "p-recorded", "status": "processing"})
    with statements(db) as sent:
        async with db.transaction() as session:
            moved = await apply_prediction(session, prediction)
    assert [row.id for row in moved] == [pk]
    reads = [text for text in sent if text.lstrip().upper().startswith("SELECT")]
    assert len(reads) == 2, reads  # the images with their projects; the other tables' IDs
    assert not any("FROM shots" in text and "shot_images" not in text for text in reads)
    found = await recorded(db, project_id)
    assert len(found) == before + 1
    assert (found[-1].kind, found[-1].node_id) == ("SHOT_IMAGE_UPDATED", pk)
    assert found[-1].changes == ("status",)


async def test_a_write_that_fails_records_nothing(db: Database) -> None:
    owner = await account(db)
    project_id = await project(db, owner)
    before = await recorded(db, project_id)
    payload = await mutate(
        db,
        "createScene",
        {"projectId": project_id, "title": "Too far", "sceneNumber": 9},
        "scene { id }",
        token=owner.token,
    )
    assert payload["userErrors"][0]["code"] == "OUT_OF_RANGE"
    assert await recorded(db, project_id) == before
    async with db.session() as session:
        assert await feed.last_sequence(session, ids.decode(project_id, "Project")) == len(before)


async def test_changes_within_one_transaction_are_one_event_per_object(db: Database) -> None:
    owner = await account(db)
    project_id = await project(db, owner)
    shots = (await scene(db, owner, project_id, shots=2))["shots"]
    start = len(await recorded(db, project_id))
    image_ids = [
        ids.decode(image["id"], "ShotImage")
        for image in (await iteration(db, owner, shots[0]["id"], count=2))["images"]
    ]
    made = (await recorded(db, project_id))[start:]
    assert [e.kind for e in made if e.node_type == "ShotImage"] == ["SHOT_IMAGE_CREATED"] * 2
    after_images = start + len(made)

    async with db.transaction() as session:
        first = await session.get(ShotImageRow, image_ids[0])
        second = await session.get(ShotImageRow, image_ids[1])
        assert first is not None
        assert second is not None
        first.error = "one"
        await session.flush()
        first.is_favorite = True  # a second change to one row: still one event
        await session.flush()
        second.error = "gone soon"
        await session.flush()
        await session.delete(second)  # changed, then deleted: only the deletion
    found = (await recorded(db, project_id))[after_images:]
    assert [(e.kind, e.node_id, e.changes) for e in found] == [
        ("SHOT_IMAGE_UPDATED", image_ids[0], ("error", "is_favorite")),
        ("SHOT_IMAGE_DELETED", image_ids[1], ()),
    ]


async def test_bookkeeping_alone_is_not_an_event(db: Database) -> None:
    owner = await account(db)
    project_id = await project(db, owner)
    shot_id = (await scene(db, owner, project_id, shots=1))["shots"][0]["id"]
    image_id = ids.decode(
        (await iteration(db, owner, shot_id, count=1))["images"][0]["id"], "ShotImage"
    )
    before = await recorded(db, project_id)
    async with db.transaction() as session:
        image = await session.get(ShotImageRow, image_id)
        assert image is not None
        image.checked_at = image.created_at
        image.dispatch_claimed_at = image.created_at
    assert await recorded(db, project_id) == before


def test_every_change_is_named_as_a_field_of_its_graphql_type() -> None:
    """`changes` speaks GraphQL: no column name of ours, no field a client cannot ask for.

    Services record the columns that changed; `schema.events` names them as fields."""
    graphql_types = schema._schema.type_map
    for table, type_name in recording.TRACKED.items():
        fields = set(graphql_types[type_name].fields)  # type: ignore[attr-defined]
        mapper: Any = sa_inspect(table)
        keys: list[str] = [column.key for column in mapper.column_attrs]
        for key in keys:
            if key not in recording._INTERNAL:
                assert field_name(key) in fields, (type_name, key)


def test_changed_columns_and_stored_field_names_read_as_fields_each_once() -> None:
    # Events stored by earlier versions hold field names: they read the same.
    columns = ["scene_number", "sceneNumber", "storage_key", "image_url", "imageUrl", "title"]
    assert field_names(columns) == ["sceneNumber", "imageUrl", "title"]


def test_every_kind_recorded_is_a_value_of_the_graphql_enum_and_no_other() -> None:
    recorded_kinds = {
        events.kind_of(node_type, change)
        for node_type in recording.TRACKED.values()
        for change in (events.CREATED, events.UPDATED, events.DELETED)
    } | {events.SNAPSHOT, events.PROJECT_DELETED}
    assert {kind.value for kind in ProjectEventKind} == recorded_kinds
    assert {kind.name for kind in ProjectEventKind} == recorded_kinds
    kind = schema._schema.type_map["ProjectEvent"].fields["kind"].type  # type: ignore[attr-defined]
    assert str(kind) == "ProjectEventKind!"


async def test_events_are_published_after_commit_and_never_for_a_rollback(
    live_db: Database, bus: EventBus
) -> None:
    owner = await account(live_db)
    project_id = await project(live_db, owner)
    pk = ids.decode(project_id, "Project")
    async with bus.subscribe(events.project_channel(pk)) as subscription:
        with contextlib.suppress(RuntimeError):
            async with live_db.transaction() as session:
                row = await session.get(ProjectRow, pk)
                assert row is not None
                row.title = "Never committed"
                await session.flush()
                raise RuntimeError("roll back")
        await scene(live_db, owner, project_id, title="Live")
        message = await asyncio.wait_for(subscription.get(), 5)
    assert message["kind"] == "SCENE_CREATED"
    assert message["sequence"] == 2
    assert set(message) == {"project", "sequence", "kind", "type", "id", "shot", "changes", "at"}


async def test_deleting_a_project_drops_its_events_and_publishes_the_end(
    live_db: Database, bus: EventBus
) -> None:
    owner = await account(live_db)
    project_id = await project(live_db, owner)
    pk = ids.decode(project_id, "Project")
    await scene(live_db, owner, project_id, shots=1)
    last = len(await recorded(live_db, project_id))
    async with bus.subscribe(events.project_channel(pk)) as subscription:
        await mutate_ok(
            live_db, "deleteProject", {"id": project_id}, "deletedId", token=owner.token
        )
        message = await asyncio.wait_for(subscription.get(), 5)
    assert (message["kind"], message["sequence"]) == ("PROJECT_DELETED", last + 1)
    async with live_db.session() as session:
        left = await session.exec(select(ProjectEventRow).where(ProjectEventRow.project_id == pk))
        assert left.all() == []
        assert await session.get(ProjectEventCounterRow, pk) is None


async def test_concurrent_writers_share_one_dense_sequence(db: Database) -> None:
    owner = await account(db)
    project_id = await project(db, owner)
    shots = (await scene(db, owner, project_id, shots=3))["shots"]
    image_ids = [
        ids.decode(image["id"], "ShotImage")
        for image in (await iteration(db, owner, shots[0]["id"], count=6))["images"]
    ]
    start = len(await recorded(db, project_id))

    async def rename(n: int) -> None:
        await mutate_ok(
            db,
            "updateShot",
            {"id": shots[n % 3]["id"], "description": f"take {n}"},
            "shot { id }",
            token=owner.token,
        )

    async def engine_like(image_id: int) -> None:
        # The generation engine writes images without the project lock user writes take.
        async with db.transaction() as session:
            image = await session.get(ShotImageRow, image_id)
            assert image is not None
            image.error = f"attempt {image_id}"

    await asyncio.gather(*(rename(n) for n in range(12)), *(engine_like(i) for i in image_ids))
    found = (await recorded(db, project_id))[start:]
    assert sorted(e.sequence for e in found) == list(range(start + 1, start + 19))
    assert sorted(kinds(found)) == ["SHOT_IMAGE_UPDATED"] * 6 + ["SHOT_UPDATED"] * 12


# --- following -------------------------------------------------------------------------


async def allowed() -> bool:
    return True


def follow(
    db: Database, bus: EventBus, owner: Account, project_id: str, **options: Any
) -> AsyncGenerator[events.ProjectEvent, None]:
    """`feed.follow` of the project (its encoded ID) as `owner` sees it, from the
    snapshot and always allowed unless `options` (`feed.follow`'s keywords) say else."""
    return feed.follow(
        bus,
        db.session,
        ids.decode(project_id, "Project"),
        user_id=ids.decode(owner.user_id, "User"),
        **{"after": None, "still_allowed": allowed, **options},
    )


class Follower:
    """`follow` read by a task into a queue, as a subscription reads it; an async
    context manager that stops the task on the way out."""

    def __init__(
        self, db: Database, bus: EventBus, owner: Account, project_id: str, **options: Any
    ) -> None:
        self.queue: asyncio.Queue[events.ProjectEvent | BaseException] = asyncio.Queue()
        self.stream = follow(db, bus, owner, project_id, **options)
        self.task = asyncio.create_task(self._read())

    async def __aenter__(self) -> Follower:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _read(self) -> None:
        try:
            async for event in self.stream:
                await self.queue.put(event)
        except Exception as error:
            await self.queue.put(error)

    async def take(self, count: int) -> list[events.ProjectEvent]:
        taken = []
        for _ in range(count):
            item = await asyncio.wait_for(self.queue.get(), 10)
            if isinstance(item, BaseException):
                raise item
            taken.append(item)
        return taken

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def test_follow_starts_with_a_snapshot_then_every_change(
    live_db: Database, bus: EventBus
) -> None:
    owner = await account(live_db)
    project_id = await project(live_db, owner)
    async with Follower(live_db, bus, owner, project_id) as follower:
        (snapshot,) = await follower.take(1)
        assert (snapshot.kind, snapshot.sequence) == ("SNAPSHOT", 1)
        await scene(live_db, owner, project_id, shots=1)
        got = await follower.take(3)
        assert [e.sequence for e in got] == [2, 3, 4]
        assert kinds(got) == ["SCENE_CREATED", "SHOT_CREATED", "PROJECT_UPDATED"]


async def test_follow_after_replays_then_goes_live_without_duplicates(
    live_db: Database, bus: EventBus
) -> None:
    owner = await account(live_db)
    project_id = await project(live_db, owner)
    await scene(live_db, owner, project_id, title="A")
    await scene(live_db, owner, project_id, title="B")
    last = len(await recorded(live_db, project_id))
    async with Follower(live_db, bus, owner, project_id, after=1) as follower:
        replayed = await follower.take(last - 1)
        assert [e.sequence for e in replayed] == list(range(2, last + 1))
        # A late copy of an old message on the bus is dropped, not sent twice.
        await bus.publish(events.project_channel(replayed[0].project_id), replayed[0].message())
        await scene(live_db, owner, project_id, title="C")
        (live,) = await follower.take(1)
        assert live.sequence == last + 1
        await asyncio.sleep(0.1)
        assert follower.queue.empty()


async def test_a_lost_publish_is_filled_from_the_table(
    live_db: Database, db: Database, bus: EventBus
) -> None:
    owner = await account(live_db)
    project_id = await project(live_db, owner)
    await scene(live_db, owner, project_id, title="First")
    async with Follower(live_db, bus, owner, project_id) as follower:
        (snapshot,) = await follower.take(1)
        await scene(db, owner, project_id, title="Unpublished")  # `db` has no bus
        await scene(live_db, owner, project_id, title="Published")
        got = await follower.take(2)
        assert [e.sequence for e in got] == [snapshot.sequence + 1, snapshot.sequence + 2]
        assert [e.kind for e in got] == ["SCENE_CREATED", "SCENE_CREATED"]


async def test_a_resync_reads_what_the_bus_lost(
    live_db: Database, db: Database, bus: EventBus
) -> None:
    owner = await account(live_db)
    project_id = await project(live_db, owner)
    await scene(live_db, owner, project_id, title="First")
    async with Follower(live_db, bus, owner, project_id) as follower:
        (snapshot,) = await follower.take(1)
        await scene(db, owner, project_id, title="While the bus was away")
        await bus.publish(
            events.project_channel(ids.decode(project_id, "Project")), {"resync": True}
        )
        (caught_up,) = await follower.take(1)
        assert (caught_up.sequence, caught_up.kind) == (snapshot.sequence + 1, "SCENE_CREATED")


async def test_a_slow_follower_is_cut_off_and_reads_on_from_the_table(
    live_db: Database, bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="studio.events")
    owner = await account(live_db)
    project_id = await project(live_db, owner)
    stream = follow(live_db, bus, owner, project_id)
    try:
        snapshot = await asyncio.wait_for(anext(stream), 10)  # subscribed; now it stops reading
        for n in range(30):  # far more than the bus queue (8) holds
            await rename(live_db, owner, project_id, f"Take {n}")
        got = [await asyncio.wait_for(anext(stream), 10) for _ in range(30)]
        first = snapshot.sequence + 1
        assert [e.sequence for e in got] == list(range(first, first + 30))
        assert bus.subscriber_count == 1  # subscribed again, with a fresh queue
        assert any("fell behind" in record.getMessage() for record in caplog.records)
    finally:
        await stream.aclose()


async def test_a_follower_cut_off_checks_access_before_reading_on(
    live_db: Database, bus: EventBus
) -> None:
    """A queue cut off may have dropped an access notice with it: once subscribed
    again, the feed checks access before the next event it sends."""
    owner = await account(live_db)
    project_id = await project(live_db, owner)
    checks = 0

    async def check() -> bool:
        nonlocal checks
        checks += 1
        return True

    stream = follow(live_db, bus, owner, project_id, still_allowed=check)
    try:
        await asyncio.wait_for(anext(stream), 10)  # subscribed; now it stops reading
        for n in range(30):  # far more than the bus queue (8) holds
            await rename(live_db, owner, project_id, f"Take {n}")
        got = [await asyncio.wait_for(anext(stream), 10) for _ in range(30)]
        assert checks == 0  # read from the table: the queue was not cut off yet
        await mutate_ok(
            live_db,
            "updateProject",
            {"id": project_id, "title": "After"},
            "project { id }",
            token=owner.token,
        )
        got.append(await asyncio.wait_for(anext(stream), 10))
    finally:
        await stream.aclose()
    assert [e.sequence for e in got] == list(range(got[0].sequence, got[0].sequence + 31))
    assert checks == 1


async def test_following_stops_when_access_is_lost(live_db: Database, bus: EventBus) -> None:
    owner = await account(live_db, name="Owner")
    member = await account(live_db, name="Member")
    team = await mutate_ok(
        live_db, "createTeam", {"name": "Crew"}, "team { id }", token=owner.token
    )
    team_id = team["team"]["id"]
    await join(live_db, team_id, member, role="VIEWER", inviter=owner)
    project_id = await project(live_db, owner, team_id=team_id)
    still_member = True

    async def check() -> bool:
        return still_member

    async with Follower(live_db, bus, member, project_id, still_allowed=check) as follower:
        await follower.take(1)
        still_member = False
        await mutate_ok(
            live_db,
            "removeTeamMember",
            {"teamId": team_id, "userId": member.user_id},
            "team { id }",
            token=owner.token,
        )
        with pytest.raises(feed.AccessLost):
            await follower.take(1)


async def test_access_is_checked_again_now_and_then(live_db: Database, bus: EventBus) -> None:
    owner = await account(live_db)
    project_id = await project(live_db, owner)
    checks = 0

    async def expires_on_the_third_check() -> bool:
        nonlocal checks
        checks += 1
        return checks < 3

    stream = follow(
        live_db,
        bus,
        owner,
        project_id,
        still_allowed=expires_on_the_third_check,
        recheck_every=0.05,
    )
    try:
        await asyncio.wait_for(anext(stream), 10)  # the snapshot
        with pytest.raises(feed.AccessLost):
            await asyncio.wait_for(anext(stream), 10)
        assert checks == 3
    finally:
        await stream.aclose()


@contextlib.asynccontextmanager
async def kept_busy(db: Database, owner: Account, project_id: str) -> AsyncIterator[None]:
    """While inside: the project renamed ten times a second by a task, stopped on the
    way out."""

    async def keep_renaming() -> None:
        for n in itertools.count():
            await rename(db, owner, project_id, f"Take {n}")
            await asyncio.sleep(0.1)

    task = asyncio.create_task(keep_renaming())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def read_until_access_lost(stream: AsyncIterator[events.ProjectEvent]) -> int:
    """Read `stream` until it raises AccessLost (within 5 s); how many events came first."""
    received = 0
    try:
        async with asyncio.timeout(5):
            async for _ in stream:
                received += 1
    except feed.AccessLost:
        return received
    except TimeoutError:
        raise AssertionError(f"access was not lost within 5 s ({received} events)") from None
    raise AssertionError("the feed ended without losing access")


async def test_a_busy_feed_checks_access_on_schedule(live_db: Database, bus: EventBus) -> None:
    """Events every 0.1 s do not put off a check due every 0.3 s: the schedule runs from
    the last check, not from the last event."""
    owner = await account(live_db)
    project_id = await project(live_db, owner)
    clock = asyncio.get_running_loop().time
    checks: list[float] = []

    async def lost_on_the_third_check() -> bool:
        checks.append(clock())
        return len(checks) < 3

    stream = follow(
        live_db,
        bus,
        owner,
        project_id,
        still_allowed=lost_on_the_third_check,
        recheck_every=0.3,
    )
    try:
        async with kept_busy(live_db, owner, project_id):
            started = clock()
            received = await read_until_access_lost(stream)
    finally:
        await stream.aclose()
    assert received >= 6, "the project was not busy"
    gaps = [later - earlier for earlier, later in itertools.pairwise([started, *checks])]
    assert len(gaps) == 3, gaps
    assert all(0.3 <= gap < 1.0 for gap in gaps), gaps


async def test_a_feed_checks_access_again_the_moment_it_ends(
    live_db: Database, bus: EventBus
) -> None:
    """Access known to end (a token's expiry) is checked at that instant, not a minute
    later, busy or not: first at `allowed_until`, then when the check's answer says."""
    owner = await account(live_db)
    project_id = await project(live_db, owner)
    ends = utcnow() + timedelta(seconds=0.5)
    answers: list[feed.Allowed] = [ends + timedelta(seconds=0.4), False]
    checks: list[datetime] = []

    async def check() -> feed.Allowed:
        checks.append(utcnow())
        return answers[len(checks) - 1]

    stream = follow(
        live_db,
        bus,
        owner,
        project_id,
        still_allowed=check,
        allowed_until=ends,
    )
    try:
        async with kept_busy(live_db, owner, project_id):
            await read_until_access_lost(stream)
    finally:
        await stream.aclose()
    due = [ends, ends + timedelta(seconds=0.4)]
    late = [(at - instant).total_seconds() for at, instant in zip(checks, due, strict=True)]
    assert all(0 <= lateness < 0.3 for lateness in late), late


# --- a long replay passes the same access gate as live events -------------------------

LONG = 2 * feed.PAGE + 60  # a replay of three table pages


async def test_a_replay_sends_nothing_once_access_has_ended(
    live_db: Database, bus: EventBus
) -> None:
    """A token already expired when the feed starts: the check runs before the first
    replayed event, and none is sent."""
    owner = await account(live_db)
    project_id = await project(live_db, owner)
    await backlog(live_db, project_id, LONG)
    checks: list[datetime] = []

    async def expired() -> bool:
        checks.append(utcnow())
        return False

    ended = utcnow() - timedelta(milliseconds=5)
    stream = follow(
        live_db, bus, owner, project_id, after=1, still_allowed=expired, allowed_until=ended
    )
    try:
        with pytest.raises(feed.AccessLost):
            await asyncio.wait_for(anext(stream), 10)
    finally:
        await stream.aclose()
    assert len(checks) == 1


async def test_a_replay_stops_at_the_instant_access_ends(live_db: Database, bus: EventBus) -> None:
    """Access ending in the middle of a replay of several pages: nothing replayed after
    the instant, the check runs first; allowed further, the replay goes on where it
    stopped, each event once and in order."""
    owner = await account(live_db)
    project_id = await project(live_db, owner)
    last = await backlog(live_db, project_id, LONG)
    # A second before access ends: the first ten events must be out by then, which a
    # run sharing two cores with browser tests needs (1,060 events read at >= 2 ms each
    # still outlast both instants).
    ends = utcnow() + timedelta(seconds=1.0)
    answers: list[feed.Allowed] = [ends + timedelta(seconds=0.3), False]
    checks: list[datetime] = []
    sent: list[tuple[int, datetime]] = []

    async def check() -> feed.Allowed:
        checks.append(utcnow())
        return answers[len(checks) - 1]

    stream = follow(
        live_db, bus, owner, project_id, after=1, still_allowed=check, allowed_until=ends
    )
    try:
        for _ in range(10):
            sent.append(((await asyncio.wait_for(anext(stream), 10)).sequence, utcnow()))
        assert utcnow() < ends, "the first events took longer than access lasts"
        assert not checks
        while True:  # read slowly: past both instants before the replay could end
            try:
                event = await asyncio.wait_for(anext(stream), 10)
            except feed.AccessLost:
                break
            sent.append((event.sequence, utcnow()))
            await asyncio.sleep(0.002)
    finally:
        await stream.aclose()
    assert len(checks) == 2
    late = [sequence for sequence, at in sent if ends + timedelta(seconds=0.05) < at < checks[0]]
    assert not late, f"{len(late)} events replayed after the instant, before its check"
    assert checks[0] >= ends, (checks, ends)
    assert checks[1] >= ends + timedelta(seconds=0.3), (checks, ends)
    assert all(at < checks[1] for _, at in sent), "a replayed event came after access ended"
    assert any(at > checks[0] for _, at in sent), "no event was replayed after the first check"
    sequences = [sequence for sequence, _ in sent]
    assert sequences == list(range(2, 2 + len(sequences)))
    assert sequences[-1] < last, "the whole replay went out before its check"


async def test_a_removal_heard_of_during_a_replay_ends_it(live_db: Database, bus: EventBus) -> None:
    """A member removed while their feed replays pages of events: the notice waiting
    behind the replay is looked at before the next event, not after the last page."""
    owner = await account(live_db, name="Owner")
    member = await account(live_db, name="Member")
    team = await mutate_ok(
        live_db, "createTeam", {"name": "Crew"}, "team { id }", token=owner.token
    )
    team_id = team["team"]["id"]
    await join(live_db, team_id, member, role="VIEWER", inviter=owner)
    project_id = await project(live_db, owner, team_id=team_id)
    last = await backlog(live_db, project_id, LONG)
    still_member = True
    checks = 0

    async def check() -> bool:
        nonlocal checks
        checks += 1
        return still_member

    stream = follow(live_db, bus, member, project_id, after=1, still_allowed=check)
    try:
        replayed = [await asyncio.wait_for(anext(stream), 10) for _ in range(10)]
        still_member = False
        await mutate_ok(
            live_db,
            "removeTeamMember",
            {"teamId": team_id, "userId": member.user_id},
            "team { id }",
            token=owner.token,
        )
        await bus.flushed()
        more = await read_until_access_lost(stream)
    finally:
        await stream.aclose()
    assert checks == 1
    assert [e.sequence for e in replayed] == list(range(2, 12))
    assert 11 + more < last, f"{more} more events replayed before the removal ended the feed"


async def test_cursors_from_the_future_or_past_retention_are_refused(db: Database) -> None:
    owner = await account(db)
    project_id = await project(db, owner)
    await scene(db, owner, project_id, shots=2)
    pk = ids.decode(project_id, "Project")
    async with db.session() as session:
        last = await feed.last_sequence(session, pk)
        await feed.check_cursor(session, pk, last)
        with pytest.raises(InvalidInput) as invalid:
            await feed.check_cursor(session, pk, last + 1)
        assert invalid.value.code == "INVALID_CURSOR"
    async with db.transaction() as session:
        await session.exec(  # age this project's events past the retention
            ProjectEventRow.__table__.update()  # type: ignore[attr-defined]
            .where(col(ProjectEventRow.project_id) == pk)
            .values(at=ProjectEventRow.at - timedelta(days=30))
        )
        assert await recording.prune(session, older_than=timedelta(days=7)) >= last
    async with db.session() as session:
        with pytest.raises(feed.CursorExpired):
            await feed.check_cursor(session, pk, 0)
        await feed.check_cursor(session, pk, last)  # nothing after it was lost
        assert await feed.last_sequence(session, pk) == last


def test_the_recording_hooks_are_bound_to_our_sessions_only() -> None:
    """A session made outside `Database` (a library's, a script's) records nothing."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from services.database import StudioSession

    assert event.contains(StudioSession, "after_flush", recording.note_flush)
    assert event.contains(StudioSession, "after_rollback", recording.forget_pending)
    assert not event.contains(Session, "after_flush", recording.note_flush)
    assert not event.contains(Session, "after_rollback", recording.forget_pending)
