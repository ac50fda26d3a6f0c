"""Library events on each engine: asset and share changes recorded per team, in order,
followed by `libraryEvents` and filtered per viewer at delivery; and once over a real
WebSocket against a running server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import update
from sqlmodel import col, select

from api.graphql import build_context
from api.schema import schema
from schema import ids
from schema.context import Resources
from schema.library_events import LibraryEventKind, encode_cursor, field_names
from services import maintenance
from services.database import Database
from services.library.tables import AssetRow, AssetShareRow, LibraryEventRow
from services.realtime import events, library_events, library_recording
from services.realtime.bus import EventBus
from services.tables import utcnow
from tests.conftest import _unavailable
from tests.factories import (
    MEDIA,
    Account,
    account,
    gql,
    library_asset,
    mutate_ok,
    team_with,
)
from tests.realtime_harness import Api, Socket
from tests.test_bus import REDIS_URL
from tests.test_subscriptions import studio_server

LIBRARY_EVENTS = """
subscription($teamId: ID!, $after: String) {
  libraryEvents(teamId: $teamId, after: $after) {
    cursor sequence kind assetId changes recipientId at teamId
    asset { id name shareLevel }
  }
}
"""

WAIT = 10.0


@pytest.fixture
async def bus() -> AsyncIterator[EventBus]:
    instance = EventBus("memory://", queue_size=64)
    await instance.start()
    yield instance
    await instance.stop()


@pytest.fixture
async def live_db(db: Database, bus: EventBus) -> AsyncIterator[Database]:
    """The test database, publishing on a memory bus as a server does."""
    database = Database(db.url, bus=bus)
    yield database
    await database.dispose()


def pk(global_id: str, type_name: str) -> int:
    return ids.decode(global_id, type_name)


async def recorded(db: Database, team_id: str) -> list[library_events.LibraryEvent]:
    async with db.session() as session:
        return await library_events.events_after(session, pk(team_id, "Team"), 0)


async def edit(db: Database, asset_id: str, **values: Any) -> None:
    """Change an asset's columns in one write transaction, as a service would."""
    async with db.transaction() as session:
        row = await session.get(AssetRow, pk(asset_id, "Asset"))
        assert row is not None
        for name, value in values.items():
            setattr(row, name, value)


async def share_row(db_session: Any, asset_id: str, to: Account) -> AssetShareRow | None:
    found = await db_session.exec(
        select(AssetShareRow).where(
            col(AssetShareRow.asset_id) == pk(asset_id, "Asset"),
            col(AssetShareRow.user_id) == pk(to.user_id, "User"),
        )
    )
    row: AssetShareRow | None = found.first()
    return row


async def share(
    db: Database, asset_id: str, to: Account, *, permission: str = "VIEW", **values: Any
) -> None:
    """Share the asset with `to` (or change its share), in one write transaction."""
    async with db.transaction() as session:
        row = await share_row(session, asset_id, to)
        if row is None:
            session.add(
                AssetShareRow(
                    asset_id=pk(asset_id, "Asset"),
                    user_id=pk(to.user_id, "User"),
                    permission=permission,
                    **values,
                )
            )
            return
        row.permission = permission
        for name, value in values.items():
            setattr(row, name, value)


async def revoke(db: Database, asset_id: str, to: Account) -> None:
    async with db.transaction() as session:
        row = await share_row(session, asset_id, to)
        assert row is not None
        await session.delete(row)


async def remove(db: Database, asset_id: str) -> None:
    async with db.transaction() as session:
        row = await session.get(AssetRow, pk(asset_id, "Asset"))
        await session.delete(row)


# --- recording ---------------------------------------------------------------------------


