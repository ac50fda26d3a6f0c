"""No one reads or changes what is not theirs.

A team with an OWNER, an ADMIN, an EDITOR and a VIEWER, and an outsider with only a
personal team. Members read; OWNER/ADMIN/EDITOR write; a VIEWER gets FORBIDDEN; the
outsider gets null from reads and NOT_FOUND from writes, exactly as for an ID that
exists nowhere, and their failures change nothing. Without a valid token everything
but signUp, logIn and introspection is refused: UNAUTHENTICATED without a token,
TOKEN_INVALID with one that signs no one in.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from services.database import Database
from tests.factories import (
    PASSWORD,
    PAYLOAD_FIELDS,
    Account,
    account,
    execute,
    gql,
    image_drafts,
    input_type,
    mutate,
    mutate_ok,
    project,
    scene,
    team_with,
)

STATE = """
query($project: ID!, $team: ID!) {
  project(id: $project) {
    id title prompt status updatedAt
    progress { totalScenes totalShots shotsWithSelections selectionProgress isSelectionComplete }
    storyboard { id updatedAt shot { id } selectedImage { id } }
    scenes {
      id sceneNumber title description updatedAt
      shots {
        id shotNumber description initialPrompt updatedAt latestIterationNumber
        selectedImage { id }
        iterations {
          iterationNumber prompt status parentImage { id }
          images { id variantNumber status imageUrl isFavorite updatedAt }
        }
      }
    }
  }
  team(id: $team) { id name members { role user { id email } } }
  projects(teamId: $team, first: 100) { totalCount edges { node { id title updatedAt } } }
}
"""

MEMBER_ROLES = ["OWNER", "ADMIN", "EDITOR", "VIEWER"]
ROLES = [*MEMBER_ROLES, "OUTSIDER"]


def gid(type_name: str, raw: str) -> str:
    return base64.b64encode(f"{type_name}:{raw}".encode()).decode()


def unknown(type_name: str) -> str:
    """A well-formed ID of no row."""
    return gid(type_name, "987654321")


def problems(errors: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((e["code"], ".".join(e["field"] or ())) for e in errors)


async def run(
    db: Database, name: str, input: dict[str, Any], *, token: str | None
) -> dict[str, Any]:
    """The payload of `name(input:)`; a top-level error fails the test."""
    return await mutate(db, name, input, PAYLOAD_FIELDS[name], token=token)


@dataclass(frozen=True)
class Crew:
    owner: Account
    admin: Account
    editor: Account
    viewer: Account
    outsider: Account
    newcomer: Account  # in no team of the crew's; the one the tests add
    team: str

    def as_role(self, role: str) -> Account:
        account: Account = getattr(self, role.lower())
        return account


@dataclass(frozen=True)
class Board:
    """A project with two scenes; the first has two shots; the first shot three images."""

    team: str
    project: str
    scenes: list[str]
    shots: list[str]
    images: list[str]  # images[0] is the master
    selection: str


async def make_board(db: Database, by: Account, team: str) -> Board:
    project_id = await project(db, by, team_id=team)
    first = await scene(db, by, project_id, shots=2)
    second = await scene(db, by, project_id, title="Second")
    shots = [s["id"] for s in first["shots"]]
    batch = await mutate_ok(
        db,
        "addShotImages",
        {"shotId": shots[0], "iterationPrompt": "neon", "images": image_drafts(3)},
        "images { id }",
        token=by.token,
    )
    images = [i["id"] for i in batch["images"]]
    selected = await mutate_ok(
        db,
        "selectMasterShot",
        {"shotId": shots[0], "imageId": images[0]},
        "selection { id }",
        token=by.token,
    )
    return Board(
        team=team,
        project=project_id,
        scenes=[first["id"], second["id"]],
        shots=shots,
        images=images,
        selection=selected["selection"]["id"],
    )


async def state(db: Database, crew: Crew, board: Board) -> dict[str, Any]:
    """Everything the team's owner sees of the board and the team."""
    variables = {"project": board.project, "team": board.team}
    return await gql(db, STATE, variables, token=crew.owner.token)


@pytest.fixture(scope="module")
async def crew(db: Database) -> Crew:
    owner = await account(db, name="Olive")
    admin = await account(db, name="Adam")
    editor = await account(db, name="Edie")
    viewer = await account(db, name="Vic")
    outsider = await account(db, name="Otto")
    newcomer = await account(db, name="Nell")
    team = await team_with(db, owner, {"ADMIN": admin, "EDITOR": editor, "VIEWER": viewer})
    return Crew(owner, admin, editor, viewer, outsider, newcomer, team)


@pytest.fixture(scope="module")
async def board(db: Database, crew: Crew) -> Board:
    """A board the tests only read, or fail to change."""
    return await make_board(db, crew.owner, crew.team)


@pytest.fixture(scope="module")
async def away(db: Database, crew: Crew) -> Board:
    """The outsider's own board, in their personal team."""
    return await make_board(db, crew.outsider, crew.outsider.team_id)


# --- reads ---------------------------------------------------------------------------------------

