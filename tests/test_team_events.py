"""Team events on each engine: projects, members and invitations recorded per team, one event
per project per write, followed by `teamEvents` (members only, invitations for managers);
and over real WebSockets against two servers sharing Redis."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import update
from sqlalchemy.engine import make_url
from sqlmodel import col, select

from api.graphql import build_context
from api.schema import schema
from schema import ids
from schema.context import Resources
from schema.library_events import encode_cursor as encode_library_cursor
from schema.team_events import TeamEventKind, encode_cursor
from services import maintenance
from services.database import Database
from services.realtime import team_events
from services.realtime.bus import EventBus
from services.tables import (
    ProjectRow,
    SceneRow,
    ShotImageRow,
    StoryboardSelectionRow,
    TeamEventRow,
    TeamInvitationRow,
    TeamMemberRow,
    utcnow,
)
from tests.conftest import _unavailable
from tests.factories import (
    MEDIA,
    Account,
    account,
    gql,
    invitation_code,
    iteration,
    join,
    mutate_ok,
    project,
    scene,
    team_with,
)
from tests.realtime_harness import Api, Socket
from tests.test_bus import REDIS_URL
from tests.test_subscriptions import start_on_sqlite

TEAM_EVENTS = """
subscription($teamId: ID!, $after: String) {
  teamEvents(teamId: $teamId, after: $after) {
    cursor sequence kind nodeId changes at teamId
    node {
      id __typename
      ... on Project { title status progress { totalScenes shotsWithSelections } }
      ... on Team { name }
    }
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


async def recorded(db: Database, team_id: str) -> list[team_events.TeamEvent]:
    async with db.session() as session:
        return await team_events.events_after(session, pk(team_id, "Team"), 0)


def brief(found: list[team_events.TeamEvent]) -> list[tuple[str, str]]:
    """(kind, global ID of the node) of each recorded event."""
    return [(e.kind, ids.encode(e.node_type, e.node_id)) for e in found]


async def invite(db: Database, team: str, inviter: Account, role: str = "VIEWER") -> str:
    """A new invitation's global ID."""
    payload = await mutate_ok(
        db,
        "inviteTeamMember",
        {"teamId": team, "role": role},
        "invitation { id }",
        token=inviter.token,
    )
    invitation_id: str = payload["invitation"]["id"]
    return invitation_id


async def remove_member(db: Database, team: str, member: Account, by: Account) -> None:
    await mutate_ok(
        db,
        "removeTeamMember",
        {"teamId": team, "userId": member.user_id},
        "team { id }",
        token=by.token,
    )


async def select_master(db: Database, owner: Account, shot_id: str) -> None:
    """Images for the shot (its first iteration), and the first selected as its master."""
    images = (await iteration(db, owner, shot_id, count=2))["images"]
    await mutate_ok(
        db,
        "selectMasterShot",
        {"shotId": shot_id, "imageId": images[0]["id"]},
        "selection { id }",
        token=owner.token,
    )


# --- recording ---------------------------------------------------------------------------


async def test_projects_members_and_invitations_are_events_numbered_per_team(
    db: Database,
) -> None:
    ann = await account(db)
    bob = await account(db, name="Bob")
    team = await team_with(db, ann, {"EDITOR": bob})
    made = await project(db, ann, team_id=team, title="Harbour")
    await mutate_ok(
        db,
        "updateProject",
        {"id": made, "title": "Harbour at dusk"},
        "project { id }",
        token=ann.token,
    )
    revoked = await invite(db, team, ann)
    await mutate_ok(db, "revokeInvitation", {"id": revoked}, "deletedId", token=ann.token)
    await mutate_ok(db, "deleteProject", {"id": made}, "deletedId", token=ann.token)
    await remove_member(db, team, bob, by=bob)  # Bob leaves
    elsewhere = await project(db, ann)  # Ann's personal team: its own numbers

    found = await recorded(db, team)
    assert [e.sequence for e in found] == list(range(1, len(found) + 1))
    ann_user, bob_user = ann.user_id, bob.user_id
    kinds = brief(found)
    assert kinds[0] == ("MEMBER_JOINED", ann_user)  # the team's maker
    assert kinds[1][0] == "INVITATION_CREATED"
    accepted = kinds[1][1]
    # Accepting is one write: the member joined and the invitation used up.
    assert set(kinds[2:4]) == {("MEMBER_JOINED", bob_user), ("INVITATION_ACCEPTED", accepted)}
    assert kinds[4:] == [
        ("PROJECT_CREATED", made),
        ("PROJECT_UPDATED", made),
        ("INVITATION_CREATED", revoked),
        ("INVITATION_REVOKED", revoked),
        ("PROJECT_DELETED", made),
        ("MEMBER_LEFT", bob_user),
    ]
    assert found[5].changes == ("title",)
    assert brief((await recorded(db, ann.team_id))[-1:]) == [("PROJECT_CREATED", elsewhere)]


async def test_a_write_is_one_event_per_project_naming_every_change(db: Database) -> None:
    ann = await account(db)
    made = await project(db, ann)
    start = len(await recorded(db, ann.team_id))
    # createScene: a scene, its shots and the status moving on, in one write.
    first = await scene(db, ann, made, shots=3)
    found = (await recorded(db, ann.team_id))[start:]
    assert brief(found) == [("PROJECT_UPDATED", made)]
    assert set(found[0].changes) == {"progress", "status"}

    # Several flushes in one transaction, a project made and changed in it, a rollback.
    async with db.transaction() as session:
        row = await session.get(ProjectRow, pk(made, "Project"))
        assert row is not None
        row.title = "Renamed"
        await session.flush()
        session.add(SceneRow(project_id=row.id or 0, scene_number=99, title="Second"))
        await session.flush()
        row.status = "SCENES_SETUP"
        fresh = ProjectRow(team_id=row.team_id, owner_id=row.owner_id, title="Fresh")
        session.add(fresh)
        await session.flush()
        session.add(SceneRow(project_id=fresh.id or 0, scene_number=0, title="Inside"))
        fresh.title = "Fresher"
    with contextlib.suppress(RuntimeError):
        async with db.transaction() as session:
            row = await session.get(ProjectRow, pk(made, "Project"))
            assert row is not None
            row.title = "Never"
            await session.flush()
            raise RuntimeError("roll back")
    found = (await recorded(db, ann.team_id))[start + 1 :]
    assert [e.kind for e in found] == ["PROJECT_UPDATED", "PROJECT_CREATED"]
    assert found[0].node_id == pk(made, "Project")
    assert found[0].changes == ("title", "progress")  # status set back as it was: not a change
    assert found[1].changes == ()
    assert len(first["shots"]) == 3


async def test_progress_changes_are_events_and_what_a_list_does_not_show_is_not(
    db: Database,
) -> None:
    ann = await account(db)
    made = await project(db, ann)
    shots = (await scene(db, ann, made, shots=2))["shots"]
    start = len(await recorded(db, ann.team_id))

    # The first images move the status on; the prompt and images' own changes are no event.
    await iteration(db, ann, shots[0]["id"], count=2)
    await mutate_ok(
        db, "updateProject", {"id": made, "prompt": "Typed on"}, "project { id }", token=ann.token
    )
    async with db.transaction() as session:
        images = await session.exec(
            select(ShotImageRow).where(col(ShotImageRow.shot_id) == pk(shots[0]["id"], "Shot"))
        )
        for image in images:
            image.is_favorite = True
    found = (await recorded(db, ann.team_id))[start:]
    assert [(e.kind, e.changes) for e in found] == [("PROJECT_UPDATED", ("status",))]

    # A master selected: the count of masters moved.
    await select_master(db, ann, shots[1]["id"])
    found = (await recorded(db, ann.team_id))[start + 1 :]
    assert [(e.kind, e.changes) for e in found] == [("PROJECT_UPDATED", ("progress",))]

    # Its animation: only reaching COMPLETE (or leaving it) changes the count of clips.
    for status in ("PENDING", "PROCESSING", "COMPLETE", "COMPLETE"):
        async with db.transaction() as session:
            selection = (
                await session.exec(
                    select(StoryboardSelectionRow).where(
                        col(StoryboardSelectionRow.project_id) == pk(made, "Project")
                    )
                )
            ).one()
            selection.animation_status = status
    found = (await recorded(db, ann.team_id))[start + 2 :]
    assert [(e.kind, e.changes) for e in found] == [("PROJECT_UPDATED", ("progress",))]


async def test_roles_changed_and_invitations_expired_are_told(db: Database) -> None:
    ann = await account(db)
    bob = await account(db, name="Bob")
    team = await team_with(db, ann, {"VIEWER": bob})
    lapsing = await invite(db, team, ann)
    start = len(await recorded(db, team))
    async with db.transaction() as session:
        member = await session.get(TeamMemberRow, (pk(team, "Team"), pk(bob.user_id, "User")))
        assert member is not None
        member.role = "ADMIN"
        invitation = await session.get(TeamInvitationRow, pk(lapsing, "Invitation"))
        assert invitation is not None
        invitation.expires_at = utcnow() - timedelta(seconds=1)
    await maintenance.tidy(db, event_retention=timedelta(days=7))
    found = (await recorded(db, team))[start:]
    assert brief(found) == [
        ("MEMBER_ROLE_CHANGED", bob.user_id),
        ("INVITATION_EXPIRED", lapsing),
    ]
    assert found[0].changes == ("role",)


async def test_concurrent_writers_share_one_dense_sequence_per_team(db: Database) -> None:
    ann = await account(db)
    projects = [await project(db, ann) for _ in range(4)]
    start = len(await recorded(db, ann.team_id))

    async def rename(n: int) -> None:
        await mutate_ok(
            db,
            "updateProject",
            {"id": projects[n % 4], "title": f"take {n}"},
            "project { id }",
            token=ann.token,
        )

    await asyncio.gather(*(rename(n) for n in range(12)))
    found = (await recorded(db, ann.team_id))[start:]
    assert [e.sequence for e in found] == list(range(start + 1, start + 13))


def test_every_kind_recorded_is_a_value_of_the_graphql_enum() -> None:
    assert [kind.name for kind in TeamEventKind] == list(team_events.KINDS)
    assert team_events.team_channel(7) == "team:7"


# --- following through the schema ------------------------------------------------------


class Feed:
    """`teamEvents` through `schema.subscribe`, as `viewer`, read with bounded waits."""

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
            TEAM_EVENTS, variable_values={"teamId": team_id, "after": after}, context_value=context
        )
        return self

    async def result(self, within: float = WAIT) -> Any:
        if not hasattr(self.stream, "__anext__"):  # refused before it started
            return self.stream
        return await asyncio.wait_for(anext(self.stream), within)

    async def next(self, within: float = WAIT) -> dict[str, Any]:
        result = await self.result(within)
        assert not result.errors, result.errors
        event: dict[str, Any] = result.data["teamEvents"]
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


def kinds(events_: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["kind"], e["nodeId"]) for e in events_]