async def test_asset_and_share_changes_are_events_numbered_per_team(db: Database) -> None:
    ann = await account(db)
    bob = await account(db, name="Bob")
    team = await team_with(db, ann, {"EDITOR": bob})
    asset = await library_asset(db, ann, team_id=team, name="Lantern")
    await edit(db, asset, name="Lantern at dusk", tags=["dusk"])
    await share(db, asset, bob, permission="VIEW")
    await share(db, asset, bob, permission="EDIT")
    await revoke(db, asset, bob)
    await remove(db, asset)
    elsewhere = await library_asset(db, ann)  # ann's personal team: its own numbers

    found = await recorded(db, team)
    assert [e.sequence for e in found] == [1, 2, 3, 4, 5, 6]
    assert [e.kind for e in found] == [
        "ASSET_CREATED",
        "ASSET_UPDATED",
        "ASSET_SHARED",
        "ASSET_SHARED",
        "ASSET_SHARED",
        "ASSET_DELETED",
    ]
    assert {e.asset_id for e in found} == {pk(asset, "Asset")}
    assert found[1].changes == ("name", "tags")
    assert found[3].changes == ("permission",)
    assert [e.recipient_id for e in found] == [None, None, *[pk(bob.user_id, "User")] * 3, None]
    assert {(e.share_level, e.creator_id) for e in found} == {("TEAM", pk(ann.user_id, "User"))}
    (other,) = await recorded(db, ann.team_id)
    assert (other.sequence, other.kind, other.asset_id) == (
        1,
        "ASSET_CREATED",
        pk(elsewhere, "Asset"),
    )


async def test_one_transaction_is_one_event_per_row_and_a_rollback_none(db: Database) -> None:
    ann = await account(db)
    kept = await library_asset(db, ann, name="Kept")
    start = len(await recorded(db, ann.team_id))
    async with db.transaction() as session:
        made = AssetRow(
            team_id=pk(ann.team_id, "Team"),
            creator_id=pk(ann.user_id, "User"),
            kind="IMAGE",
            name="Brief",
        )
        session.add(made)
        await session.flush()
        made.name = "Briefer"  # created, then changed: one ASSET_CREATED
        row = await session.get(AssetRow, pk(kept, "Asset"))
        assert row is not None
        row.mood = "calm"
        await session.flush()
        row.category = "harbour"  # two flushes: one ASSET_UPDATED naming both
        gone = AssetRow(team_id=pk(ann.team_id, "Team"), kind="IMAGE", name="Gone")
        session.add(gone)
        await session.flush()
        await session.delete(gone)  # created and deleted: nothing
    with contextlib.suppress(RuntimeError):
        async with db.transaction() as session:
            row = await session.get(AssetRow, pk(kept, "Asset"))
            assert row is not None
            row.name = "Never"
            await session.flush()
            raise RuntimeError("roll back")
    found = (await recorded(db, ann.team_id))[start:]
    assert [(e.kind, e.changes) for e in found] == [
        ("ASSET_CREATED", ()),
        ("ASSET_UPDATED", ("mood", "category")),
    ]
    assert found[1].asset_id == pk(kept, "Asset")


async def test_views_layout_and_bookkeeping_are_not_events(db: Database) -> None:
    ann = await account(db)
    asset = await library_asset(db, ann)
    before = await recorded(db, ann.team_id)
    await edit(db, asset, views=7, constellation_x=0.5, constellation_y=-1.0, checked_at=utcnow())
    await edit(db, asset, constellation_cluster="c1", attempt_id="a1", failed_tries=2)
    assert await recorded(db, ann.team_id) == before
    # Opening the asset counts a view: still no event.
    opened = await gql(
        db, "query($id: ID!) { asset(id: $id) { id } }", {"id": asset}, token=ann.token
    )
    assert opened["asset"]["id"] == asset
    assert await recorded(db, ann.team_id) == before


async def test_a_share_deleted_with_its_asset_still_tells_its_recipient(db: Database) -> None:
    ann = await account(db)
    bob = await account(db, name="Bob")
    team = await team_with(db, ann, {"VIEWER": bob})
    asset = await library_asset(db, ann, team_id=team, share_level="PRIVATE")
    await share(db, asset, bob)
    start = len(await recorded(db, team))
    async with db.transaction() as session:
        row = await session.get(AssetRow, pk(asset, "Asset"))
        shares = await session.exec(
            select(AssetShareRow).where(col(AssetShareRow.asset_id) == pk(asset, "Asset"))
        )
        for granted in shares.all():
            await session.delete(granted)
        await session.flush()
        await session.delete(row)
    found = (await recorded(db, team))[start:]
    assert [(e.kind, e.recipient_id, e.share_level) for e in found] == [
        ("ASSET_SHARED", pk(bob.user_id, "User"), "PRIVATE"),
        ("ASSET_DELETED", None, "PRIVATE"),
    ]


