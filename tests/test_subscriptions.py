"""Live subscriptions end to end: real `studio serve` processes, spoken to over WebSocket.

A client on graphql-transport-ws signs in with its token in connection_init and
follows a project (`projectEvents`), a shot's iterations (`iterationStatus`) or
a storyboard's animation (`animationStatus`). Each feed is ordered and gapless:
sequences 1, 2, 3... per project, resumable with a cursor, delivered across
server instances by a shared bus (Redis or PostgreSQL), surviving a Redis
restart and a client that stops reading, and ended when access goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket as sockets
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis
from sqlalchemy.engine import make_url
from websockets.exceptions import InvalidStatus

from services.database import scratch_postgres_database
from tests.conftest import ADMIN_URL, _unavailable
from tests.emulator_harness import eventually
from tests.realtime_harness import (
    ANIMATION_STATUS,
    ITERATION_STATUS,
    PROJECT_EVENTS,
    WAIT,
    Api,
    Feed,
    Socket,
)
from tests.servers import HOST, StudioServer, free_port, run_studio, studio_env

pytestmark = pytest.mark.e2e

SECRET_KEY = "realtime end-to-end tests secret key, long enough to pass"
EDITOR_ORIGIN = "https://editor.example.com"
RANK = {"PENDING": 0, "PROCESSING": 1, "COMPLETE": 2, "FAILED": 2, "CANCELED": 2}


# -- servers ----------------------------------------------------------------------------------


def studio_server(cwd: Path, name: str, port: int | None = None, **settings: str) -> StudioServer:
    defaults = {
        "SECRET_KEY": SECRET_KEY,
        "MEDIA_ROOT": str(cwd / f"media-{name}"),
        "EMULATOR_LATENCY_MS": "200",
        "GENERATION_POLL_SECONDS": "0.3",
    }
    env = studio_env(**(defaults | settings))
    return StudioServer(env=env, cwd=cwd, name=name, log_dir=cwd, port=port)


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioServer]:
    """One server on SQLite and the in-process bus, with its built-in emulator."""
    cwd = tmp_path_factory.mktemp("studio")
    server = studio_server(
        cwd,
        "studio",
        DATABASE_URL=f"sqlite+aiosqlite:///{cwd / 'studio.db'}",
        ALLOWED_ORIGINS=EDITOR_ORIGIN,
    )
    with server:
        yield server


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for one test's servers, dropped afterwards."""
    try:
        async with scratch_postgres_database(ADMIN_URL, prefix="studio_realtime") as url:
            yield url
    except (OSError, asyncpg.PostgresError) as error:
        _unavailable("PostgreSQL", error)


def migrate(database_url: str, cwd: Path) -> None:
    result = run_studio(
        ["migrate"], env=studio_env(DATABASE_URL=database_url, SECRET_KEY=SECRET_KEY), cwd=cwd
    )
    assert result.returncode == 0, result.stdout + result.stderr


def start_pair(cwd: Path, database_url: str, bus_url: str) -> tuple[StudioServer, StudioServer]:
    """Two instances of one studio: A only serves (it never works on generations itself,
    polling once an hour); B does the writes and runs generations on its emulator, which
    reports back by webhook only (B's PUBLIC_URL; B polls once an hour too). Their
    emulators log their requests, so each one's output shows the work it did."""
    migrate(database_url, cwd)
    a = studio_server(
        cwd,
        "a",
        DATABASE_URL=database_url,
        EVENT_BUS_URL=bus_url,
        GENERATION_POLL_SECONDS="3600",
        EMULATOR_LOG_REQUESTS="true",
    )
    port = free_port()
    b = studio_server(
        cwd,
        "b",
        port,
        DATABASE_URL=database_url,
        EVENT_BUS_URL=bus_url,
        PUBLIC_URL=f"http://{HOST}:{port}",
        GENERATION_POLL_SECONDS="3600",
        EMULATOR_LOG_REQUESTS="true",
    )
    for server in (a, b):
        server.launch()
    try:
        for server in (a, b):
            server.wait_ready()
    except BaseException:
        for server in (a, b):
            server.stop()
        raise
    return a, b