BY_ID = """
query($project: ID!, $scene: ID!, $shot: ID!, $image: ID!, $selection: ID!, $team: ID!, $user: ID!) {
  project(id: $project) { id title scenes { id } }
  team(id: $team) { id viewerRole members { role user { id } } }
  Project: node(id: $project) { __typename id }
  Scene: node(id: $scene) { __typename id }
  Shot: node(id: $shot) { __typename id }
  ShotImage: node(id: $image) { __typename id }
  StoryboardSelection: node(id: $selection) { __typename id }
  Team: node(id: $team) { __typename id }
  User: node(id: $user) { __typename id }
}
"""


def _by_id_variables(crew: Crew, board: Board) -> dict[str, str]:
    return {
        "project": board.project,
        "scene": board.scenes[0],
        "shot": board.shots[0],
        "image": board.images[0],
        "selection": board.selection,
        "team": board.team,
        "user": crew.owner.user_id,
    }


NODE_TYPES = {
    "Project": "project",
    "Scene": "scene",
    "Shot": "shot",
    "ShotImage": "image",
    "StoryboardSelection": "selection",
    "Team": "team",
    "User": "user",
}


@pytest.mark.parametrize("role", MEMBER_ROLES)
async def test_members_read_every_object_by_id(
    db: Database, crew: Crew, board: Board, role: str
) -> None:
    variables = _by_id_variables(crew, board)
    data = await gql(db, BY_ID, variables, token=crew.as_role(role).token)
    assert data["project"]["id"] == board.project
    assert [s["id"] for s in data["project"]["scenes"]] == board.scenes
    assert data["team"]["viewerRole"] == role
    members = {m["user"]["id"]: m["role"] for m in data["team"]["members"]}
    assert members == {crew.as_role(r).user_id: r for r in MEMBER_ROLES}
    for type_name, variable in NODE_TYPES.items():
        assert data[type_name] == {"__typename": type_name, "id": variables[variable]}


async def test_the_outsider_reads_nothing_by_id(db: Database, crew: Crew, board: Board) -> None:
    data = await gql(db, BY_ID, _by_id_variables(crew, board), token=crew.outsider.token)
    assert data == dict.fromkeys(["project", "team", *NODE_TYPES])


async def test_the_outsider_reads_their_own_objects(db: Database, crew: Crew, away: Board) -> None:
    variables = {**_by_id_variables(crew, away), "user": crew.outsider.user_id}
    data = await gql(db, BY_ID, variables, token=crew.outsider.token)
    for type_name, variable in NODE_TYPES.items():
        assert data[type_name] == {"__typename": type_name, "id": variables[variable]}
    # ... which no one in the crew can see.
    for role in MEMBER_ROLES:
        seen = await gql(db, BY_ID, variables, token=crew.as_role(role).token)
        assert seen == dict.fromkeys(["project", "team", *NODE_TYPES]), role


LISTS = """
query($team: ID!) {
  viewer { id teams { id viewerRole } }
  mine: projects(first: 100) { totalCount edges { node { id team { id } } } }
  theirs: projects(teamId: $team, first: 100) {
    totalCount edges { cursor node { id } } nodes { id }
    pageInfo { hasNextPage hasPreviousPage }
  }
}
"""


@pytest.mark.parametrize("role", ROLES)
async def test_lists_show_only_the_teams_one_is_in(
    db: Database, crew: Crew, board: Board, role: str
) -> None:
    actor = crew.as_role(role)
    data = await gql(db, LISTS, {"team": crew.team}, token=actor.token)
    reference = await gql(db, LISTS, {"team": crew.team}, token=crew.owner.token)
    teams = {t["id"]: t["viewerRole"] for t in data["viewer"]["teams"]}
    assert data["viewer"]["id"] == actor.user_id
    assert None not in teams.values()
    assert teams[actor.team_id] == "OWNER"  # everyone owns their personal team
    mine = data["mine"]
    assert len(mine["edges"]) == min(mine["totalCount"], 100)
    assert {e["node"]["team"]["id"] for e in mine["edges"]} <= set(teams)
    if role == "OUTSIDER":
        assert crew.team not in teams
        assert data["theirs"] == {
            "totalCount": 0,
            "edges": [],
            "nodes": [],
            "pageInfo": {"hasNextPage": False, "hasPreviousPage": False},
        }
        assert board.project not in {e["node"]["id"] for e in mine["edges"]}
    else:
        assert teams[crew.team] == role
        assert data["theirs"] == reference["theirs"]
        assert board.project in {e["node"]["id"] for e in data["theirs"]["edges"]}
        assert board.project in {e["node"]["id"] for e in mine["edges"]}


TEAMS_OF = """
query($user: ID!) { node(id: $user) { ... on User { id teams { id viewerRole isPersonal } } } }
"""