async def test_concurrent_writers_share_one_dense_sequence_per_team(db: Database) -> None:
    ann = await account(db)
    assets = [await library_asset(db, ann) for _ in range(4)]
    start = len(await recorded(db, ann.team_id))
    await asyncio.gather(*(edit(db, assets[n % 4], name=f"take {n}") for n in range(16)))
    found = (await recorded(db, ann.team_id))[start:]
    assert [e.sequence for e in found] == list(range(start + 1, start + 17))


def test_every_recorded_asset_column_is_named_as_an_asset_field() -> None:
    asset_fields = set(schema._schema.type_map["Asset"].fields)  # type: ignore[attr-defined]
    mapper: Any = sa_inspect(AssetRow)
    for column in mapper.column_attrs:
        if column.key not in library_recording.QUIET and column.key != "id":
            assert field_names([column.key])[0] in asset_fields, column.key
    assert field_names(["permission", "expires_at", "shared_by_id"]) == [
        "permission",
        "expiresAt",
        "sharedBy",
    ]


def test_every_kind_recorded_is_a_value_of_the_graphql_enum() -> None:
    assert [kind.name for kind in LibraryEventKind] == list(library_events.KINDS)
    assert {LibraryEventKind(kind).name for kind in library_events.KINDS} == set(
        library_events.KINDS
    )
    assert library_events.ASSET_SHARED in library_events.KINDS


# --- following through the schema ------------------------------------------------------


class Feed:
    """`libraryEvents` through `schema.subscribe`, as `viewer`, read with bounded waits."""

    def __init__(self, db: Database, bus: EventBus, viewer: Account) -> None:
        self.db = db
        self.bus = bus
        self.viewer = viewer
        self.stream: Any = None

    async def open(self, team_id: str, after: str | None = None) -> Feed:
        context = await build_context(
            Resources(db=self.db, media=MEDIA, bus=self.bus), self.viewer.token
        )
        self.stream = await schema.subscribe(
            LIBRARY_EVENTS,
            variable_values={"teamId": team_id, "after": after},
            context_value=context,
        )
        return self

    async def result(self, within: float = WAIT) -> Any:
        if not hasattr(self.stream, "__anext__"):  # refused before it started
            return self.stream
        return await asyncio.wait_for(anext(self.stream), within)

    async def next(self, within: float = WAIT) -> dict[str, Any]:
        result = await self.result(within)
        assert not result.errors, result.errors
        event: dict[str, Any] = result.data["libraryEvents"]
        return event

    async def take(self, count: int) -> list[dict[str, Any]]:
        return [await self.next() for _ in range(count)]

    async def error_codes(self, within: float = WAIT) -> list[str]:
        result = await self.result(within)
        assert result.errors, result.data
        return [error.extensions.get("code") for error in result.errors]

    async def close(self) -> None:
        if hasattr(self.stream, "aclose"):
            await self.stream.aclose()


@contextlib.asynccontextmanager
async def following(
    db: Database, bus: EventBus, viewer: Account, team_id: str, after: str | None = None
) -> AsyncIterator[Feed]:
    feed = await Feed(db, bus, viewer).open(team_id, after)
    try:
        yield feed
    finally:
        await feed.close()


def brief(events_: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(e["kind"], e["assetId"]) for e in events_]