class RedisServer:
    """A `redis-server` of this test alone, without persistence, that can be killed and restarted."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        log = (self.cwd / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                HOST,
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            cwd=self.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        client = redis.Redis(host=HOST, port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 15
        try:
            while True:
                assert self.process.poll() is None, (self.cwd / "redis.log").read_text()
                with contextlib.suppress(redis.ConnectionError):
                    if client.ping():
                        return
                assert time.monotonic() < deadline, "redis-server did not come up"
                time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    try:
        server.start()
    except FileNotFoundError as error:
        _unavailable("redis-server", error)
    try:
        yield server
    finally:
        server.kill()


# -- checks on feeds -----------------------------------------------------------------------------


def events(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [message["projectEvents"] for message in messages]


def kinds(messages: list[dict[str, Any]]) -> list[str]:
    return [event["kind"] for event in events(messages)]


def assert_dense(messages: list[dict[str, Any]], first: int) -> None:
    """Sequences first, first+1, ...: none missing, none twice, in order."""
    sequences = [event["sequence"] for event in events(messages)]
    assert sequences == list(range(first, first + len(sequences))), sequences


async def snapshot(feed: Feed) -> dict[str, Any]:
    first: dict[str, Any] = (await feed.next())["projectEvents"]
    assert first["kind"] == "SNAPSHOT", first
    return first


async def follow_project(
    server: StudioServer, api: Api, project_id: str, after: str | None = None
) -> tuple[Socket, Feed]:
    socket = await Socket.open(server, api.token)
    feed = await socket.subscribe(PROJECT_EVENTS, {"projectId": project_id, "after": after})
    return socket, feed


async def until_sequence(feed: Feed, sequence: int, within: float = 60.0) -> list[dict[str, Any]]:
    return await feed.until(
        lambda message: message["projectEvents"]["sequence"] >= sequence, within=within
    )


async def until_images_done(feed: Feed, image_ids: list[str]) -> list[dict[str, Any]]:
    """projectEvents messages until each image has had the update that stored it."""
    stored: set[str] = set()

    def done(message: dict[str, Any]) -> bool:
        event = message["projectEvents"]
        if event["kind"] == "SHOT_IMAGE_UPDATED" and "imageUrl" in event["changes"]:
            stored.add(event["nodeId"])
        return stored >= set(image_ids)

    return await feed.until(done, within=60.0)


async def assert_quiet(feed: Feed, seconds: float) -> None:
    """Nothing arrives on the feed for a while."""
    try:
        async with asyncio.timeout(seconds):
            message = await feed.message(within=seconds * 2)
    except TimeoutError:
        return
    raise AssertionError(f"expected nothing for {seconds} s, got {message}")


def all_complete(iterations: list[dict[str, Any]], count: int) -> bool:
    images = [image for iteration in iterations for image in iteration["images"]]
    return len(images) == count and all(
        image["status"] == "COMPLETE" and image["imageUrl"] for image in images
    )


async def watch_generation(
    feed: Feed, shot_id: str, image_ids: list[str], count: int
) -> list[dict[str, Any]]:
    """iterationStatus messages until `count` images are COMPLETE, checked on the way."""
    messages = await feed.until(
        lambda message: all_complete(message["iterationStatus"]["iterations"], count),
        within=60.0,
    )
    seen: dict[str, int] = {}
    cursors = [message["iterationStatus"]["cursor"] for message in messages]
    assert len(set(cursors)) == len(cursors), "a cursor came twice"
    for message in messages:
        status = message["iterationStatus"]
        assert status["shot"] == {"id": shot_id}
        image = status["image"]
        assert image is not None, "only the first message has no image"
        assert image["shot"] == {"id": shot_id}
        assert image["id"] in image_ids
        rank = RANK[image["status"]]
        assert rank >= seen.get(image["id"], 0), f"{image['id']} went back to {image['status']}"
        seen[image["id"]] = rank
    final = messages[-1]["iterationStatus"]["iterations"]
    assert [iteration["status"] for iteration in final] == ["COMPLETE"]
    assert sorted(image["id"] for image in final[0]["images"]) == sorted(image_ids)
    return messages


# -- one server ---------------------------------------------------------------------------------


async def test_a_feed_starts_with_a_snapshot_then_every_change_in_order(
    studio: StudioServer,
) -> None:
    async with Api(studio.base_url) as api:
        await api.sign_up()
        project_id = await api.create_project("Lighthouse")
        socket, feed = await follow_project(studio, api, project_id)
        async with socket:
            first = await snapshot(feed)
            assert first["sequence"] == 1  # the project's creation
            assert first["projectId"] == project_id
            assert first["node"] == {"id": project_id, "__typename": "Project"}

            opening = await api.create_scene(
                project_id, "Opening", [{"description": "Cliffs"}, {"description": "Lamp room"}]
            )
            closing = await api.create_scene(project_id, "Closing", [])
            await api.rename_scene(opening["id"], "Overture")
            await api.mutate(
                "reorderScenes",
                {"parentId": project_id, "ids": [closing["id"], opening["id"]]},
                "project { id }",
            )
            await api.mutate("deleteScene", {"id": opening["id"]}, "deletedId")
            await api.mutate("deleteProject", {"id": project_id}, "deletedId")

            got = await feed.take(10)
            await feed.completed()  # PROJECT_DELETED ends the feed

    assert kinds(got) == [
        "SCENE_CREATED",
        "SHOT_CREATED",
        "SHOT_CREATED",
        "PROJECT_UPDATED",  # its workflow status moves on
        "SCENE_CREATED",
        "SCENE_UPDATED",
        "SCENE_UPDATED",
        "SCENE_UPDATED",
        "SCENE_DELETED",
        "PROJECT_DELETED",
    ]
    assert_dense(got, 2)
    feed_events = events(got)
    assert all(event["projectId"] == project_id for event in feed_events)
    assert len({event["cursor"] for event in [first, *feed_events]}) == 11

    shot_ids = [shot["id"] for shot in opening["shots"]]
    created, shot_a, shot_b, project, created_b, renamed, moved_1, moved_2, deleted, gone = (
        feed_events
    )
    assert created["nodeId"] == opening["id"]
    assert [shot_a["nodeId"], shot_b["nodeId"]] == shot_ids
    assert project["nodeId"] == project_id
    assert project["changes"] == ["status"]
    assert created_b["nodeId"] == closing["id"]
    assert renamed["nodeId"] == opening["id"]
    assert renamed["changes"] == ["title"]
    assert {moved_1["nodeId"], moved_2["nodeId"]} == {opening["id"], closing["id"]}
    assert moved_1["changes"] == moved_2["changes"] == ["sceneNumber"]
    assert deleted["nodeId"] == opening["id"]
    assert gone["nodeId"] == project_id

    for event in (created, shot_a, shot_b, project, created_b, renamed, moved_1, moved_2):
        if not event["kind"].endswith("_UPDATED"):
            assert event["changes"] == [], event
        # The node is read when the event is sent: still there, unless deleted since.
        if event["nodeId"] == opening["id"] or event["nodeId"] in shot_ids:
            continue
        assert event["node"] is not None, event
        assert event["node"]["id"] == event["nodeId"], event
    assert deleted["node"] is None
    assert gone["node"] is None


async def test_a_feed_sends_nodes_as_they_are_when_each_event_is_sent(
    studio: StudioServer,
) -> None:
    async with Api(studio.base_url) as api:
        await api.sign_up()
        project_id = await api.create_project()
        socket, feed = await follow_project(studio, api, project_id)
        async with socket:
            await snapshot(feed)
            scene = await api.create_scene(project_id, "Dock", [{"description": "Rope"}])
            live = await feed.take(3)
            assert kinds(live) == ["SCENE_CREATED", "SHOT_CREATED", "PROJECT_UPDATED"]
            assert [event["node"] for event in events(live)] == [
                {"id": scene["id"], "__typename": "Scene"},
                {"id": scene["shots"][0]["id"], "__typename": "Shot"},
                {"id": project_id, "__typename": "Project"},
            ]
            await api.mutate("deleteScene", {"id": scene["id"]}, "deletedId")
            (deleted,) = events(await feed.take(1))
            assert deleted["kind"] == "SCENE_DELETED"
            assert deleted["nodeId"] == scene["id"]
            assert deleted["node"] is None


async def test_iteration_status_follows_a_real_generation_to_complete(
    studio: StudioServer,
) -> None:
    async with Api(studio.base_url) as api:
        await api.sign_up()
        project_id = await api.create_project()
        scene = await api.create_scene(project_id, "Fog", [{"initialPrompt": "fog horn"}])
        shot_id = scene["shots"][0]["id"]
        async with await Socket.open(studio, api.token) as socket:
            feed = await socket.subscribe(ITERATION_STATUS, {"shotId": shot_id})
            first = (await feed.next())["iterationStatus"]
            assert first["image"] is None
            assert first["iterations"] == []
            assert first["shot"] == {"id": shot_id}

            started = time.monotonic()
            image_ids = await api.generate(shot_id, 6)
            assert len(image_ids) == 6
            messages = await watch_generation(feed, shot_id, image_ids, 6)
            elapsed = time.monotonic() - started

            # Every image was announced: created PENDING, then on to COMPLETE.
            announced = {message["iterationStatus"]["image"]["id"] for message in messages}
            assert announced == set(image_ids)
            final = messages[-1]["iterationStatus"]["iterations"]
            assert final[0]["iterationNumber"] == 0
            assert [image["id"] for image in final[0]["images"]] == image_ids
            # At least a creation and a completion per image.
            assert len(messages) >= 12, len(messages)

            # A new subscriber's first message is the current state, complete.
            again = await socket.subscribe(ITERATION_STATUS, {"shotId": shot_id})
            current = (await again.next())["iterationStatus"]
            assert current["image"] is None
            assert all_complete(current["iterations"], 6)
    assert elapsed < 30, elapsed


async def test_iteration_status_ends_when_its_shot_or_scene_goes(studio: StudioServer) -> None:
    async with Api(studio.base_url) as api:
        await api.sign_up()
        project_id = await api.create_project()
        scene = await api.create_scene(
            project_id, "Wreck", [{"initialPrompt": "hull"}, {"initialPrompt": "mast"}]
        )
        hull, mast = (shot["id"] for shot in scene["shots"])
        async with await Socket.open(studio, api.token) as socket:
            hull_feed = await socket.subscribe(ITERATION_STATUS, {"shotId": hull})
            mast_feed = await socket.subscribe(ITERATION_STATUS, {"shotId": mast})
            await hull_feed.next()
            await mast_feed.next()

            await api.mutate("deleteShot", {"id": mast}, "deletedId")
            await mast_feed.completed()
            gone = await socket.subscribe(ITERATION_STATUS, {"shotId": mast})
            assert await gone.error_codes() == ["NOT_FOUND"]

            # The other shot's feed goes on, and ends with its scene.
            (image_id,) = await api.generate(hull, 1)
            update = (await hull_feed.next())["iterationStatus"]
            assert update["image"]["id"] == image_id
            await api.mutate("deleteScene", {"id": scene["id"]}, "deletedId")
            ended = await hull_feed.message(within=30.0)
            while ended.get("type") == "next":  # the image may still report progress first
                assert ended["payload"]["data"]["iterationStatus"]["image"]["id"] == image_id
                ended = await hull_feed.message(within=30.0)
            assert ended == {"id": hull_feed.id, "type": "complete"}


async def test_animation_status_follows_a_selection_and_its_clip(studio: StudioServer) -> None:
    async with Api(studio.base_url) as api:
        await api.sign_up()
        project_id = await api.create_project()
        scene = await api.create_scene(project_id, "Beam", [{"initialPrompt": "rotating beam"}])
        shot_id = scene["shots"][0]["id"]
        async with await Socket.open(studio, api.token) as socket:
            shot_feed = await socket.subscribe(ITERATION_STATUS, {"shotId": shot_id})
            await shot_feed.next()
            (image_id,) = await api.generate(shot_id, 1)
            await watch_generation(shot_feed, shot_id, [image_id], 1)

            feed = await socket.subscribe(ANIMATION_STATUS, {"projectId": project_id})
            first = (await feed.next())["animationStatus"]
            assert first["selections"] == []
            assert first["selection"] is None
            assert first["progress"] == {"shotsWithSelections": 0, "animationProgress": 0.0}

            selection = (
                await api.mutate(
                    "selectMasterShot",
                    {"shotId": shot_id, "imageId": image_id},
                    "selection { id }",
                )
            )["selection"]
            chosen = (await feed.next())["animationStatus"]
            assert chosen["selection"] == {"id": selection["id"], "animationStatus": None}
            assert chosen["selections"] == [{"id": selection["id"], "animationStatus": None}]
            assert chosen["progress"]["shotsWithSelections"] == 1

            await api.mutate("animateShot", {"selectionId": selection["id"]}, "selection { id }")
            messages = await feed.until(
                lambda message: (
                    message["animationStatus"]["selection"] is not None
                    and message["animationStatus"]["selection"]["animationStatus"] == "COMPLETE"
                ),
                within=90.0,
            )
    statuses = [message["animationStatus"]["selection"]["animationStatus"] for message in messages]
    assert all(
        message["animationStatus"]["selection"]["id"] == selection["id"] for message in messages
    )
    assert [RANK[status] for status in statuses] == sorted(RANK[status] for status in statuses)
    assert messages[-1]["animationStatus"]["progress"]["animationProgress"] == 100.0


async def test_a_client_resumes_with_a_cursor_and_misses_nothing(studio: StudioServer) -> None:
    async with Api(studio.base_url) as api:
        await api.sign_up()
        project_id = await api.create_project()
        socket, feed = await follow_project(studio, api, project_id)
        async with socket:
            start = await snapshot(feed)
            scene = await api.create_scene(project_id, "Pier", [{"description": "Gulls"}])
            seen = await feed.take(3)
        assert_dense(seen, start["sequence"] + 1)
        cursor = events(seen)[-1]["cursor"]
        last = events(seen)[-1]["sequence"]

        # Away: these happen while nobody listens.
        await api.rename_scene(scene["id"], "Jetty")
        shot_id = await api.create_shot(scene["id"], "Nets")
        other = await api.create_scene(project_id, "Storm", [])

        socket, feed = await follow_project(studio, api, project_id, after=cursor)
        async with socket:
            replayed = await feed.take(3)
            assert kinds(replayed) == ["SCENE_UPDATED", "SHOT_CREATED", "SCENE_CREATED"]
            assert_dense(replayed, last + 1)
            assert [event["nodeId"] for event in events(replayed)] == [
                scene["id"],
                shot_id,
                other["id"],
            ]
            # Then live, straight after the replay: no gap, no repeat.
            await api.rename_scene(other["id"], "Gale")
            (live,) = await feed.take(1)
            assert live["projectEvents"]["sequence"] == last + 4
            assert live["projectEvents"]["kind"] == "SCENE_UPDATED"

            # From the very first cursor, everything since it comes again, in order.
            again = await socket.subscribe(
                PROJECT_EVENTS, {"projectId": project_id, "after": start["cursor"]}
            )
            everything = await again.take(7)
            assert_dense(everything, start["sequence"] + 1)
            assert events(everything)[:3] == events(seen)
            assert events(everything)[3:6] == events(replayed)

            # A cursor of another project is refused.
            elsewhere = await api.create_project("Elsewhere")
            wrong = await socket.subscribe(
                PROJECT_EVENTS, {"projectId": elsewhere, "after": cursor}
            )
            assert await wrong.error_codes() == ["INVALID_CURSOR"]
            # The other feeds on this connection carry on.
            await api.rename_scene(scene["id"], "Breakwater")
            assert (await feed.next())["projectEvents"]["sequence"] == last + 5
            assert (await again.next())["projectEvents"]["sequence"] == last + 5


# -- access -------------------------------------------------------------------------------------


async def test_a_connection_must_sign_in_first(studio: StudioServer) -> None:
    async with Api(studio.base_url) as api:
        await api.sign_up()
        project_id = await api.create_project()

        socket = await Socket.connect(studio)
        await socket.init(None)
        assert await socket.close_code() == 4403

        socket = await Socket.connect(studio)
        await socket.init({"authorization": "Bearer not-a-token"})
        assert await socket.close_code() == 4403

        socket = await Socket.connect(studio)
        await socket.init({"authorization": "Basic " + api.token})
        assert await socket.close_code() == 4403

        socket = await Socket.connect(studio)
        await socket.subscribe(PROJECT_EVENTS, {"projectId": project_id})
        assert await socket.close_code() == 4401

        # With its token, the same request is answered.
        socket, feed = await follow_project(studio, api, project_id)
        async with socket:
            assert (await snapshot(feed))["sequence"] == 1


async def test_only_members_of_a_projects_team_may_follow_it(studio: StudioServer) -> None:
    async with Api(studio.base_url) as owner, Api(studio.base_url) as stranger:
        await owner.sign_up("Owner")
        await stranger.sign_up("Stranger")
        project_id = await owner.create_project()
        scene = await owner.create_scene(project_id, "Private", [{"description": "Diary"}])
        async with await Socket.open(studio, stranger.token) as socket:
            feed = await socket.subscribe(PROJECT_EVENTS, {"projectId": project_id})
            assert await feed.error_codes() == ["NOT_FOUND"]
            shot = await socket.subscribe(ITERATION_STATUS, {"shotId": scene["shots"][0]["id"]})
            assert await shot.error_codes() == ["NOT_FOUND"]
            board = await socket.subscribe(ANIMATION_STATUS, {"projectId": project_id})
            assert await board.error_codes() == ["NOT_FOUND"]
            # Their own project is fine on the same connection.
            own = await stranger.create_project()
            mine = await socket.subscribe(PROJECT_EVENTS, {"projectId": own})
            assert (await snapshot(mine))["sequence"] == 1


async def test_a_member_removed_from_the_team_loses_the_feed(studio: StudioServer) -> None:
    async with Api(studio.base_url) as owner, Api(studio.base_url) as member:
        await owner.sign_up("Owner")
        await member.sign_up("Member")
        team_id = (await owner.mutate("createTeam", {"name": "Crew"}, "team { id }"))["team"]["id"]
        invited = await owner.mutate(
            "inviteTeamMember", {"teamId": team_id, "role": "EDITOR"}, "code"
        )
        await member.mutate("acceptInvitation", {"code": invited["code"]}, "team { id }")
        project_id = await owner.create_project("Shared", team_id=team_id)
        own_project = await member.create_project("Mine")

        async with await Socket.open(studio, member.token) as socket:
            shared = await socket.subscribe(PROJECT_EVENTS, {"projectId": project_id})
            mine = await socket.subscribe(PROJECT_EVENTS, {"projectId": own_project})
            start = await snapshot(shared)
            await snapshot(mine)
            await owner.mutate(
                "updateProject", {"id": project_id, "title": "Still shared"}, "project { id }"
            )
            (event,) = events(await shared.take(1))
            assert (event["kind"], event["sequence"]) == ("PROJECT_UPDATED", start["sequence"] + 1)

            await owner.remove(member, team_id)
            assert await shared.error_codes() == ["NOT_FOUND"]
            # Their own project's feed is untouched.
            await member.mutate(
                "updateProject", {"id": own_project, "title": "Still mine"}, "project { id }"
            )
            (own_event,) = events(await mine.take(1))
            assert own_event["kind"] == "PROJECT_UPDATED"

            again = await socket.subscribe(PROJECT_EVENTS, {"projectId": project_id})
            assert await again.error_codes() == ["NOT_FOUND"]


async def test_logging_out_closes_the_connections_of_that_token_only(studio: StudioServer) -> None:
    async with Api(studio.base_url) as api:
        await api.sign_up()
        project_id = await api.create_project()
        second = (
            await api.mutate(
                "logIn", {"email": api.email, "password": "correct horse battery"}, "token"
            )
        )["token"]
        async with (
            await Socket.open(studio, api.token) as first_socket,
            await Socket.open(studio, second) as second_socket,
        ):
            leaving = await first_socket.subscribe(PROJECT_EVENTS, {"projectId": project_id})
            staying = await second_socket.subscribe(PROJECT_EVENTS, {"projectId": project_id})
            start = await snapshot(leaving)
            await snapshot(staying)

            logged_out = await api.mutate("logOut", None, "success")
            assert logged_out["success"] is True
            # The revoked token's connection closes (4403), ending its feeds.
            assert await first_socket.close_code() == 4403

            async with api.as_user(second) as still_in:
                await still_in.mutate(
                    "updateProject", {"id": project_id, "title": "After"}, "project { id }"
                )
            (event,) = events(await staying.take(1))
            assert event["kind"] == "PROJECT_UPDATED"
            # logOut's own changes are not project events: the next number follows on.
            assert event["sequence"] == start["sequence"] + 1

        # The revoked token cannot sign a connection in again.
        socket = await Socket.connect(studio)
        await socket.init({"authorization": f"Bearer {api.token}"})
        assert await socket.close_code() == 4403


async def test_cross_origin_pages_need_to_be_allowed(studio: StudioServer) -> None:
    async with Api(studio.base_url) as api:
        await api.sign_up()
        with pytest.raises(InvalidStatus) as refused:
            await Socket.connect(studio, origin="https://evil.example.com")
        assert refused.value.response.status_code == 403
        with pytest.raises(InvalidStatus) as lookalike:
            await Socket.connect(studio, origin="https://editor.example.com.evil.example.com")
        assert lookalike.value.response.status_code == 403

        for origin in (EDITOR_ORIGIN, studio.base_url, None):
            socket = await Socket.open(studio, api.token, origin=origin)
            await socket.close()


# -- several servers on one bus -----------------------------------------------------------------


@pytest.mark.parametrize("bus", ["redis", "postgres"])
async def test_changes_and_generations_on_one_instance_reach_subscribers_of_another(
    bus: str, postgres_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if bus == "redis":
        # A Redis server of this test's own, so the test never depends on another's.
        own_redis: RedisServer = request.getfixturevalue("own_redis")
        bus_url = own_redis.url
    else:
        database = make_url(postgres_url).database
        bus_url = f"postgres://postgres@{HOST}:5432/{database}"
    a, b = start_pair(tmp_path, postgres_url, bus_url)
    try:
        async with Api(b.base_url) as writer:
            await writer.sign_up()
            project_id = await writer.create_project()
            async with await Socket.open(a, writer.token) as socket:
                feed = await socket.subscribe(PROJECT_EVENTS, {"projectId": project_id})
                start = await snapshot(feed)
                scene = await writer.create_scene(
                    project_id, "Tide", [{"initialPrompt": "low tide"}, {"description": "Crabs"}]
                )
                await writer.rename_scene(scene["id"], "Ebb")
                shot_id = scene["shots"][0]["id"]

                watch = await socket.subscribe(ITERATION_STATUS, {"shotId": shot_id})
                assert (await watch.next())["iterationStatus"]["iterations"] == []
                image_ids = await writer.generate(shot_id, 6)
                await watch_generation(watch, shot_id, image_ids, 6)

                got = await until_images_done(feed, image_ids)
                assert kinds(got)[:5] == [
                    "SCENE_CREATED",
                    "SHOT_CREATED",
                    "SHOT_CREATED",
                    "PROJECT_UPDATED",
                    "SCENE_UPDATED",
                ]
                assert_dense(got, start["sequence"] + 1)
                assert kinds(got)[5:11] == ["SHOT_IMAGE_CREATED"] * 6
        # A did none of the generation work: every image was finished by webhooks to B.
        assert "/predictions" not in a.output()
        assert "/predictions" in b.output()
        assert "POST /webhooks/replicate" not in a.output()
        assert b.output().count("POST /webhooks/replicate") >= 12  # started, completed
    finally:
        a.stop()
        b.stop()


async def test_a_redis_restart_loses_no_event(
    own_redis: RedisServer, postgres_url: str, tmp_path: Path
) -> None:
    a, b = start_pair(tmp_path, postgres_url, own_redis.url)
    try:
        async with Api(b.base_url) as writer:
            await writer.sign_up()
            project_id = await writer.create_project()
            socket, feed = await follow_project(a, writer, project_id)
            async with socket:
                start = await snapshot(feed)
                scene = await writer.create_scene(project_id, "Before", [{"description": "Calm"}])
                before = await feed.take(3)
                assert_dense(before, start["sequence"] + 1)

                own_redis.kill()
                # The database is the source of truth: writes go on without the bus.
                slowest = 0.0
                for n in range(3):
                    began = time.monotonic()
                    await writer.create_shot(scene["id"], f"During {n}")
                    slowest = max(slowest, time.monotonic() - began)
                await writer.rename_scene(scene["id"], "During")
                await writer.create_scene(project_id, "While down", [])
                assert slowest < 10, f"a write took {slowest:.1f} s with Redis down"
                down_to = start["sequence"] + 3 + 5
                await assert_quiet(feed, 1.0)  # nothing can carry them to A now

                # Nothing new is written after the restart: only A's re-read of the
                # table (on reconnecting) can bring what was published into the void.
                restarted = time.monotonic()
                own_redis.start()
                during = await until_sequence(feed, down_to, within=30.0)
                caught_up = time.monotonic() - restarted

                # And live delivery works again.
                await writer.rename_scene(scene["id"], "After")
                await writer.create_shot(scene["id"], "After")
                after = await until_sequence(feed, down_to + 2, within=30.0)

            got = before + during + after
            assert_dense(got, start["sequence"] + 1)
            assert events(got)[-1]["sequence"] == down_to + 2
            assert kinds(during + after) == [
                "SHOT_CREATED",
                "SHOT_CREATED",
                "SHOT_CREATED",
                "SCENE_UPDATED",
                "SCENE_CREATED",
                "SCENE_UPDATED",
                "SHOT_CREATED",
            ]
            print(
                f"\nredis restart: writes with Redis down took at most {slowest:.2f} s; "
                f"A caught up {caught_up:.1f} s after the restart"
            )

            # Anyone resuming from the start gets the same events from any instance.
            for server in (a, b):
                socket, resumed = await follow_project(server, writer, project_id, start["cursor"])
                async with socket:
                    replayed = await resumed.take(len(got))
                assert events(replayed) == events(got)
        bus_lines = [line for line in a.output().splitlines() if "studio.bus" in line]
        assert any("lost Redis" in line for line in bus_lines), bus_lines
        assert any("reconnected to Redis" in line for line in bus_lines), bus_lines
    finally:
        a.stop()
        b.stop()


# -- a client that stops reading -------------------------------------------------------------------


def rss_megabytes(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


# Each message carries the project's planner data, so each is ~50 kB on the wire.
HEAVY_EVENTS = """
subscription($projectId: ID!) {
  projectEvents(projectId: $projectId) {
    cursor sequence kind
    node { id ... on Shot { shotNumber project { promptPlannerData } } }
  }
}
"""
PLANNER_DATA = "storyboard " * 5_000
SHOTS = 200
REORDERS = 10
MEMORY_BOUND_MB = 40.0


@pytest.fixture(scope="module")
def small_queues(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioServer]:
    cwd = tmp_path_factory.mktemp("slow")
    server = studio_server(
        cwd,
        "slow",
        DATABASE_URL=f"sqlite+aiosqlite:///{cwd / 'studio.db'}",
        SUBSCRIPTION_QUEUE_SIZE="64",
    )
    with server:
        yield server


async def test_a_client_that_stops_reading_costs_bounded_memory_and_misses_nothing(
    small_queues: StudioServer,
) -> None:
    server = small_queues
    async with Api(server.base_url) as api:
        await api.sign_up()
        project_id = (
            await api.mutate(
                "createProject",
                {"title": "Long take", "promptPlannerData": PLANNER_DATA},
                "project { id }",
            )
        )["project"]["id"]
        scene = await api.create_scene(
            project_id, "Long", [{"description": f"Frame {n}"} for n in range(SHOTS)]
        )
        order = [shot["id"] for shot in scene["shots"]]

        # A tiny receive buffer, and a client that reads nothing it is not asked for.
        raw = sockets.create_connection((HOST, server.port))
        raw.setsockopt(sockets.SOL_SOCKET, sockets.SO_RCVBUF, 4096)
        socket = await Socket.open(server, api.token, sock=raw, max_queue=1)
        async with socket:
            feed = await socket.subscribe(HEAVY_EVENTS, {"projectId": project_id})
            start = await snapshot(feed)

            pid = server.process.pid
            before = peak = rss_megabytes(pid)
            produced = time.monotonic()
            for _ in range(REORDERS):
                order.reverse()  # every shot moves: one SHOT_UPDATED each
                await api.mutate(
                    "reorderShots", {"parentId": scene["id"], "ids": order}, "scene { id }"
                )
                peak = max(peak, rss_megabytes(pid))
            produced = time.monotonic() - produced
            await asyncio.sleep(1.0)
            peak = max(peak, rss_megabytes(pid))
            total = SHOTS * REORDERS
            outgoing_mb = total * len(PLANNER_DATA) / 1e6
            assert peak - before < MEMORY_BOUND_MB, (
                f"RSS grew from {before:.0f} MB to {peak:.0f} MB while {total} events "
                f"({outgoing_mb:.0f} MB of messages) waited for a stalled client"
            )
            assert "fell behind; cut off" in server.output()

            # The server still answers others meanwhile.
            assert (await api.data("{ viewer { id } }"))["viewer"]["id"] == api.user_id

            raw.setsockopt(sockets.SOL_SOCKET, sockets.SO_RCVBUF, 1 << 20)  # now read fast
            consumed = time.monotonic()
            got = await feed.take(total, within=30)
            consumed = time.monotonic() - consumed

    assert_dense(got, start["sequence"] + 1)
    assert "fell behind; reading on from the table" in server.output()
    assert set(kinds(got)) == {"SHOT_UPDATED"}
    assert all(
        event["node"]["project"]["promptPlannerData"] == PLANNER_DATA for event in events(got)
    )
    print(
        f"\nslow consumer: {total} events made in {produced:.1f} s; server RSS {before:.0f} MB "
        f"-> peak {peak:.0f} MB while stalled ({outgoing_mb:.0f} MB of messages); "
        f"read back in {consumed:.1f} s"
    )


# -- known faults ------------------------------------------------------------------------------------


def start_on_sqlite(cwd: Path, name: str, database: str, bus_url: str) -> StudioServer:
    server = studio_server(
        cwd, name, DATABASE_URL=f"sqlite+aiosqlite:///{cwd / database}", EVENT_BUS_URL=bus_url
    )
    return server.start()


async def test_a_project_deleted_while_redis_is_down_still_ends_its_feeds(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    a = start_on_sqlite(tmp_path, "a", "studio.db", own_redis.url)
    b = start_on_sqlite(tmp_path, "b", "studio.db", own_redis.url)
    try:
        async with Api(b.base_url) as api:
            await api.sign_up()
            project_id = await api.create_project()
            socket, feed = await follow_project(a, api, project_id)
            async with socket:
                await snapshot(feed)
                own_redis.kill()
                await api.mutate("deleteProject", {"id": project_id}, "deletedId")
                own_redis.start()
                # Either PROJECT_DELETED and the end, or NOT_FOUND: anything but silence.
                message = await feed.message(within=5.0)
                payload: Any = message["payload"]
                if message.get("type") == "next" and "errors" not in payload:
                    assert payload["data"]["projectEvents"]["kind"] == "PROJECT_DELETED"
                    await feed.completed()
                else:
                    errors = payload if message.get("type") == "error" else payload["errors"]
                    assert [error["extensions"]["code"] for error in errors] == ["NOT_FOUND"]

        # The feed may end (its periodic check reads the table) before the bus has
        # logged its reconnection on a loaded machine: wait for the line, bounded.
        async def reconnected() -> bool:
            return "reconnected to Redis" in a.output()

        await eventually(reconnected, within=30.0, what="server a to reconnect to Redis")
    finally:
        a.stop()
        b.stop()


async def test_studios_sharing_a_redis_server_do_not_hear_each_other(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    ours = start_on_sqlite(tmp_path, "ours", "ours.db", own_redis.url.replace("/0", "/1"))
    theirs = start_on_sqlite(tmp_path, "theirs", "theirs.db", own_redis.url.replace("/0", "/2"))
    try:
        async with Api(ours.base_url) as api, Api(theirs.base_url) as stranger:
            await api.sign_up()
            await stranger.sign_up()
            project_id = await api.create_project()
            other_project = await stranger.create_project()
            assert project_id == other_project  # each studio's first project: same number
            socket, feed = await follow_project(ours, api, project_id)
            async with socket:
                start = await snapshot(feed)
                await stranger.create_scene(other_project, "Not yours", [])
                await assert_quiet(feed, 1.0)
                scene = await api.create_scene(project_id, "Ours", [{"description": "x"}])
                got = await feed.take(3)
        assert kinds(got) == ["SCENE_CREATED", "SHOT_CREATED", "PROJECT_UPDATED"]
        assert_dense(got, start["sequence"] + 1)
        assert events(got)[0]["node"] == {"id": scene["id"], "__typename": "Scene"}
    finally:
        ours.stop()
        theirs.stop()


async def test_server_sent_events_carry_the_same_feed(studio: StudioServer) -> None:
    async with Api(studio.base_url) as api:
        await api.sign_up()
        project_id = await api.create_project()
        query = {
            "query": "subscription($p: ID!) { projectEvents(projectId: $p) { sequence kind } }",
            "variables": {"p": project_id},
        }
        headers = {"Authorization": f"Bearer {api.token}", "Accept": "text/event-stream"}
        received: list[dict[str, Any]] = []
        async with api.http.stream("POST", "/graphql", json=query, headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.aiter_lines()
            while len(received) < 2:
                line = await asyncio.wait_for(anext(lines), WAIT)
                if line.startswith("data: "):
                    received.append(json.loads(line[len("data: ") :])["data"]["projectEvents"])
                    if len(received) == 1:
                        await api.mutate(
                            "updateProject",
                            {"id": project_id, "title": "Renamed"},
                            "project { id }",
                        )
        assert [event["kind"] for event in received] == ["SNAPSHOT", "PROJECT_UPDATED"]
        assert received[1]["sequence"] == received[0]["sequence"] + 1

        anonymous = await api.http.post(
            "/graphql", json=query, headers={"Accept": "text/event-stream"}
        )
        assert "UNAUTHENTICATED" in anonymous.text


async def test_a_subscription_without_a_stream_gets_a_clear_refusal(studio: StudioServer) -> None:
    async with Api(studio.base_url) as api:
        await api.sign_up()
        project_id = await api.create_project()
        response = await api.http.post(
            "/graphql",
            json={
                "query": "subscription($p: ID!) { projectEvents(projectId: $p) { kind } }",
                "variables": {"p": project_id},
            },
            headers={"Authorization": f"Bearer {api.token}"},
        )
        assert response.status_code == 400
        assert "WebSocket" in response.text
        assert "text/event-stream" in response.text


async def test_readiness_follows_the_event_bus(own_redis: RedisServer, tmp_path: Path) -> None:
    server = start_on_sqlite(tmp_path, "ready", "studio.db", own_redis.url)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, trust_env=False) as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"] == {"database": "ok", "eventBus": "ok"}
            own_redis.kill()
            down = await http.get("/readyz", timeout=10)
            assert down.status_code == 503, down.text
            assert down.json()["checks"] == {"database": "ok", "eventBus": "unavailable"}
            own_redis.start()
            deadline = time.monotonic() + 20
            while (await http.get("/readyz", timeout=10)).status_code != 200:
                assert time.monotonic() < deadline, "never ready again"
                await asyncio.sleep(0.2)
    finally:
        server.stop()


async def test_status_feeds_resumed_with_a_cursor_start_with_the_state(
    studio: StudioServer,
) -> None:
    async with Api(studio.base_url) as api:
        await api.sign_up()
        project_id = await api.create_project()
        scene = await api.create_scene(project_id, "Quay", [{"description": "Boats"}])
        shot_id = scene["shots"][0]["id"]
        socket, feed = await follow_project(studio, api, project_id)
        async with socket:
            cursor = (await snapshot(feed))["cursor"]
            iterations = await socket.subscribe(
                ITERATION_STATUS, {"shotId": shot_id, "after": cursor}
            )
            first = (await iterations.next())["iterationStatus"]
            assert first["cursor"] == cursor
            assert first["image"] is None
            assert first["shot"] == {"id": shot_id}
            storyboard = await socket.subscribe(
                ANIMATION_STATUS, {"projectId": project_id, "after": cursor}
            )
            state = (await storyboard.next())["animationStatus"]
            assert (state["cursor"], state["selection"]) == (cursor, None)
            await api.rename_scene(scene["id"], "Quay at dusk")  # no image or selection changes
            await assert_quiet(iterations, 1.0)