async def test_the_feed_sends_a_snapshot_then_each_change_read_when_sent(
    live_db: Database, bus: EventBus
) -> None:
    ann = await account(live_db)
    bob = await account(live_db, name="Bob")
    team = await team_with(live_db, ann, {"EDITOR": bob}, name="Harbour crew")
    async with following(live_db, bus, bob, team) as feed:
        snapshot = await feed.next()
        assert (snapshot["kind"], snapshot["nodeId"], snapshot["node"]["name"]) == (
            "SNAPSHOT",
            team,
            "Harbour crew",
        )
        made = await project(live_db, ann, team_id=team, title="Tide")
        got = [await feed.next()]
        shot = (await scene(live_db, ann, made, shots=1))["shots"][0]["id"]
        got.append(await feed.next())
        await select_master(live_db, ann, shot)
        got.extend(await feed.take(2))  # images (the status moves on), then the master
        await mutate_ok(live_db, "deleteProject", {"id": made}, "deletedId", token=ann.token)
        got.append(await feed.next())
    assert kinds(got) == [
        ("PROJECT_CREATED", made),
        ("PROJECT_UPDATED", made),
        ("PROJECT_UPDATED", made),
        ("PROJECT_UPDATED", made),
        ("PROJECT_DELETED", made),
    ]
    assert [e["sequence"] for e in got] == [snapshot["sequence"] + n for n in range(1, 6)]
    assert sorted(got[1]["changes"]) == ["progress", "status"]
    assert got[2]["changes"] == ["status"]
    assert sorted(got[3]["changes"]) == ["progress", "status"]  # every shot has its master
    master = got[3]["node"]
    assert (master["__typename"], master["status"]) == ("Project", "STORYBOARD_FINAL")
    assert master["progress"] == {"totalScenes": 1, "shotsWithSelections": 1}
    assert got[4]["node"] is None
    assert {e["teamId"] for e in got} == {team}