async def test_the_feed_sends_a_snapshot_then_each_change_in_order(
    live_db: Database, bus: EventBus
) -> None:
    ann = await account(live_db)
    bob = await account(live_db, name="Bob")
    team = await team_with(live_db, ann, {"EDITOR": bob})
    async with following(live_db, bus, ann, team) as feed:
        snapshot = await feed.next()
        assert (snapshot["kind"], snapshot["assetId"], snapshot["asset"]) == (
            "SNAPSHOT",
            None,
            None,
        )
        asset = await library_asset(live_db, ann, team_id=team, name="Lantern")
        got = [await feed.next()]
        await edit(live_db, asset, name="Lantern at dusk")
        got.append(await feed.next())
        await share(live_db, asset, bob)
        got.append(await feed.next())
        await remove(live_db, asset)
        got.append(await feed.next())
    assert brief(got) == [
        ("ASSET_CREATED", asset),
        ("ASSET_UPDATED", asset),
        ("ASSET_SHARED", asset),
        ("ASSET_DELETED", asset),
    ]
    assert [e["sequence"] for e in got] == [snapshot["sequence"] + n for n in range(1, 5)]
    assert got[0]["asset"]["name"] in ("Lantern", "Lantern at dusk")  # read when sent
    assert got[1]["changes"] == ["name"]
    assert got[1]["asset"]["name"] == "Lantern at dusk"
    assert got[2]["recipientId"] == bob.user_id
    assert got[3]["asset"] is None
    assert {e["teamId"] for e in got} == {team}


async def test_a_late_reader_gets_no_event_of_an_asset_deleted_since_but_its_deletion(
    live_db: Database, bus: EventBus
) -> None:
    ann = await account(live_db)
    async with following(live_db, bus, ann, ann.team_id) as feed:
        await feed.next()
        asset = await library_asset(live_db, ann)
        await edit(live_db, asset, name="Soon gone")
        await remove(live_db, asset)
        kept = await library_asset(live_db, ann)
        got = await feed.take(2)
    # Read after the deletion: the asset is gone now, so its creation and change are not
    # sent; the numbers skip them.
    assert brief(got) == [("ASSET_DELETED", asset), ("ASSET_CREATED", kept)]
    assert got[1]["sequence"] == got[0]["sequence"] + 1


async def test_resuming_after_a_cursor_sends_exactly_the_missed_events(
    live_db: Database, bus: EventBus
) -> None:
    ann = await account(live_db)
    first = await library_asset(live_db, ann)
    async with following(live_db, bus, ann, ann.team_id) as feed:
        await feed.next()
        await edit(live_db, first, name="Seen")
        seen = await feed.next()
    missed = [await library_asset(live_db, ann) for _ in range(2)]
    await edit(live_db, first, name="Missed")
    async with following(live_db, bus, ann, ann.team_id, after=seen["cursor"]) as feed:
        replayed = await feed.take(3)
        later = await library_asset(live_db, ann)
        (live,) = await feed.take(1)
    assert brief(replayed) == [
        ("ASSET_CREATED", missed[0]),
        ("ASSET_CREATED", missed[1]),
        ("ASSET_UPDATED", first),
    ]
    assert [e["sequence"] for e in replayed] == [seen["sequence"] + n for n in (1, 2, 3)]
    assert (live["kind"], live["assetId"], live["sequence"]) == (
        "ASSET_CREATED",
        later,
        seen["sequence"] + 4,
    )


async def test_a_private_asset_of_another_member_never_reaches_the_feed(
    live_db: Database, bus: EventBus
) -> None:
    ann = await account(live_db)
    bob = await account(live_db, name="Bob")
    team = await team_with(live_db, ann, {"ADMIN": bob})  # even an admin of the team
    async with (
        following(live_db, bus, bob, team) as bobs,
        following(live_db, bus, ann, team) as anns,
    ):
        await bobs.next()
        await anns.next()
        private = await library_asset(live_db, ann, team_id=team, share_level="PRIVATE")
        seen = [await anns.next()]
        await edit(live_db, private, name="Still mine")
        seen.append(await anns.next())
        await remove(live_db, private)
        seen.append(await anns.next())
        sentinel = await library_asset(live_db, ann, team_id=team)
        seen.append(await anns.next())
        # Bob's next message is the TEAM asset: nothing of the private one came before it.
        assert brief([await bobs.next()]) == [("ASSET_CREATED", sentinel)]
    # Its creator saw all of it.
    assert brief(seen) == [
        ("ASSET_CREATED", private),
        ("ASSET_UPDATED", private),
        ("ASSET_DELETED", private),
        ("ASSET_CREATED", sentinel),
    ]