@pytest.mark.parametrize("role", MEMBER_ROLES)
async def test_a_users_teams_show_only_the_shared_ones(db: Database, crew: Crew, role: str) -> None:
    actor = crew.as_role(role)
    for other in MEMBER_ROLES:
        if other == role:
            continue
        person = crew.as_role(other)
        data = await gql(db, TEAMS_OF, {"user": person.user_id}, token=actor.token)
        teams = data["node"]["teams"]
        assert crew.team in {t["id"] for t in teams}
        assert person.team_id not in {t["id"] for t in teams}  # their personal team
        assert all(t["viewerRole"] is not None and not t["isPersonal"] for t in teams), teams
    # The outsider shares no team with anyone in the crew, and so is invisible to them...
    hidden = await gql(db, TEAMS_OF, {"user": crew.outsider.user_id}, token=actor.token)
    assert hidden == {"node": None}
    # ... as they are to the outsider.
    seen = await gql(db, TEAMS_OF, {"user": actor.user_id}, token=crew.outsider.token)
    assert seen == {"node": None}


async def test_one_sees_all_of_ones_own_teams(db: Database, crew: Crew) -> None:
    data = await gql(db, TEAMS_OF, {"user": crew.editor.user_id}, token=crew.editor.token)
    teams = {t["id"]: t for t in data["node"]["teams"]}
    assert teams[crew.editor.team_id]["isPersonal"] is True
    assert teams[crew.team]["viewerRole"] == "EDITOR"


# --- pagination ----------------------------------------------------------------------------------