async def test_resuming_after_a_cursor_sends_exactly_the_missed_events(
    live_db: Database, bus: EventBus
) -> None:
    ann = await account(live_db)
    first = await project(live_db, ann)
    async with following(live_db, bus, ann, ann.team_id) as feed:
        await feed.next()
        await mutate_ok(
            live_db,
            "updateProject",
            {"id": first, "title": "Seen"},
            "project { id }",
            token=ann.token,
        )
        seen = await feed.next()
    missed = [await project(live_db, ann) for _ in range(2)]
    await mutate_ok(live_db, "deleteProject", {"id": first}, "deletedId", token=ann.token)
    async with following(live_db, bus, ann, ann.team_id, after=seen["cursor"]) as feed:
        replayed = await feed.take(3)
        later = await project(live_db, ann)
        (live,) = await feed.take(1)
    assert kinds(replayed) == [
        ("PROJECT_CREATED", missed[0]),
        ("PROJECT_CREATED", missed[1]),
        ("PROJECT_DELETED", first),
    ]
    assert [e["sequence"] for e in replayed] == [seen["sequence"] + n for n in (1, 2, 3)]
    assert (live["kind"], live["nodeId"], live["sequence"]) == (
        "PROJECT_CREATED",
        later,
        seen["sequence"] + 4,
    )