async def test_a_share_reaches_its_recipient_and_the_assets_admins_only(
    live_db: Database, bus: EventBus
) -> None:
    ann = await account(live_db)
    bob = await account(live_db, name="Bob")
    cat = await account(live_db, name="Cat")
    team = await team_with(live_db, ann, {"VIEWER": bob, "EDITOR": cat})
    async with (
        following(live_db, bus, bob, team) as bobs,
        following(live_db, bus, cat, team) as cats,
    ):
        await bobs.next()
        await cats.next()
        private = await library_asset(live_db, ann, team_id=team, share_level="PRIVATE")
        await share(live_db, private, bob)
        # Read once shared: its creation reaches Bob too, as he may see it now.
        got = await bobs.take(2)
        await edit(live_db, private, name="For Bob")
        got.append(await bobs.next())
        await revoke(live_db, private, bob)
        got.append(await bobs.next())
        await edit(live_db, private, name="Not for Bob any more")
        shared_team_asset = await library_asset(live_db, ann, team_id=team)
        await share(live_db, shared_team_asset, bob)  # Cat sees the asset, but is no admin
        sentinel = await library_asset(live_db, ann, team_id=team)
        got.extend(await bobs.take(2))
        assert brief(got) == [
            ("ASSET_CREATED", private),
            ("ASSET_SHARED", private),
            ("ASSET_UPDATED", private),
            ("ASSET_SHARED", private),  # revoked: he is told, and no longer sees it
            ("ASSET_CREATED", shared_team_asset),
            ("ASSET_SHARED", shared_team_asset),
        ]
        assert got[2]["asset"]["name"] == "For Bob"
        assert got[3]["asset"] is None
        assert got[3]["recipientId"] == bob.user_id
        assert brief([await bobs.next()]) == [("ASSET_CREATED", sentinel)]
        assert brief(await cats.take(2)) == [
            ("ASSET_CREATED", shared_team_asset),
            ("ASSET_CREATED", sentinel),
        ]


async def test_an_asset_made_private_leaves_the_members_grids_once(
    live_db: Database, bus: EventBus
) -> None:
    ann = await account(live_db)
    bob = await account(live_db, name="Bob")
    team = await team_with(live_db, ann, {"EDITOR": bob})
    asset = await library_asset(live_db, ann, team_id=team)
    async with following(live_db, bus, bob, team) as feed:
        await feed.next()
        await edit(live_db, asset, share_level="PRIVATE")
        await edit(live_db, asset, name="Hidden now")
        await remove(live_db, asset)  # read late, after this: still told it went private
        sentinel = await library_asset(live_db, ann, team_id=team)
        went, after = await feed.take(2)
    assert (went["kind"], went["assetId"], went["changes"], went["asset"]) == (
        "ASSET_UPDATED",
        asset,
        ["shareLevel"],
        None,
    )
    assert brief([after]) == [("ASSET_CREATED", sentinel)]


async def test_only_members_may_follow_a_library(live_db: Database, bus: EventBus) -> None:
    ann = await account(live_db)
    eve = await account(live_db, name="Eve")
    asset = await library_asset(live_db, ann, share_level="PUBLIC")
    await share(live_db, asset, eve, permission="ADMIN")  # shared with her: still not her feed
    async with following(live_db, bus, eve, ann.team_id) as feed:
        assert await feed.error_codes() == ["NOT_FOUND"]
    async with following(live_db, bus, ann, eve.team_id) as feed:
        assert await feed.error_codes() == ["NOT_FOUND"]
    async with following(live_db, bus, eve, eve.team_id) as feed:
        await feed.next()
        await edit(live_db, asset, name="Elsewhere")  # ann's team: not on Eve's feed
        mine = await library_asset(live_db, eve)
        assert brief([await feed.next()]) == [("ASSET_CREATED", mine)]
    project_cursor = "UHJvamVjdEV2ZW50OjE6MQ=="  # a project event's cursor: not this feed's
    async with following(live_db, bus, ann, ann.team_id, after=project_cursor) as feed:
        assert await feed.error_codes() == ["INVALID_CURSOR"]