PAGE = """
query($team: ID, $first: Int!, $after: String) {
  projects(teamId: $team, first: $first, after: $after) {
    totalCount
    edges { cursor node { id } }
    nodes { id }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""


async def _page(
    db: Database, token: str, team: str | None, first: int, after: str | None = None
) -> dict[str, Any]:
    data = await gql(db, PAGE, {"team": team, "first": first, "after": after}, token=token)
    page: dict[str, Any] = data["projects"]
    assert page["nodes"] == [e["node"] for e in page["edges"]]
    if page["edges"]:
        assert page["pageInfo"]["startCursor"] == page["edges"][0]["cursor"]
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
    return page


async def test_the_projects_connection_pages(db: Database, crew: Crew) -> None:
    team = await team_with(db, crew.owner, {"VIEWER": crew.viewer}, name="Pager")
    made = [await project(db, crew.owner, title=f"P{n}", team_id=team) for n in range(5)]
    newest_first = made[::-1]
    token = crew.viewer.token

    seen: list[str] = []
    after = None
    shapes: list[tuple[int, bool, bool]] = []
    while True:
        page = await _page(db, token, team, 2, after)
        assert page["totalCount"] == 5
        seen += [e["node"]["id"] for e in page["edges"]]
        info = page["pageInfo"]
        shapes.append((len(page["edges"]), info["hasNextPage"], info["hasPreviousPage"]))
        if not info["hasNextPage"]:
            break
        after = info["endCursor"]
    assert seen == newest_first
    assert shapes == [(2, True, False), (2, True, True), (1, False, True)]

    everything = await _page(db, token, team, 100)
    assert [e["node"]["id"] for e in everything["edges"]] == newest_first
    assert everything["pageInfo"]["hasNextPage"] is False
    empty = await _page(db, token, team, 0)
    assert (empty["totalCount"], empty["edges"]) == (5, [])

    # Without teamId: every team of the viewer, still consistent with totalCount.
    all_mine = await _page(db, token, None, 100)
    assert all_mine["totalCount"] == len(all_mine["edges"])
    assert set(made) <= {e["node"]["id"] for e in all_mine["edges"]}

    # The outsider gets nothing of this team, even with a cursor from it.
    outside = await _page(db, crew.outsider.token, team, 100)
    assert (outside["totalCount"], outside["edges"]) == (0, [])
    later = await _page(db, crew.outsider.token, None, 100, everything["edges"][0]["cursor"])
    assert not set(made) & {e["node"]["id"] for e in later["edges"]}


@pytest.mark.parametrize("first", [101, 1000, -1])
async def test_page_sizes_beyond_the_limit_are_bad_input(
    db: Database, crew: Crew, first: int
) -> None:
    result = await execute(db, PAGE, {"team": None, "first": first}, token=crew.owner.token)
    assert result.errors is not None
    assert [e.extensions for e in result.errors] == [{"code": "BAD_USER_INPUT"}]
    assert result.data is None


# --- writes: the role matrix -------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    name: str
    build: Callable[[Board], dict[str, Any]]
    target: str  # the input field naming the object acted on
    type_name: str


# In an order in which each one still applies after those before it on one board.
WRITES = [
    Write("createProject", lambda b: {"title": "New", "teamId": b.team}, "teamId", "Team"),
    Write(
        "updateProject",
        lambda b: {"id": b.project, "title": "Renamed", "status": "ANIMATION_COMPLETE"},
        "id",
        "Project",
    ),
    Write("updateScene", lambda b: {"id": b.scenes[0], "title": "Renamed"}, "id", "Scene"),
    Write(
        "reorderScenes",
        lambda b: {"parentId": b.project, "ids": b.scenes[::-1]},
        "parentId",
        "Project",
    ),
    Write(
        "createScene", lambda b: {"projectId": b.project, "title": "New"}, "projectId", "Project"
    ),
    Write("createShot", lambda b: {"sceneId": b.scenes[1], "shotNumber": 1}, "sceneId", "Scene"),
    Write("updateShot", lambda b: {"id": b.shots[0], "description": "changed"}, "id", "Shot"),
    Write(
        "reorderShots",
        lambda b: {"parentId": b.scenes[0], "ids": b.shots[::-1]},
        "parentId",
        "Scene",
    ),
    Write(
        "addShotImages",
        lambda b: {
            "shotId": b.shots[0],
            "iterationPrompt": "refine",
            "parentImageId": b.images[0],
            "images": image_drafts(2),
        },
        "shotId",
        "Shot",
    ),
    Write(
        "setImageFavorite",
        lambda b: {"imageId": b.images[1], "isFavorite": True},
        "imageId",
        "ShotImage",
    ),
    Write("deleteShotImage", lambda b: {"id": b.images[2]}, "id", "ShotImage"),
    Write(
        "selectMasterShot",
        lambda b: {"shotId": b.shots[0], "imageId": b.images[1]},
        "shotId",
        "Shot",
    ),
    Write("deleteShot", lambda b: {"id": b.shots[1]}, "id", "Shot"),
    Write("deleteScene", lambda b: {"id": b.scenes[1]}, "id", "Scene"),
]


@pytest.mark.parametrize("role", ["OWNER", "ADMIN", "EDITOR"])
async def test_writers_may_make_every_change(db: Database, crew: Crew, role: str) -> None:
    fresh = await make_board(db, crew.owner, crew.team)
    token = crew.as_role(role).token
    before = await state(db, crew, fresh)
    outcomes: dict[str, Any] = {}
    for write in WRITES:
        payload = await run(db, write.name, write.build(fresh), token=token)
        errors = payload.pop("userErrors")
        outcomes[write.name] = errors or ("returned", None not in payload.values())
    assert outcomes == dict.fromkeys(outcomes, ("returned", True))
    after = await state(db, crew, fresh)
    assert after["project"]["title"] == "Renamed"
    assert [s["title"] for s in after["project"]["scenes"]] == ["Renamed", "New"]
    assert after["projects"]["totalCount"] == before["projects"]["totalCount"] + 1


async def _refusals(
    db: Database, crew: Crew, board: Board, token: str
) -> dict[str, list[dict[str, Any]]]:
    """Every write on the board, each of which must fail with no object back; nothing changes."""
    before = await state(db, crew, board)
    reported: dict[str, list[dict[str, Any]]] = {}
    for write in WRITES:
        payload = await run(db, write.name, write.build(board), token=token)
        reported[write.name] = payload.pop("userErrors")
        assert reported[write.name], f"{write.name} was allowed"
        assert all(value is None for value in payload.values()), payload
    assert await state(db, crew, board) == before, f"changed data: {reported}"
    return reported


async def _refused(
    db: Database, crew: Crew, board: Board, name: str, input: dict[str, Any], token: str
) -> list[dict[str, Any]]:
    """Run a mutation that must fail: no object back, nothing changed; return its errors."""
    before = await state(db, crew, board)
    payload = await run(db, name, input, token=token)
    errors: list[dict[str, Any]] = payload.pop("userErrors")
    assert errors, f"{name} was allowed"
    assert all(value is None for value in payload.values()), payload
    assert await state(db, crew, board) == before, f"{name} changed data: {errors}"
    return errors


async def test_a_viewer_may_change_nothing(db: Database, crew: Crew, board: Board) -> None:
    reported = await _refusals(db, crew, board, crew.viewer.token)
    codes = {name: [e["code"] for e in errors] for name, errors in reported.items()}
    assert codes == {write.name: ["FORBIDDEN"] for write in WRITES}


async def test_the_outsider_cannot_tell_others_objects_from_none(
    db: Database, crew: Crew, board: Board
) -> None:
    token = crew.outsider.token
    reported = await _refusals(db, crew, board, token)
    codes = {name: [e["code"] for e in errors] for name, errors in reported.items()}
    assert codes == {write.name: ["NOT_FOUND"] for write in WRITES}
    # Code, field and message are those for an ID of nothing at all.
    nothing: dict[str, list[dict[str, Any]]] = {}
    for write in WRITES:
        input = {**write.build(board), write.target: unknown(write.type_name)}
        nothing[write.name] = (await run(db, write.name, input, token=token))["userErrors"]
    assert reported == nothing


# --- deleting a project -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("maker", "deleter", "expected"),
    [
        ("OWNER", "OWNER", None),
        ("OWNER", "ADMIN", None),
        ("EDITOR", "EDITOR", None),
        ("EDITOR", "OWNER", None),
        ("EDITOR", "ADMIN", None),
        ("OWNER", "EDITOR", "FORBIDDEN"),
        ("ADMIN", "EDITOR", "FORBIDDEN"),
        ("OWNER", "VIEWER", "FORBIDDEN"),
        ("EDITOR", "VIEWER", "FORBIDDEN"),
        ("OWNER", "OUTSIDER", "NOT_FOUND"),
    ],
)
async def test_deleting_a_project(
    db: Database, crew: Crew, maker: str, deleter: str, expected: str | None
) -> None:
    token = crew.as_role(deleter).token
    if maker == deleter == "OWNER":  # a full board, to see that everything in it goes too
        made = await make_board(db, crew.owner, crew.team)
    else:
        made_id = await project(db, crew.as_role(maker), team_id=crew.team)
        made = Board(team=crew.team, project=made_id, scenes=[], shots=[], images=[], selection="")
    if expected is None:
        payload = await run(db, "deleteProject", {"id": made.project}, token=token)
        assert payload == {"deletedId": made.project, "userErrors": []}
        query = "query($id: ID!) { project(id: $id) { id } }"
        assert await gql(db, query, {"id": made.project}, token=crew.owner.token) == {
            "project": None
        }
        if made.scenes:
            gone = await gql(db, BY_ID, _by_id_variables(crew, made), token=crew.owner.token)
            contents = ("Scene", "Shot", "ShotImage", "StoryboardSelection")
            assert [gone[t] for t in contents] == [None] * 4
        return
    errors = await _refused(db, crew, made, "deleteProject", {"id": made.project}, token)
    assert [e["code"] for e in errors] == [expected]
    if expected == "NOT_FOUND":
        nothing = await run(db, "deleteProject", {"id": unknown("Project")}, token=token)
        assert errors == nothing["userErrors"]


# --- references across teams -------------------------------------------------------------------


async def test_referring_to_another_teams_objects_is_like_referring_to_none(
    db: Database, crew: Crew, board: Board, away: Board
) -> None:
    """The outsider acts on their own objects but names the crew's: no hint that those exist."""
    cases: dict[str, tuple[str, dict[str, Any], str, str]] = {
        # label -> (mutation, input, field naming the crew's object, its type)
        "parent image": (
            "addShotImages",
            {
                "shotId": away.shots[1],
                "iterationPrompt": "steal",
                "images": image_drafts(1),
                "parentImageId": board.images[1],
            },
            "parentImageId",
            "ShotImage",
        ),
        "master image": (
            "selectMasterShot",
            {"shotId": away.shots[0], "imageId": board.images[1]},
            "imageId",
            "ShotImage",
        ),
        "scene order": (
            "reorderScenes",
            {"parentId": away.project, "ids": [away.scenes[0], board.scenes[0]]},
            "ids",
            "Scene",
        ),
        "shot order": (
            "reorderShots",
            {"parentId": away.scenes[0], "ids": [away.shots[0], board.shots[0]]},
            "ids",
            "Shot",
        ),
        "leave the team": (
            "removeTeamMember",
            {"teamId": board.team, "userId": crew.outsider.user_id},
            "teamId",
            "Team",
        ),
        "invite into the team": (
            "inviteTeamMember",
            {"teamId": board.team, "role": "OWNER"},
            "teamId",
            "Team",
        ),
    }
    token = crew.outsider.token
    before = (await state(db, crew, board), await state_of(db, crew.outsider, away))
    reported: dict[str, tuple[list[Any], list[Any]]] = {}
    for label, (name, input, field, type_name) in cases.items():
        errors = (await run(db, name, input, token=token))["userErrors"]
        if field == "ids":
            input = {**input, "ids": [input["ids"][0], unknown(type_name)]}
        else:
            input = {**input, field: unknown(type_name)}
        nothing = (await run(db, name, input, token=token))["userErrors"]
        assert errors, label
        reported[label] = (errors, nothing)
    after = (await state(db, crew, board), await state_of(db, crew.outsider, away))
    assert after == before
    assert {label: errors for label, (errors, _) in reported.items()} == {
        label: nothing for label, (_, nothing) in reported.items()
    }