async def test_invitation_events_reach_owners_and_admins_only(
    live_db: Database, bus: EventBus
) -> None:
    ann = await account(live_db)
    bob = await account(live_db, name="Bob")
    cat = await account(live_db, name="Cat")
    team = await team_with(live_db, ann, {"EDITOR": bob})
    async with (
        following(live_db, bus, ann, team) as anns,
        following(live_db, bus, bob, team) as bobs,
    ):
        await anns.next()
        await bobs.next()
        code = await invitation_code(live_db, team, role="VIEWER", inviter=ann)
        made = await anns.next()
        assert (made["kind"], made["node"]["__typename"]) == ("INVITATION_CREATED", "Invitation")
        await mutate_ok(live_db, "acceptInvitation", {"code": code}, "team { id }", token=cat.token)
        ann_got = [made, *await anns.take(2)]
        used = next(e for e in ann_got if e["kind"] == "INVITATION_ACCEPTED")
        assert (used["nodeId"], used["node"]) == (made["nodeId"], None)
        assert {e["kind"] for e in ann_got[1:]} == {"INVITATION_ACCEPTED", "MEMBER_JOINED"}
        # Bob, an editor, hears that Cat joined, and of no invitation.
        joined = await bobs.next()
        assert (joined["kind"], joined["nodeId"], joined["node"]["id"]) == (
            "MEMBER_JOINED",
            cat.user_id,
            cat.user_id,
        )
        joined_at = next(e for e in ann_got if e["kind"] == "MEMBER_JOINED")["sequence"]
        assert joined["sequence"] == joined_at