async def test_removal_from_the_team_ends_the_feed(live_db: Database, bus: EventBus) -> None:
    ann = await account(live_db)
    bob = await account(live_db, name="Bob")
    team = await team_with(live_db, ann, {"EDITOR": bob})
    async with following(live_db, bus, bob, team) as feed:
        await feed.next()
        await mutate_ok(
            live_db,
            "removeTeamMember",
            {"teamId": team, "userId": bob.user_id},
            "team { id }",
            token=ann.token,
        )
        await library_asset(live_db, ann, team_id=team)
        assert await feed.error_codes() == ["NOT_FOUND"]


async def test_signing_out_ends_the_feed(live_db: Database, bus: EventBus) -> None:
    ann = await account(live_db)
    async with following(live_db, bus, ann, ann.team_id) as feed:
        await feed.next()
        out = await gql(live_db, "mutation { logOut { success } }", token=ann.token)
        assert out["logOut"]["success"] is True
        await library_asset(live_db, ann)
        assert await feed.error_codes() == ["TOKEN_INVALID"]


async def test_events_of_a_shared_asset_stop_at_the_shares_expiry(
    live_db: Database, bus: EventBus
) -> None:
    ann = await account(live_db)
    bob = await account(live_db, name="Bob")
    team = await team_with(live_db, ann, {"VIEWER": bob})
    private = await library_asset(live_db, ann, team_id=team, share_level="PRIVATE")
    await share(live_db, private, bob)
    async with following(live_db, bus, bob, team) as feed:
        await feed.next()
        await edit(live_db, private, name="Before expiry")
        before = await feed.next()
        assert (before["kind"], before["asset"]["name"]) == ("ASSET_UPDATED", "Before expiry")
        # The share gets an expiry a second away, while Bob follows (as he is its
        # recipient, he is told, whenever he reads it).
        expires = utcnow() + timedelta(seconds=1)
        await share(live_db, private, bob, expires_at=expires)
        changed = await feed.next()
        assert (changed["kind"], changed["changes"]) == ("ASSET_SHARED", ["expiresAt"])
        await asyncio.sleep(max((expires - utcnow()).total_seconds(), 0) + 0.2)
        await edit(live_db, private, name="After expiry")
        sentinel = await library_asset(live_db, ann, team_id=team)
        assert brief([await feed.next()]) == [("ASSET_CREATED", sentinel)]


async def test_a_cursor_past_the_retention_is_refused(live_db: Database, bus: EventBus) -> None:
    ann = await account(live_db)
    asset = await library_asset(live_db, ann)
    await edit(live_db, asset, name="Old news")
    async with following(live_db, bus, ann, ann.team_id) as feed:
        snapshot = await feed.next()
    team_pk = pk(ann.team_id, "Team")
    async with live_db.transaction() as session:
        await session.exec(
            update(LibraryEventRow)
            .where(col(LibraryEventRow.team_id) == team_pk)
            .values(at=utcnow() - timedelta(days=30))
        )
    tidied = await maintenance.tidy(live_db, event_retention=timedelta(days=7))
    assert tidied.library_events >= 2
    assert await recorded(live_db, ann.team_id) == []
    # The snapshot's cursor is still good (nothing after it was pruned).
    async with following(live_db, bus, ann, ann.team_id, after=snapshot["cursor"]) as feed:
        await edit(live_db, asset, name="New news")
        assert (await feed.next())["sequence"] == snapshot["sequence"] + 1
    async with following(live_db, bus, ann, ann.team_id, after=encode_cursor(team_pk, 1)) as feed:
        assert await feed.error_codes() == ["CURSOR_EXPIRED"]