async def state_of(db: Database, person: Account, board: Board) -> dict[str, Any]:
    variables = {"project": board.project, "team": board.team}
    return await gql(db, STATE, variables, token=person.token)


# --- team membership ---------------------------------------------------------------------------


async def _fresh_team(db: Database, crew: Crew, *, owners: int = 1) -> str:
    members: dict[str, Account] = {
        "ADMIN": crew.admin,
        "EDITOR": crew.editor,
        "VIEWER": crew.viewer,
    }
    if owners == 2:
        members = {"OWNER": crew.admin, "EDITOR": crew.editor, "VIEWER": crew.viewer}
    return await team_with(db, crew.owner, members, name=f"Team {secrets.token_hex(2)}")


MEMBERS = "query($team: ID!) { team(id: $team) { members { role user { id } } } }"


async def _members(db: Database, crew: Crew, team: str) -> dict[str, str]:
    data = await gql(db, MEMBERS, {"team": team}, token=crew.owner.token)
    return {m["user"]["id"]: m["role"] for m in data["team"]["members"]}


@pytest.mark.parametrize(
    ("actor", "role", "expected"),
    [
        ("OWNER", "VIEWER", None),
        ("OWNER", "EDITOR", None),
        ("OWNER", "ADMIN", None),
        ("OWNER", "OWNER", None),
        ("ADMIN", "VIEWER", None),
        ("ADMIN", "ADMIN", None),
        ("ADMIN", "OWNER", ("FORBIDDEN", "role")),
        ("EDITOR", "VIEWER", ("FORBIDDEN", "")),
        ("VIEWER", "VIEWER", ("FORBIDDEN", "")),
        ("OUTSIDER", "VIEWER", ("NOT_FOUND", "")),
    ],
)
async def test_inviting_a_member(
    db: Database, crew: Crew, actor: str, role: str, expected: tuple[str, str] | None
) -> None:
    team = await _fresh_team(db, crew)
    before = await _members(db, crew, team)
    input = {"teamId": team, "role": role}
    payload = await run(db, "inviteTeamMember", input, token=crew.as_role(actor).token)
    if expected is None:
        assert payload["userErrors"] == []
        assert payload["code"].startswith("sbi_")
        # Inviting adds no one: only accepting the code does.
        assert await _members(db, crew, team) == before
        accepted = await run(
            db, "acceptInvitation", {"code": payload["code"]}, token=crew.newcomer.token
        )
        assert accepted["userErrors"] == []
        assert accepted["team"] == {"id": team}
        assert await _members(db, crew, team) == {**before, crew.newcomer.user_id: role}
        data = await gql(db, MEMBERS, {"team": team}, token=crew.newcomer.token)
        assert data["team"] is not None  # the new member reads the team at once
        return
    [error] = payload["userErrors"]
    code, field = expected
    assert error["code"] == code
    if field:
        assert error["field"] == [field]
    assert payload["invitation"] is None
    assert payload["code"] is None
    assert await _members(db, crew, team) == before