async def test_only_members_may_follow_a_team(live_db: Database, bus: EventBus) -> None:
    ann = await account(live_db)
    eve = await account(live_db, name="Eve")
    async with following(live_db, bus, eve, ann.team_id) as feed:
        assert await feed.error_codes() == ["NOT_FOUND"]
    library_cursor = encode_library_cursor(pk(ann.team_id, "Team"), 1)  # not this feed's
    async with following(live_db, bus, ann, ann.team_id, after=library_cursor) as feed:
        assert await feed.error_codes() == ["INVALID_CURSOR"]
    async with following(live_db, bus, eve, eve.team_id) as feed:
        await feed.next()
        await project(live_db, ann)  # Ann's team: not on Eve's feed
        mine = await project(live_db, eve)
        assert kinds([await feed.next()]) == [("PROJECT_CREATED", mine)]


async def test_removal_or_leaving_ends_the_feed_before_any_later_event(
    live_db: Database, bus: EventBus
) -> None:
    ann = await account(live_db)
    bob = await account(live_db, name="Bob")
    cat = await account(live_db, name="Cat")
    team = await team_with(live_db, ann, {"EDITOR": bob, "VIEWER": cat})
    async with (
        following(live_db, bus, bob, team) as bobs,
        following(live_db, bus, cat, team) as cats,
    ):
        await bobs.next()
        await cats.next()
        await remove_member(live_db, team, bob, by=ann)
        made = await project(live_db, ann, team_id=team)  # sent after the removal: not to Bob
        assert await bobs.error_codes() == ["NOT_FOUND"]
        assert kinds(await cats.take(2)) == [
            ("MEMBER_LEFT", bob.user_id),
            ("PROJECT_CREATED", made),
        ]
        await remove_member(live_db, team, cat, by=cat)  # Cat leaves: not told of it, ended
        await project(live_db, ann, team_id=team)
        assert await cats.error_codes() == ["NOT_FOUND"]
    async with following(live_db, bus, bob, team) as feed:
        assert await feed.error_codes() == ["NOT_FOUND"]


async def test_signing_out_ends_the_feed(live_db: Database, bus: EventBus) -> None:
    ann = await account(live_db)
    async with following(live_db, bus, ann, ann.team_id) as feed:
        await feed.next()
        out = await gql(live_db, "mutation { logOut { success } }", token=ann.token)
        assert out["logOut"]["success"] is True  # told at once: no later write is needed
        assert await feed.error_codes() == ["TOKEN_INVALID"]


async def test_a_cursor_past_the_retention_is_refused(live_db: Database, bus: EventBus) -> None:
    ann = await account(live_db)
    made = await project(live_db, ann)
    async with following(live_db, bus, ann, ann.team_id) as feed:
        snapshot = await feed.next()
    team_pk = pk(ann.team_id, "Team")
    async with live_db.transaction() as session:
        await session.exec(
            update(TeamEventRow)
            .where(col(TeamEventRow.team_id) == team_pk)
            .values(at=utcnow() - timedelta(days=30))
        )
    tidied = await maintenance.tidy(live_db, event_retention=timedelta(days=7))
    assert tidied.team_events >= 2
    assert await recorded(live_db, ann.team_id) == []
    async with following(live_db, bus, ann, ann.team_id, after=snapshot["cursor"]) as feed:
        await mutate_ok(
            live_db,
            "updateProject",
            {"id": made, "title": "New"},
            "project { id }",
            token=ann.token,
        )
        assert (await feed.next())["sequence"] == snapshot["sequence"] + 1
    async with following(live_db, bus, ann, ann.team_id, after=encode_cursor(team_pk, 1)) as feed:
        assert await feed.error_codes() == ["CURSOR_EXPIRED"]


# --- over real WebSockets, two servers sharing a bus -------------------------------------


def redis_url() -> str:
    """The machine's Redis."""
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        client.ping()
        client.close()
    except (OSError, redis.ConnectionError) as error:
        _unavailable("Redis", error)
    return REDIS_URL