def test_library_channels_are_per_team() -> None:
    assert library_events.library_channel(7) == "library:7"
    assert events.project_channel(7) != library_events.library_channel(7)


# --- over a real WebSocket ---------------------------------------------------------------


@pytest.fixture
def redis_url() -> str:
    """The machine's Redis: the bus a server and this test's writer share."""
    url = REDIS_URL
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        client.ping()
        client.close()
    except (OSError, redis.ConnectionError) as error:
        _unavailable("Redis", error)
    return url


@pytest.mark.e2e
async def test_library_events_over_a_websocket(tmp_path: Path, redis_url: str) -> None:
    """A running server follows a team's library for Bob, a VIEWER, over graphql-transport-ws:
    the assets this process writes (publishing on the same Redis, as a second instance
    would) reach him in order, filtered for him, until he is removed from the team."""
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'studio.db'}"
    server = studio_server(tmp_path, "library", DATABASE_URL=database_url, EVENT_BUS_URL=redis_url)
    with server:
        async with Api(server.base_url) as ann_api, Api(server.base_url) as bob_api:
            await ann_api.sign_up("Ann")
            await bob_api.sign_up("Bob")
            created = await ann_api.mutate("createTeam", {"name": "Crew"}, "team { id }")
            team = created["team"]["id"]
            await bob_api.join(ann_api, team, "VIEWER")
            ann = Account(ann_api.token, ann_api.user_id, team, ann_api.email)
            bob = Account(bob_api.token, bob_api.user_id, team, bob_api.email)
            writer = Database(database_url)
            async with writer.session() as session:
                namespace = await events.studio_id(session)
            writer.bus = EventBus(redis_url, namespace=namespace)
            await writer.bus.start()
            try:
                async with await Socket.open(server, bob.token) as socket:
                    feed = await socket.subscribe(LIBRARY_EVENTS, {"teamId": team})
                    snapshot = (await feed.next())["libraryEvents"]
                    assert snapshot["kind"] == "SNAPSHOT"

                    private = await library_asset(writer, ann, team_id=team, share_level="PRIVATE")
                    shown = await library_asset(writer, ann, team_id=team, name="Harbour")
                    got = (await feed.next())["libraryEvents"]
                    assert (got["kind"], got["assetId"], got["asset"]["name"]) == (
                        "ASSET_CREATED",
                        shown,
                        "Harbour",
                    )
                    assert got["sequence"] == snapshot["sequence"] + 2  # the private one skipped

                    await share(writer, private, bob)
                    got = (await feed.next())["libraryEvents"]
                    assert (got["kind"], got["assetId"], got["recipientId"]) == (
                        "ASSET_SHARED",
                        private,
                        bob.user_id,
                    )
                    await edit(writer, private, name="Until it expires")
                    got = (await feed.next())["libraryEvents"]
                    assert (got["kind"], got["asset"]["name"]) == (
                        "ASSET_UPDATED",
                        "Until it expires",
                    )
                    expires = utcnow() + timedelta(seconds=1)
                    await share(writer, private, bob, expires_at=expires)
                    got = (await feed.next())["libraryEvents"]
                    assert (got["kind"], got["changes"]) == ("ASSET_SHARED", ["expiresAt"])
                    await asyncio.sleep(max((expires - utcnow()).total_seconds(), 0) + 0.2)
                    await edit(writer, private, name="Expired for Bob")
                    await edit(writer, shown, name="Harbour at night")
                    got = (await feed.next())["libraryEvents"]
                    assert (got["kind"], got["assetId"], got["changes"]) == (
                        "ASSET_UPDATED",
                        shown,
                        ["name"],
                    )

                    await ann_api.remove(bob_api, team)
                    assert await feed.error_codes() == ["NOT_FOUND"]

                    again = await socket.subscribe(LIBRARY_EVENTS, {"teamId": team})
                    assert await again.error_codes() == ["NOT_FOUND"]
            finally:
                await writer.bus.stop()
                await writer.dispose()