async def test_membership_conflicts(db: Database, crew: Crew) -> None:
    team = await _fresh_team(db, crew)
    before = await _members(db, crew, team)
    owner = crew.owner.token
    code = (await run(db, "inviteTeamMember", {"teamId": team, "role": "VIEWER"}, token=owner))[
        "code"
    ]
    cases = {
        "already a member": ("acceptInvitation", {"code": code}),
        "no such invitation": ("acceptInvitation", {"code": "sbi_" + secrets.token_urlsafe(32)}),
        "personal team": (
            "inviteTeamMember",
            {"teamId": crew.owner.team_id, "role": "VIEWER"},
        ),
        "not a member": ("removeTeamMember", {"teamId": team, "userId": crew.outsider.user_id}),
        "last owner leaves": ("removeTeamMember", {"teamId": team, "userId": crew.owner.user_id}),
        "leave own personal team": (
            "removeTeamMember",
            {"teamId": crew.owner.team_id, "userId": crew.owner.user_id},
        ),
    }
    reported = {
        label: problems((await run(db, name, input, token=owner))["userErrors"])
        for label, (name, input) in cases.items()
    }
    assert reported == {
        "already a member": [("ALREADY_MEMBER", "code")],
        "no such invitation": [("INVALID_INVITATION", "code")],
        "personal team": [("PERSONAL_TEAM", "teamId")],
        "not a member": [("NOT_FOUND", "userId")],
        "last owner leaves": [("LAST_OWNER", "userId")],
        "leave own personal team": [("LAST_OWNER", "userId")],
    }
    assert await _members(db, crew, team) == before
    personal = await _members(db, crew, crew.owner.team_id)
    assert personal == {crew.owner.user_id: "OWNER"}


@pytest.mark.parametrize(
    ("actor", "target", "expected"),
    [
        ("OWNER", "ADMIN", None),
        ("OWNER", "EDITOR", None),
        ("OWNER", "VIEWER", None),
        ("ADMIN", "EDITOR", None),
        ("ADMIN", "VIEWER", None),
        ("ADMIN", "ADMIN", None),  # leaving
        ("EDITOR", "EDITOR", None),  # leaving
        ("VIEWER", "VIEWER", None),  # leaving
        ("ADMIN", "OWNER", "FORBIDDEN"),
        ("EDITOR", "VIEWER", "FORBIDDEN"),
        ("EDITOR", "ADMIN", "FORBIDDEN"),
        ("VIEWER", "EDITOR", "FORBIDDEN"),
        ("OUTSIDER", "EDITOR", "NOT_FOUND"),
        ("OUTSIDER", "OWNER", "NOT_FOUND"),
    ],
)
async def test_removing_a_member(
    db: Database, crew: Crew, actor: str, target: str, expected: str | None
) -> None:
    team = await _fresh_team(db, crew)
    before = await _members(db, crew, team)
    person = crew.as_role(target)
    payload = await run(
        db,
        "removeTeamMember",
        {"teamId": team, "userId": person.user_id},
        token=crew.as_role(actor).token,
    )
    if expected is None:
        assert payload["userErrors"] == []
        after = await _members(db, crew, team)
        assert after == {user: role for user, role in before.items() if user != person.user_id}
        return
    assert [e["code"] for e in payload["userErrors"]] == [expected]
    assert payload["team"] is None
    assert await _members(db, crew, team) == before