@pytest.mark.e2e
@pytest.mark.parametrize("bus", ["redis", "postgres"])
async def test_team_events_across_two_servers_over_websockets(
    bus: str, tmp_path: Path, postgresql_url: str
) -> None:
    """Bob follows his team on server A; Ann writes through server B. Her changes reach him
    in order over the shared bus (Redis, or PostgreSQL's LISTEN/NOTIFY), a new socket
    resumes after a cursor with no duplicate, an outsider is refused, and his feed ends
    the moment Ann removes him."""
    if bus == "redis":
        bus_url = redis_url()
    else:
        database = make_url(postgresql_url).database
        bus_url = f"postgres://postgres@127.0.0.1:5432/{database}"
    a = start_on_sqlite(tmp_path, "a", "studio.db", bus_url)
    b = start_on_sqlite(tmp_path, "b", "studio.db", bus_url)
    try:
        async with (
            Api(b.base_url) as ann,
            Api(a.base_url) as bob,
            Api(a.base_url) as eve,
        ):
            await ann.sign_up("Ann")
            await bob.sign_up("Bob")
            await eve.sign_up("Eve")
            team = (await ann.mutate("createTeam", {"name": "Crew"}, "team { id }"))["team"]["id"]
            await bob.join(ann, team, "VIEWER")
            async with await Socket.open(a, eve.token) as socket:
                refused = await socket.subscribe(TEAM_EVENTS, {"teamId": team})
                assert await refused.error_codes() == ["NOT_FOUND"]

            async with await Socket.open(a, bob.token) as socket:
                feed = await socket.subscribe(TEAM_EVENTS, {"teamId": team})
                snapshot = (await feed.next())["teamEvents"]
                assert snapshot["kind"] == "SNAPSHOT"
                made = await ann.create_project("Tide", team)
                created = (await feed.next())["teamEvents"]
                assert (created["kind"], created["nodeId"], created["node"]["title"]) == (
                    "PROJECT_CREATED",
                    made,
                    "Tide",
                )
                await ann.create_scene(made, "Ebb", [{"description": "Crabs"}])
                updated = (await feed.next())["teamEvents"]
                assert (updated["kind"], sorted(updated["changes"])) == (
                    "PROJECT_UPDATED",
                    ["progress", "status"],
                )
                assert updated["node"]["progress"]["totalScenes"] == 1
                seen = updated["cursor"]
            # Offline: what happens now is replayed on the next socket, once each.
            await ann.mutate("updateProject", {"id": made, "title": "Tide pools"}, "project { id }")
            other = await ann.create_project("Reef", team)
            async with await Socket.open(a, bob.token) as socket:
                feed = await socket.subscribe(TEAM_EVENTS, {"teamId": team, "after": seen})
                replayed = [(await feed.next())["teamEvents"] for _ in range(2)]
                assert [(e["kind"], e["nodeId"]) for e in replayed] == [
                    ("PROJECT_UPDATED", made),
                    ("PROJECT_CREATED", other),
                ]
                assert replayed[0]["node"]["title"] == "Tide pools"
                assert [e["sequence"] for e in replayed] == [
                    updated["sequence"] + 1,
                    updated["sequence"] + 2,
                ]
                await ann.mutate("deleteProject", {"id": other}, "deletedId")
                gone = (await feed.next())["teamEvents"]
                assert (gone["kind"], gone["nodeId"], gone["node"]) == (
                    "PROJECT_DELETED",
                    other,
                    None,
                )
                assert gone["sequence"] == updated["sequence"] + 3

                await ann.remove(bob, team)
                await ann.create_project("After Bob", team)
                assert await feed.error_codes() == ["NOT_FOUND"]
    finally:
        a.stop()
        b.stop()


async def test_joining_by_invitation_is_recorded_in_the_joined_team(db: Database) -> None:
    ann = await account(db)
    bob = await account(db, name="Bob")
    team = await team_with(db, ann, {})
    start = len(await recorded(db, team))
    await join(db, team, bob, role="EDITOR", inviter=ann)
    found = (await recorded(db, team))[start:]
    assert found[0].kind == "INVITATION_CREATED"
    assert {e.kind for e in found[1:]} == {"MEMBER_JOINED", "INVITATION_ACCEPTED"}
    # Bob's own team is told only of his sign-up.
    assert brief(await recorded(db, bob.team_id)) == [("MEMBER_JOINED", bob.user_id)]