async def test_owners_remove_owners_but_keep_one(db: Database, crew: Crew) -> None:
    team = await _fresh_team(db, crew, owners=2)  # the owner, and the admin as a second OWNER
    removed = await run(
        db,
        "removeTeamMember",
        {"teamId": team, "userId": crew.owner.user_id},
        token=crew.admin.token,
    )
    assert removed["userErrors"] == []
    alone = await run(
        db,
        "removeTeamMember",
        {"teamId": team, "userId": crew.admin.user_id},
        token=crew.admin.token,
    )
    assert problems(alone["userErrors"]) == [("LAST_OWNER", "userId")]
    data = await gql(db, MEMBERS, {"team": team}, token=crew.admin.token)
    roles = {m["user"]["id"]: m["role"] for m in data["team"]["members"]}
    assert roles == {
        crew.admin.user_id: "OWNER",
        crew.editor.user_id: "EDITOR",
        crew.viewer.user_id: "VIEWER",
    }
    # The removed owner is now an outsider to the team.
    gone = await gql(db, MEMBERS, {"team": team}, token=crew.owner.token)
    assert gone == {"team": None}


async def test_removal_takes_access_away_at_once(db: Database, crew: Crew) -> None:
    team = await _fresh_team(db, crew)
    made = await make_board(db, crew.owner, team)
    editor = crew.editor.token
    variables = {**_by_id_variables(crew, made), "team": team}
    assert (await gql(db, BY_ID, variables, token=editor))["project"] is not None

    removed = await run(
        db,
        "removeTeamMember",
        {"teamId": team, "userId": crew.editor.user_id},
        token=crew.owner.token,
    )
    assert removed["userErrors"] == []

    # The same token, the very next request: nothing of the team is visible or writable.
    after = await gql(db, BY_ID, variables, token=editor)
    assert after.pop("User") is not None  # the owner: they still share the crew's team
    assert after == dict.fromkeys(["project", "team", *NODE_TYPES.keys() - {"User"}])
    lists = await gql(db, LISTS, {"team": team}, token=editor)
    assert team not in {t["id"] for t in lists["viewer"]["teams"]}
    assert lists["theirs"]["totalCount"] == 0
    assert made.project not in {e["node"]["id"] for e in lists["mine"]["edges"]}
    before = await state_of(db, crew.owner, made)
    for write in WRITES:
        payload = await run(db, write.name, write.build(made), token=editor)
        assert [e["code"] for e in payload["userErrors"]] == ["NOT_FOUND"], write.name
    assert await state_of(db, crew.owner, made) == before


# --- authentication ------------------------------------------------------------------------------

ANONYMOUS: dict[str, tuple[str, Callable[[Crew, Board], dict[str, Any]]]] = {
    # label -> (operation, its variables)
    "viewer": ("{ viewer { id } }", lambda c, b: {}),
    "node": ("query($id: ID!) { node(id: $id) { id } }", lambda c, b: {"id": b.project}),
    "project": ("query($id: ID!) { project(id: $id) { id } }", lambda c, b: {"id": b.project}),
    "team": ("query($id: ID!) { team(id: $id) { id } }", lambda c, b: {"id": b.team}),
    "projects": ("{ projects { totalCount } }", lambda c, b: {}),
    "logOut": ("mutation { logOut { success } }", lambda c, b: {}),
    "createTeam": ("createTeam", lambda c, b: {"name": "Mine now"}),
    "inviteTeamMember": (
        "inviteTeamMember",
        lambda c, b: {"teamId": b.team, "role": "OWNER"},
    ),
    "acceptInvitation": (
        "acceptInvitation",
        lambda c, b: {"code": "sbi_" + secrets.token_urlsafe(32)},
    ),
    "revokeInvitation": ("revokeInvitation", lambda c, b: {"id": gid("Invitation", "1")}),
    "removeTeamMember": (
        "removeTeamMember",
        lambda c, b: {"teamId": b.team, "userId": c.owner.user_id},
    ),
}


def _input_of(write: Write) -> Callable[[Crew, Board], dict[str, Any]]:
    def values(crew: Crew, board: Board) -> dict[str, Any]:
        return write.build(board)

    return values


for _write in [*WRITES, Write("deleteProject", lambda b: {"id": b.project}, "id", "Project")]:
    ANONYMOUS[_write.name] = (_write.name, _input_of(_write))


def _operation(text: str) -> str:
    """A mutation name becomes the operation running it with `$input`."""
    if text in PAYLOAD_FIELDS:
        return f"mutation($input: {input_type(text)}!) {{ {text}(input: $input) {{ userErrors {{ code }} }} }}"
    return text


def _variables(text: str, values: dict[str, Any]) -> dict[str, Any]:
    return {"input": values} if text in PAYLOAD_FIELDS else values


def _unauthenticated(errors: Any, code: str = "UNAUTHENTICATED") -> bool:
    return errors is not None and len(errors) == 1 and errors[0].extensions == {"code": code}


@pytest.fixture(scope="module")
async def revoked_token(db: Database, crew: Crew) -> str:
    signed_in = await _log_in(db, crew.viewer.email)
    token: str = signed_in["token"]
    logged_out = await gql(db, "mutation { logOut { success userErrors { code } } }", token=token)
    assert logged_out["logOut"] == {"success": True, "userErrors": []}
    return token


async def _log_in(db: Database, email: str, password: str = PASSWORD) -> dict[str, Any]:
    data = await gql(
        db,
        "mutation($input: LogInInput!) { logIn(input: $input) { token user { id } "
        "userErrors { code field message } } }",
        {"input": {"email": email, "password": password}},
    )
    payload: dict[str, Any] = data["logIn"]
    return payload


BAD_TOKENS: dict[str, Callable[[str], str | None]] = {
    "none": lambda revoked: None,
    "garbage": lambda revoked: "garbage",
    "unknown": lambda revoked: "sbs_" + secrets.token_urlsafe(32),
    "overlong": lambda revoked: "sbs_" + "a" * 200,
    "lone surrogate": lambda revoked: "sbs_\ud800" + "a" * 42,  # JSON can carry one
    "not url-safe": lambda revoked: "sbs_" + "é" * 43,
    "revoked": lambda revoked: revoked,
}


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
async def test_without_a_valid_token_everything_is_unauthenticated(
    db: Database, crew: Crew, board: Board, revoked_token: str, kind: str
) -> None:
    token = BAD_TOKENS[kind](revoked_token)
    # No token: sign in first. A token that signs no one in: sign in again.
    code = "UNAUTHENTICATED" if token is None else "TOKEN_INVALID"
    before = await state(db, crew, board)
    outcomes: dict[str, Any] = {}
    for label, (text, values) in ANONYMOUS.items():
        result = await execute(
            db, _operation(text), _variables(text, values(crew, board)), token=token
        )
        outcomes[label] = code if _unauthenticated(result.errors, code) else result
        assert result.data is None or all(v is None for v in result.data.values()), result.data
    assert outcomes == dict.fromkeys(ANONYMOUS, code)
    assert await state(db, crew, board) == before
    # The message says what to do.
    result = await execute(db, "{ viewer { id } }", None, token=token)
    [error] = result.errors or []
    expected = "Sign in first" if token is None else "sign in again"
    assert expected in error.message, error.message


async def test_without_a_token_even_malformed_input_is_unauthenticated(db: Database) -> None:
    operations = {
        "project": ('{ project(id: "junk") { id } }', None),
        "node": ('{ node(id: "") { id } }', None),
        "team": ('{ team(id: "junk") { id } }', None),
        "projects": ("{ projects(first: 1000) { totalCount } }", None),
        "updateProject": ("updateProject", {"id": "junk"}),
        "createScene": ("createScene", {"projectId": "junk", "title": ""}),
        "reorderShots": ("reorderShots", {"parentId": "junk", "ids": ["junk"]}),
        "inviteTeamMember": ("inviteTeamMember", {"teamId": "junk"}),
        "acceptInvitation": ("acceptInvitation", {"code": ""}),
        "revokeInvitation": ("revokeInvitation", {"id": "junk"}),
    }
    outcomes: dict[str, Any] = {}
    for label, (text, values) in operations.items():
        variables = None if values is None else _variables(text, values)
        result = await execute(db, _operation(text), variables, token=None)
        outcomes[label] = (
            "UNAUTHENTICATED"
            if _unauthenticated(result.errors)
            else (result.data, [e.formatted for e in result.errors or []])
        )
    assert outcomes == dict.fromkeys(operations, "UNAUTHENTICATED")


async def test_sign_up_log_in_and_introspection_need_no_token(
    db: Database, crew: Crew, revoked_token: str
) -> None:
    introspection = await execute(
        db, '{ __schema { queryType { name } } __type(name: "Project") { name } __typename }'
    )
    assert introspection.errors is None
    assert introspection.data == {
        "__schema": {"queryType": {"name": "Query"}},
        "__type": {"name": "Project"},
        "__typename": "Query",
    }
    # A stale token does not stand in the way of getting a new one.
    signed_up = await gql(
        db,
        "mutation($input: SignUpInput!) { signUp(input: $input) { token userErrors { code } } }",
        {
            "input": {
                "email": f"fresh-{secrets.token_hex(4)}@example.com",
                "password": PASSWORD,
                "name": "Fay",
            }
        },
        token=revoked_token,
    )
    assert signed_up["signUp"]["userErrors"] == []
    assert signed_up["signUp"]["token"]
    logged_in = await gql(
        db,
        "mutation($input: LogInInput!) { logIn(input: $input) { token user { id } } }",
        {"input": {"email": crew.viewer.email, "password": PASSWORD}},
        token="garbage",
    )
    assert logged_in["logIn"]["user"]["id"] == crew.viewer.user_id
    fresh = logged_in["logIn"]["token"]
    assert fresh != revoked_token
    viewer = await gql(db, "{ viewer { id } }", token=fresh)
    assert viewer == {"viewer": {"id": crew.viewer.user_id}}
