"""Bad input never becomes a 500 or a half-written change.

Every rejected mutation must report stable `userErrors` (code, and the field path
relative to `input`), return no object, and leave the database exactly as it was:
each case snapshots everything the signed-in user can see (the project's full tree,
the project list, the teams and their members) before and after.
"""

from __future__ import annotations

import base64
import copy
import json
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
    iteration,
    mutate,
    mutate_ok,
    project,
    scene,
    team_with,
    unique_email,
)

MASKED = "Something went wrong on our side; it has been logged."

STATE = """
query($id: ID!) {
  project(id: $id) {
    id title prompt promptPlannerData workflowVersion status createdAt updatedAt
    progress {
      totalScenes totalShots shotsWithSelections shotsWithAnimations
      selectionProgress animationProgress isSelectionComplete isAnimationComplete
    }
    storyboard { id animationStatus animatedVideoUrl updatedAt shot { id } selectedImage { id } }
    scenes {
      id sceneNumber title description updatedAt storyboardComplete
      shots {
        id shotNumber description initialPrompt updatedAt latestIterationNumber
        selectedImage { id }
        iterations {
          iterationNumber prompt status parentImage { id }
          images {
            id variantNumber status imageUrl isFavorite metadata model iterationPrompt updatedAt
          }
        }
      }
    }
  }
  projects(first: 100) { totalCount edges { node { id title status updatedAt } } }
  viewer { id email name teams { id name isPersonal members { role user { id } } } }
}
"""


Problem = tuple[str, str]
"""A user error as (code, dotted field path), "" when it names no field."""


@dataclass(frozen=True)
class World:
    ann: Account
    bob: Account  # an EDITOR of `crew`
    cal: Account  # in no team of Ann's
    crew: str
    project_id: str
    scene_ids: list[str]  # two scenes
    shot_ids: list[str]  # the three shots of the first scene
    images: list[str]  # iteration 0 of the first shot, all COMPLETE; images[0] is its master
    failed_image: str  # iteration 1 of the first shot, FAILED
    sibling_image: str  # an image of the second shot
    foreign_scene: str  # a scene of Ann's other project
    foreign_shot: str  # a shot of the second scene


def gid(type_name: str, raw: str) -> str:
    return base64.b64encode(f"{type_name}:{raw}".encode()).decode()


def problems(errors: list[dict[str, Any]]) -> list[Problem]:
    return sorted((e["code"], ".".join(e["field"] or ())) for e in errors)


def replaced(data: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A deep copy of `data` with the value at `path` (keys and list indexes) replaced."""
    result = copy.deepcopy(data)
    target: Any = result
    for key in path[:-1]:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if isinstance(target, list):
        target[int(path[-1])] = value
    else:
        target[path[-1]] = value
    return result


async def run(
    db: Database, name: str, input: dict[str, Any], *, token: str | None
) -> dict[str, Any]:
    """The payload of `name(input:)`; a top-level error (a 500 included) fails the test."""
    return await mutate(db, name, input, PAYLOAD_FIELDS[name], token=token)


async def state(db: Database, world: World) -> dict[str, Any]:
    return await gql(db, STATE, {"id": world.project_id}, token=world.ann.token)


Call = tuple[str, dict[str, Any]]
"""A mutation's name and its input."""


async def rejected_all(
    db: Database, world: World, calls: dict[str, Call]
) -> dict[str, list[Problem]]:
    """Run mutations that must each fail and return no object; check they changed nothing.

    One snapshot before and one after all of them keeps a long list of cases fast.
    """
    before = await state(db, world)
    reported: dict[str, list[Problem]] = {}
    for label, (name, input) in calls.items():
        payload = await run(db, name, input, token=world.ann.token)
        errors = payload.pop("userErrors")
        assert errors, f"{label}: {name} accepted {input!r}"
        assert all(e["message"] for e in errors), errors
        assert all(value is None for value in payload.values()), (label, payload)
        reported[label] = problems(errors)
    assert await state(db, world) == before, f"changed data although rejected: {reported}"
    return reported


async def rejected(db: Database, world: World, name: str, input: dict[str, Any]) -> list[Problem]:
    """Run one mutation that must fail; check it changed nothing and returned no object."""
    return (await rejected_all(db, world, {name: (name, input)}))[name]


@pytest.fixture(scope="module")
async def world(db: Database) -> World:
    ann = await account(db, name="Ann")
    bob = await account(db, name="Bob")
    cal = await account(db, name="Cal")
    crew = await team_with(db, ann, {"EDITOR": bob})
    project_id = await project(db, ann)
    first = await scene(db, ann, project_id, title="Arrival", shots=3)
    second = await scene(db, ann, project_id, title="Chase", shots=2)
    shot_ids = [s["id"] for s in first["shots"]]
    batch = await iteration(db, ann, shot_ids[0])
    images = [i["id"] for i in batch["images"]]
    await mutate_ok(
        db,
        "selectMasterShot",
        {"shotId": shot_ids[0], "imageId": images[0]},
        "selection { id }",
        token=ann.token,
    )
    retry = await mutate_ok(
        db,
        "addShotImages",
        {
            "shotId": shot_ids[0],
            "iterationPrompt": "retry",
            "parentImageId": images[0],
            "images": [
                {"variantNumber": 0, "status": "FAILED"},
                {"variantNumber": 1, "status": "FAILED"},
            ],
        },
        "images { id status }",
        token=ann.token,
    )
    sibling = await iteration(db, ann, shot_ids[1], count=2)
    elsewhere = await project(db, ann, title="Elsewhere")
    foreign = await scene(db, ann, elsewhere, title="Far away")
    return World(
        ann=ann,
        bob=bob,
        cal=cal,
        crew=crew,
        project_id=project_id,
        scene_ids=[first["id"], second["id"]],
        shot_ids=shot_ids,
        images=images,
        failed_image=retry["images"][0]["id"],
        sibling_image=sibling["images"][0]["id"],
        foreign_scene=foreign["id"],
        foreign_shot=second["shots"][0]["id"],
    )


# --- text: blank and overlong ---------------------------------------------------------

Build = Callable[[World], dict[str, Any]]

TITLED: dict[str, Build] = {
    "createProject": lambda w: {"title": "x"},
    "updateProject": lambda w: {"id": w.project_id, "title": "x"},
    "createScene": lambda w: {"projectId": w.project_id, "title": "x"},
    "updateScene": lambda w: {"id": w.scene_ids[0], "title": "x"},
}
BAD_TITLES = {
    "empty": ("", "BLANK"),
    "spaces": ("   ", "BLANK"),
    "whitespace": (" \t\n ", "BLANK"),
    "201": ("x" * 201, "TOO_LONG"),
    "201-padded": ("  " + "x" * 201 + "  ", "TOO_LONG"),
    "5000": ("x" * 5000, "TOO_LONG"),
}


@pytest.mark.parametrize("name", list(TITLED))
async def test_blank_and_overlong_titles(db: Database, world: World, name: str) -> None:
    calls = {
        label: (name, {**TITLED[name](world), "title": title})
        for label, (title, _) in BAD_TITLES.items()
    }
    assert await rejected_all(db, world, calls) == {
        label: [(code, "title")] for label, (_, code) in BAD_TITLES.items()
    }


LONG = "y" * 10_001
LONG_TEXT: dict[str, tuple[str, Build, str]] = {
    # label -> (mutation, input, the field at fault)
    "createProject.prompt": ("createProject", lambda w: {"title": "T", "prompt": LONG}, "prompt"),
    "createProject.promptPlannerData": (
        "createProject",
        lambda w: {"title": "T", "promptPlannerData": "z" * 200_001},
        "promptPlannerData",
    ),
    "updateProject.prompt": (
        "updateProject",
        lambda w: {"id": w.project_id, "prompt": LONG},
        "prompt",
    ),
    "createScene.description": (
        "createScene",
        lambda w: {"projectId": w.project_id, "title": "T", "description": LONG},
        "description",
    ),
    "createScene.shots.description": (
        "createScene",
        lambda w: {
            "projectId": w.project_id,
            "title": "T",
            "shots": [{"description": "fine"}, {"description": LONG}],
        },
        "shots.1.description",
    ),
    "createScene.shots.initialPrompt": (
        "createScene",
        lambda w: {"projectId": w.project_id, "title": "T", "shots": [{"initialPrompt": LONG}]},
        "shots.0.initialPrompt",
    ),
    "updateScene.description": (
        "updateScene",
        lambda w: {"id": w.scene_ids[0], "description": LONG},
        "description",
    ),
    "createShot.description": (
        "createShot",
        lambda w: {"sceneId": w.scene_ids[0], "description": LONG},
        "description",
    ),
    "createShot.initialPrompt": (
        "createShot",
        lambda w: {"sceneId": w.scene_ids[0], "initialPrompt": LONG},
        "initialPrompt",
    ),
    "updateShot.description": (
        "updateShot",
        lambda w: {"id": w.shot_ids[0], "description": LONG},
        "description",
    ),
    "updateShot.initialPrompt": (
        "updateShot",
        lambda w: {"id": w.shot_ids[0], "initialPrompt": LONG},
        "initialPrompt",
    ),
    "addShotImages.iterationPrompt": (
        "addShotImages",
        lambda w: {"shotId": w.shot_ids[2], "iterationPrompt": LONG, "images": image_drafts(2)},
        "iterationPrompt",
    ),
    "createTeam.name": ("createTeam", lambda w: {"name": "n" * 101}, "name"),
}
OTHER_BLANK_TEXT: dict[str, tuple[str, Build, str]] = {
    "addShotImages.iterationPrompt": (
        "addShotImages",
        lambda w: {"shotId": w.shot_ids[2], "iterationPrompt": "  ", "images": image_drafts(2)},
        "iterationPrompt",
    ),
    "createTeam.name": ("createTeam", lambda w: {"name": " "}, "name"),
}


@pytest.mark.parametrize(
    ("cases", "code"), [(LONG_TEXT, "TOO_LONG"), (OTHER_BLANK_TEXT, "BLANK")], ids=["long", "blank"]
)
async def test_overlong_prompts_descriptions_and_other_text(
    db: Database, world: World, cases: dict[str, tuple[str, Build, str]], code: str
) -> None:
    calls = {label: (name, build(world)) for label, (name, build, _) in cases.items()}
    assert await rejected_all(db, world, calls) == {
        label: [(code, field)] for label, (_, _, field) in cases.items()
    }


# --- IDs: malformed, unknown, of the wrong type ------------------------------------------


@dataclass(frozen=True)
class IdField:
    name: str
    build: Build
    path: tuple[str, ...]
    type_name: str
    unknown: str = "NOT_FOUND"  # the code for a well-formed ID of no row
    target: bool = True  # the ID of the object acted on, rather than of one it refers to

    @property
    def label(self) -> str:
        return f"{self.name}.{'.'.join(self.path)}"


ID_FIELDS = [
    IdField("createProject", lambda w: {"title": "T", "teamId": w.crew}, ("teamId",), "Team"),
    IdField("updateProject", lambda w: {"id": w.project_id, "title": "T"}, ("id",), "Project"),
    IdField("deleteProject", lambda w: {"id": w.project_id}, ("id",), "Project"),
    IdField(
        "createScene",
        lambda w: {"projectId": w.project_id, "title": "T"},
        ("projectId",),
        "Project",
    ),
    IdField("updateScene", lambda w: {"id": w.scene_ids[0], "title": "T"}, ("id",), "Scene"),
    IdField("deleteScene", lambda w: {"id": w.scene_ids[1]}, ("id",), "Scene"),
    IdField(
        "reorderScenes",
        lambda w: {"parentId": w.project_id, "ids": w.scene_ids[::-1]},
        ("parentId",),
        "Project",
    ),
    IdField(
        "reorderScenes",
        lambda w: {"parentId": w.project_id, "ids": w.scene_ids[::-1]},
        ("ids", "1"),
        "Scene",
        unknown="INVALID_ORDER",
    ),
    IdField("createShot", lambda w: {"sceneId": w.scene_ids[0]}, ("sceneId",), "Scene"),
    IdField("updateShot", lambda w: {"id": w.shot_ids[0], "description": "d"}, ("id",), "Shot"),
    IdField("deleteShot", lambda w: {"id": w.shot_ids[2]}, ("id",), "Shot"),
    IdField(
        "reorderShots",
        lambda w: {"parentId": w.scene_ids[0], "ids": w.shot_ids[::-1]},
        ("parentId",),
        "Scene",
    ),
    IdField(
        "reorderShots",
        lambda w: {"parentId": w.scene_ids[0], "ids": w.shot_ids[::-1]},
        ("ids", "2"),
        "Shot",
        unknown="INVALID_ORDER",
    ),
    IdField(
        "addShotImages",
        lambda w: {"shotId": w.shot_ids[0], "iterationPrompt": "p", "images": image_drafts(2)},
        ("shotId",),
        "Shot",
    ),
    IdField(
        "addShotImages",
        lambda w: {
            "shotId": w.shot_ids[0],
            "iterationPrompt": "p",
            "images": image_drafts(2),
            "parentImageId": w.images[1],
        },
        ("parentImageId",),
        "ShotImage",
        target=False,
    ),
    IdField(
        "setImageFavorite",
        lambda w: {"imageId": w.images[1], "isFavorite": True},
        ("imageId",),
        "ShotImage",
    ),
    IdField("deleteShotImage", lambda w: {"id": w.images[2]}, ("id",), "ShotImage"),
    IdField(
        "selectMasterShot",
        lambda w: {"shotId": w.shot_ids[0], "imageId": w.images[1]},
        ("shotId",),
        "Shot",
    ),
    IdField(
        "selectMasterShot",
        lambda w: {"shotId": w.shot_ids[0], "imageId": w.images[1]},
        ("imageId",),
        "ShotImage",
        target=False,
    ),
    IdField(
        "inviteTeamMember",
        lambda w: {"teamId": w.crew, "role": "EDITOR"},
        ("teamId",),
        "Team",
    ),
    IdField("revokeInvitation", lambda w: {"id": gid("Invitation", "1")}, ("id",), "Invitation"),
    IdField(
        "removeTeamMember",
        lambda w: {"teamId": w.crew, "userId": w.bob.user_id},
        ("teamId",),
        "Team",
    ),
    IdField(
        "removeTeamMember",
        lambda w: {"teamId": w.crew, "userId": w.bob.user_id},
        ("userId",),
        "User",
        target=False,
    ),
]


def _unpadded(type_name: str) -> str:
    """A base64 ID missing its padding, or cut short when it has none."""
    whole = gid(type_name, "1")
    return whole.rstrip("=") if whole.endswith("=") else whole[:-1]


MALFORMED: dict[str, Callable[[str], str]] = {
    "garbage": lambda t: "not an id!",
    "empty": lambda t: "",
    "base64-of-nonsense": lambda t: base64.b64encode(b"nonsense").decode(),
}
# IDs that nearly parse: tried on a few fields, as they all go through one decoder.
ALMOST: dict[str, Callable[[str], str]] = {
    "base64-no-number": lambda t: gid(t, "seven"),
    "base64-negative": lambda t: gid(t, "-3"),
    "base64-zero": lambda t: gid(t, "0"),
    "base64-over-bigint": lambda t: gid(t, str(2**63)),
    "base64-spaces": lambda t: gid(t, " 1"),
    "unpadded-base64": _unpadded,
    "over-200-chars": lambda t: gid(t, "1" * 200),
}


def _other_type(type_name: str, world: World) -> str:
    """A real ID of some other type than `type_name`."""
    if type_name == "Project":
        return world.scene_ids[0]
    if type_name == "User":
        return world.crew
    return world.project_id


@pytest.mark.parametrize("case", ID_FIELDS, ids=lambda case: case.label)
async def test_malformed_unknown_and_wrong_type_ids(
    db: Database, world: World, case: IdField
) -> None:
    path = ".".join(case.path)
    base = case.build(world)
    calls = {
        kind: (case.name, replaced(base, case.path, make(case.type_name)))
        for kind, make in MALFORMED.items()
    }
    calls["unknown"] = (case.name, replaced(base, case.path, gid(case.type_name, "987654321")))
    calls["wrong-type"] = (case.name, replaced(base, case.path, _other_type(case.type_name, world)))

    reported = await rejected_all(db, world, calls)

    if case.unknown == "INVALID_ORDER":
        unknown = [("INVALID_ORDER", "ids")]
    else:
        unknown = [("NOT_FOUND", path)]
        if case.target and reported["unknown"] == [("NOT_FOUND", "")]:
            # NOT_FOUND for the object acted on may leave out the field; for one it refers to, not.
            reported["unknown"] = unknown
    assert reported == {
        **{kind: [("INVALID_ID", path)] for kind in MALFORMED},
        "unknown": unknown,
        "wrong-type": [("WRONG_ID_TYPE", path)],
    }


@pytest.mark.parametrize(
    "case",
    [
        c
        for c in ID_FIELDS
        if c.label in {"updateScene.id", "reorderShots.ids.2", "selectMasterShot.imageId"}
    ],
    ids=lambda case: case.label,
)
async def test_ids_that_nearly_parse(db: Database, world: World, case: IdField) -> None:
    path = ".".join(case.path)
    base = case.build(world)
    calls = {
        kind: (case.name, replaced(base, case.path, make(case.type_name)))
        for kind, make in ALMOST.items()
    }
    # The largest key that fits a BIGINT is well-formed, and of no row.
    calls["max-bigint"] = (
        case.name,
        replaced(base, case.path, gid(case.type_name, str(2**63 - 1))),
    )
    reported = await rejected_all(db, world, calls)
    largest = reported.pop("max-bigint")
    assert reported == {kind: [("INVALID_ID", path)] for kind in ALMOST}
    assert largest in (
        [(case.unknown, "ids" if case.unknown == "INVALID_ORDER" else path)],
        [("NOT_FOUND", "")],
    )


async def test_a_scene_id_where_a_shot_id_belongs_and_the_like(db: Database, world: World) -> None:
    w = world
    calls: dict[str, Call] = {
        "shot-as-scene": ("updateScene", {"id": w.shot_ids[0], "title": "T"}),
        "scene-as-shot": ("updateShot", {"id": w.scene_ids[0], "description": "d"}),
        "scene-as-shot-for-images": (
            "addShotImages",
            {"shotId": w.scene_ids[0], "iterationPrompt": "p", "images": image_drafts(1)},
        ),
        "shot-as-image": ("selectMasterShot", {"shotId": w.shot_ids[0], "imageId": w.shot_ids[0]}),
        "image-as-parent-shot": (
            "selectMasterShot",
            {"shotId": w.images[0], "imageId": w.images[0]},
        ),
        "scene-among-shots": (
            "reorderShots",
            {"parentId": w.scene_ids[0], "ids": [w.shot_ids[0], w.scene_ids[0], w.shot_ids[2]]},
        ),
        "team-as-user": ("removeTeamMember", {"teamId": w.crew, "userId": w.crew}),
        "user-as-team": ("inviteTeamMember", {"teamId": w.ann.user_id, "role": "EDITOR"}),
    }
    assert await rejected_all(db, world, calls) == {
        "shot-as-scene": [("WRONG_ID_TYPE", "id")],
        "scene-as-shot": [("WRONG_ID_TYPE", "id")],
        "scene-as-shot-for-images": [("WRONG_ID_TYPE", "shotId")],
        "shot-as-image": [("WRONG_ID_TYPE", "imageId")],
        "image-as-parent-shot": [("WRONG_ID_TYPE", "shotId")],
        "scene-among-shots": [("WRONG_ID_TYPE", "ids.1")],
        "team-as-user": [("WRONG_ID_TYPE", "userId")],
        "user-as-team": [("WRONG_ID_TYPE", "teamId")],
    }


async def test_every_bad_id_in_a_reorder_list_is_reported(db: Database, world: World) -> None:
    input = {
        "parentId": world.scene_ids[0],
        "ids": ["junk", world.shot_ids[1], world.project_id, ""],
    }
    assert await rejected(db, world, "reorderShots", input) == [
        ("INVALID_ID", "ids.0"),
        ("INVALID_ID", "ids.3"),
        ("WRONG_ID_TYPE", "ids.2"),
    ]


# --- numbers out of range -----------------------------------------------------------------


async def test_scene_and_shot_numbers_out_of_range(db: Database, world: World) -> None:
    # The first scene has 3 shots, the project 2 scenes: n+1 is the last valid number.
    scene_numbers = {"0": 0, "-1": -1, "n+2": 4, "99": 99, "int-max": 2**31 - 1}
    shot_numbers = {"0": 0, "-1": -1, "n+2": 5, "int-min": -(2**31)}
    draft_numbers = {"0": 0, "-1": -1, "n+1": 3}
    calls: dict[str, Call] = {}
    for label, number in scene_numbers.items():
        calls[f"scene {label}"] = (
            "createScene",
            {"projectId": world.project_id, "title": "T", "sceneNumber": number},
        )
    for label, number in shot_numbers.items():
        calls[f"shot {label}"] = (
            "createShot",
            {"sceneId": world.scene_ids[0], "shotNumber": number},
        )
    for label, number in draft_numbers.items():
        calls[f"draft {label}"] = (
            "createScene",
            {
                "projectId": world.project_id,
                "title": "T",
                "shots": [{"description": "a"}, {"description": "b", "shotNumber": number}],
            },
        )
    assert await rejected_all(db, world, calls) == {
        **{f"scene {label}": [("OUT_OF_RANGE", "sceneNumber")] for label in scene_numbers},
        **{f"shot {label}": [("OUT_OF_RANGE", "shotNumber")] for label in shot_numbers},
        **{f"draft {label}": [("OUT_OF_RANGE", "shots.1.shotNumber")] for label in draft_numbers},
    }


async def test_duplicate_shot_numbers_in_a_new_scene(db: Database, world: World) -> None:
    input = {
        "projectId": world.project_id,
        "title": "T",
        "shots": [{"shotNumber": 2}, {"shotNumber": 1}, {"shotNumber": 2}],
    }
    [(code, field)] = await rejected(db, world, "createScene", input)
    assert code == "DUPLICATE_NUMBER"
    assert field in ("shots", "shots.2.shotNumber")


# --- addShotImages ----------------------------------------------------------------------------


def _images(world: World, images: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"shotId": world.shot_ids[2], "iterationPrompt": "p", "images": images, **extra}


def _draft(variant: int, **fields: Any) -> dict[str, Any]:
    return {
        "variantNumber": variant,
        "status": "COMPLETE",
        "imageUrl": f"https://images.example.com/{variant}.png",
        **fields,
    }


def _without_url(draft: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in draft.items() if key != "imageUrl"}


BAD_URLS = [
    "ftp://images.example.com/a.png",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "data:image/png;base64,AAAA",
    "/relative/a.png",
    "images.example.com/a.png",
    "https://",
    "",
    "   ",
    # Neither the standard library nor httpx can read these hosts.
    "http://[1.2.3.4]/a.png",
    "http://[::ffff:1.2.3.4.5]/a.png",
    "http://xn--zz.com/a.png",
    "http://XN--ZZ.com/a.png",
    # Ports outside 1-65535, or not written as one.
    "http://images.example.com:-1/a.png",
    "http://images.example.com:+80/a.png",
    "http://images.example.com:99999/a.png",
    "http://images.example.com:0/a.png",
]
NOT_OBJECTS: dict[str, Any] = {
    "list": [1, 2],
    "string": "seed=1",
    "int": 42,
    "bool": True,
    "float": 1.5,
}


async def test_bad_image_batches(db: Database, world: World) -> None:
    w = world
    calls: dict[str, Call] = {
        "parent of another shot": (
            "addShotImages",
            _images(w, image_drafts(2), parentImageId=w.sibling_image),
        ),
        "duplicate variant": ("addShotImages", _images(w, [_draft(1), _draft(2), _draft(2)])),
        # Variants count from 0: an iteration holds at most 0..11.
        "variant 12": ("addShotImages", _images(w, [_draft(0), _draft(12)])),
        "variant 13": ("addShotImages", _images(w, [_draft(0), _draft(13)])),
        "variant -1": ("addShotImages", _images(w, [_draft(0), _draft(-1)])),
        "no images": ("addShotImages", _images(w, [])),
        # Over the list's own limit: refused before any image is looked at.
        "13 images": ("addShotImages", _images(w, image_drafts(13))),
        "COMPLETE, null URL": ("addShotImages", _images(w, [_draft(1), _draft(2, imageUrl=None)])),
        "COMPLETE, no URL": ("addShotImages", _images(w, [_draft(1), _without_url(_draft(2))])),
        "long URL": (
            "addShotImages",
            _images(w, [_draft(1, imageUrl="https://images.example.com/" + "a" * 2048)]),
        ),
        "metadata over 16 KiB": (
            "addShotImages",
            _images(w, [_draft(1), _draft(2, metadata={"blob": "x" * 16_400})]),
        ),
    }
    for url in BAD_URLS:
        calls[f"URL {url!r}"] = ("addShotImages", _images(w, [_draft(1, imageUrl=url)]))
    for label, metadata in NOT_OBJECTS.items():
        calls[f"metadata {label}"] = ("addShotImages", _images(w, [_draft(1, metadata=metadata)]))

    assert await rejected_all(db, world, calls) == {
        "parent of another shot": [("PARENT_IMAGE_NOT_IN_SHOT", "parentImageId")],
        "duplicate variant": [("DUPLICATE_VARIANT", "images.2.variantNumber")],
        "variant 12": [("OUT_OF_RANGE", "images.1.variantNumber")],
        "variant 13": [("OUT_OF_RANGE", "images.1.variantNumber")],
        "variant -1": [("OUT_OF_RANGE", "images.1.variantNumber")],
        "no images": [("OUT_OF_RANGE", "images")],
        "13 images": [("TOO_LONG", "images")],
        "COMPLETE, null URL": [("IMAGE_URL_REQUIRED", "images.1.imageUrl")],
        "COMPLETE, no URL": [("IMAGE_URL_REQUIRED", "images.1.imageUrl")],
        "long URL": [("TOO_LONG", "images.0.imageUrl")],
        "metadata over 16 KiB": [("TOO_LONG", "images.1.metadata")],
        **{f"URL {url!r}": [("INVALID_URL", "images.0.imageUrl")] for url in BAD_URLS},
        **{f"metadata {label}": [("INVALID_JSON", "images.0.metadata")] for label in NOT_OBJECTS},
    }


# --- selections and deletes that the stored state forbids ----------------------------------


async def test_master_images_and_their_deletion(db: Database, world: World) -> None:
    w = world
    calls: dict[str, Call] = {
        "master of another shot": (
            "selectMasterShot",
            {"shotId": w.shot_ids[0], "imageId": w.sibling_image},
        ),
        "FAILED master": ("selectMasterShot", {"shotId": w.shot_ids[0], "imageId": w.failed_image}),
        "delete the master": ("deleteShotImage", {"id": w.images[0]}),
    }
    assert await rejected_all(db, world, calls) == {
        "master of another shot": [("MASTER_IMAGE_NOT_IN_SHOT", "imageId")],
        "FAILED master": [("IMAGE_NOT_READY", "imageId")],
        "delete the master": [("IMAGE_IS_MASTER", "id")],
    }


# --- reordering ----------------------------------------------------------------------------------

REORDERS: dict[str, Callable[[World], tuple[str, list[str], str]]] = {
    # name -> (parent, every child in order, a child of a sibling parent)
    "reorderScenes": lambda w: (w.project_id, w.scene_ids, w.foreign_scene),
    "reorderShots": lambda w: (w.scene_ids[0], w.shot_ids, w.foreign_shot),
}
BAD_ORDERS: dict[str, Callable[[list[str], str], list[str]]] = {
    "missing": lambda ids, foreign: ids[1:],
    "extra-foreign": lambda ids, foreign: [*ids, foreign],
    "foreign-instead": lambda ids, foreign: [*ids[:-1], foreign],
    "duplicate-extra": lambda ids, foreign: [*ids, ids[0]],
    "duplicate-instead": lambda ids, foreign: [ids[0], *ids[:-1]],
    "empty": lambda ids, foreign: [],
}


@pytest.mark.parametrize("name", list(REORDERS))
async def test_reorders_must_list_every_child_once(db: Database, world: World, name: str) -> None:
    parent, children, foreign = REORDERS[name](world)
    calls = {
        kind: (name, {"parentId": parent, "ids": reorder(children[::-1], foreign)})
        for kind, reorder in BAD_ORDERS.items()
    }
    assert await rejected_all(db, world, calls) == {
        kind: [("INVALID_ORDER", "ids")] for kind in BAD_ORDERS
    }


# --- accounts -----------------------------------------------------------------------------------


async def _log_in(db: Database, email: str, password: str) -> dict[str, Any]:
    return await run(db, "logIn", {"email": email, "password": password}, token=None)


@pytest.mark.parametrize("variant", ["upper", "padded", "same"])
async def test_sign_up_with_a_taken_email(db: Database, world: World, variant: str) -> None:
    email = {
        "upper": world.cal.email.upper(),
        "padded": f"  {world.cal.email.title()} ",
        "same": world.cal.email,
    }[variant]
    payload = await run(
        db, "signUp", {"email": email, "password": "another password", "name": "Imp"}, token=None
    )
    assert problems(payload["userErrors"]) == [("EMAIL_TAKEN", "email")]
    assert payload["token"] is None
    assert payload["user"] is None


async def test_a_taken_email_keeps_its_account(db: Database, world: World) -> None:
    await run(
        db,
        "signUp",
        {"email": world.cal.email.upper(), "password": "hijacked!!", "name": "Imp"},
        token=None,
    )
    assert (await _log_in(db, world.cal.email, "hijacked!!"))["token"] is None
    signed_in = await _log_in(db, world.cal.email, PASSWORD)
    assert signed_in["userErrors"] == []
    assert signed_in["user"]["id"] == world.cal.user_id


SIGN_UP_PROBLEMS = [
    pytest.param({"email": "not-an-email"}, [("INVALID_EMAIL", "email")], id="no-at"),
    pytest.param({"email": "ann@localhost"}, [("INVALID_EMAIL", "email")], id="no-dot"),
    pytest.param({"email": "@example.com"}, [("INVALID_EMAIL", "email")], id="no-local"),
    pytest.param({"email": "a b@example.com"}, [("INVALID_EMAIL", "email")], id="space"),
    pytest.param({"email": "  "}, [("BLANK", "email")], id="blank-email"),
    pytest.param({"email": "a" * 250 + "@example.com"}, [("TOO_LONG", "email")], id="long-email"),
    pytest.param({"password": "1234567"}, [("INVALID_PASSWORD", "password")], id="7-char-password"),
    pytest.param({"password": ""}, [("INVALID_PASSWORD", "password")], id="empty-password"),
    pytest.param({"password": "p" * 257}, [("INVALID_PASSWORD", "password")], id="long-password"),
    pytest.param({"name": " "}, [("BLANK", "name")], id="blank-name"),
    pytest.param({"name": "n" * 101}, [("TOO_LONG", "name")], id="long-name"),
    pytest.param(
        {"email": "nope", "password": "short", "name": ""},
        [("BLANK", "name"), ("INVALID_EMAIL", "email"), ("INVALID_PASSWORD", "password")],
        id="all-at-once",
    ),
]


@pytest.mark.parametrize(("fields", "expected"), SIGN_UP_PROBLEMS)
async def test_sign_up_rejects_bad_input(
    db: Database, world: World, fields: dict[str, str], expected: list[Problem]
) -> None:
    good = {"email": unique_email("new"), "password": "long enough", "name": "New"}
    input = {**good, **fields}
    payload = await run(db, "signUp", input, token=None)
    assert problems(payload["userErrors"]) == expected
    assert payload["token"] is None
    assert payload["user"] is None
    # Nothing was created: those very credentials do not log in.
    attempt = await _log_in(db, input["email"], input["password"])
    assert problems(attempt["userErrors"]) == [("INVALID_CREDENTIALS", "")]


async def test_log_in_failures_do_not_tell_which_part_was_wrong(db: Database, world: World) -> None:
    wrong_password = await _log_in(db, world.cal.email, "not the password")
    unknown_email = await _log_in(db, unique_email("ghost"), PASSWORD)
    for payload in (wrong_password, unknown_email):
        assert payload["token"] is None
        assert payload["user"] is None
        assert problems(payload["userErrors"]) == [("INVALID_CREDENTIALS", "")]
    assert wrong_password["userErrors"] == unknown_email["userErrors"]


# --- several problems at once -------------------------------------------------------------------


async def test_create_project_reports_every_bad_field(db: Database, world: World) -> None:
    input = {"title": " ", "prompt": LONG, "promptPlannerData": "z" * 200_001}
    assert await rejected(db, world, "createProject", input) == [
        ("BLANK", "title"),
        ("TOO_LONG", "prompt"),
        ("TOO_LONG", "promptPlannerData"),
    ]


async def test_create_scene_reports_every_bad_field(db: Database, world: World) -> None:
    input = {
        "projectId": world.project_id,
        "title": "x" * 201,
        "description": LONG,
        "sceneNumber": 0,
        "shots": [{"shotNumber": 3, "initialPrompt": LONG}, {"description": LONG}],
    }
    assert await rejected(db, world, "createScene", input) == [
        ("OUT_OF_RANGE", "sceneNumber"),
        ("OUT_OF_RANGE", "shots.0.shotNumber"),
        ("TOO_LONG", "description"),
        ("TOO_LONG", "shots.0.initialPrompt"),
        ("TOO_LONG", "shots.1.description"),
        ("TOO_LONG", "title"),
    ]


async def test_update_scene_reports_every_bad_field(db: Database, world: World) -> None:
    input = {"id": world.scene_ids[0], "title": "", "description": LONG}
    assert await rejected(db, world, "updateScene", input) == [
        ("BLANK", "title"),
        ("TOO_LONG", "description"),
    ]


async def test_add_shot_images_reports_every_bad_image(db: Database, world: World) -> None:
    input = _images(
        world,
        [
            _draft(12, imageUrl="ftp://x/y.png"),
            _draft(2, imageUrl=None),
            _draft(2, metadata=["not", "an", "object"]),
            _draft(4, status="PENDING", imageUrl=None, metadata={"blob": "x" * 20_000}),
        ],
        iterationPrompt="",
    )
    assert await rejected(db, world, "addShotImages", input) == [
        ("BLANK", "iterationPrompt"),
        ("DUPLICATE_VARIANT", "images.2.variantNumber"),
        ("IMAGE_URL_REQUIRED", "images.1.imageUrl"),
        ("INVALID_JSON", "images.2.metadata"),
        ("INVALID_STATUS", "images.3.status"),
        ("INVALID_URL", "images.0.imageUrl"),
        ("OUT_OF_RANGE", "images.0.variantNumber"),
        ("TOO_LONG", "images.3.metadata"),
    ]


async def test_a_bad_id_is_reported_along_with_the_other_bad_fields(
    db: Database, world: World
) -> None:
    assert await rejected(db, world, "createProject", {"title": "", "teamId": "junk"}) == [
        ("BLANK", "title"),
        ("INVALID_ID", "teamId"),
    ]


# --- no 500s from what the schema lets through ----------------------------------------------------

NUL = "before\x00after"


async def test_text_no_engine_can_store_is_a_user_error_not_a_crash(
    db: Database, world: World
) -> None:
    # PostgreSQL refuses U+0000 in text and jsonb; no engine takes an unpaired surrogate.
    w = world
    calls: dict[str, Call] = {
        "title": ("createProject", {"title": NUL}),
        "surrogate title": ("createScene", {"projectId": w.project_id, "title": "half \ud800"}),
        "description": ("updateScene", {"id": w.scene_ids[0], "description": NUL}),
        "draft prompt": (
            "createScene",
            {"projectId": w.project_id, "title": "T", "shots": [{"initialPrompt": NUL}]},
        ),
        "planner data": ("updateProject", {"id": w.project_id, "promptPlannerData": NUL}),
        "metadata": ("addShotImages", _images(w, [_draft(1, metadata={"note": NUL})])),
        "metadata key": ("addShotImages", _images(w, [_draft(1, metadata={NUL: 1})])),
        "iteration prompt": ("addShotImages", _images(w, [_draft(1)], iterationPrompt=NUL)),
        "image URL": (
            "addShotImages",
            _images(w, [_draft(1, imageUrl=f"https://images.example.com/{NUL}.png")]),
        ),
        "team name": ("createTeam", {"name": NUL}),
        "invitation code": ("acceptInvitation", {"code": f"sbi_{NUL}"}),
        "sign-up name": (
            "signUp",
            {"email": unique_email("nul"), "password": "long enough", "name": NUL},
        ),
        "sign-up email": (
            "signUp",
            {"email": f"{NUL}@example.com", "password": "long enough", "name": "N"},
        ),
        "sign-up password": (
            "signUp",
            {"email": unique_email("nul"), "password": f"long {NUL}", "name": "N"},
        ),
        "log-in email": ("logIn", {"email": f"{NUL}@example.com", "password": PASSWORD}),
    }
    assert await rejected_all(db, world, calls) == {
        "title": [("INVALID_CHARACTERS", "title")],
        "surrogate title": [("INVALID_CHARACTERS", "title")],
        "description": [("INVALID_CHARACTERS", "description")],
        "draft prompt": [("INVALID_CHARACTERS", "shots.0.initialPrompt")],
        "planner data": [("INVALID_CHARACTERS", "promptPlannerData")],
        "metadata": [("INVALID_CHARACTERS", "images.0.metadata")],
        "metadata key": [("INVALID_CHARACTERS", "images.0.metadata")],
        "iteration prompt": [("INVALID_CHARACTERS", "iterationPrompt")],
        "image URL": [("INVALID_URL", "images.0.imageUrl")],
        "team name": [("INVALID_CHARACTERS", "name")],
        "invitation code": [("INVALID_INVITATION", "code")],
        "sign-up name": [("INVALID_CHARACTERS", "name")],
        "sign-up email": [("INVALID_CHARACTERS", "email")],
        "sign-up password": [("INVALID_PASSWORD", "password")],
        "log-in email": [("INVALID_CREDENTIALS", "")],
    }


@pytest.mark.parametrize(
    ("input_type", "build"),
    [
        pytest.param(
            "CreateSceneInput",
            lambda w: {"projectId": w.project_id, "title": "T", "sceneNumber": 2**31},
            id="int-overflow",
        ),
        pytest.param(
            "UpdateProjectInput",
            lambda w: {"id": w.project_id, "status": "FINISHED"},
            id="unknown-enum",
        ),
        pytest.param(
            "AddShotImagesInput",
            lambda w: _images(w, [{"variantNumber": "one", "status": "COMPLETE"}]),
            id="string-for-int",
        ),
        pytest.param("CreateSceneInput", lambda w: {"title": "no project"}, id="missing-field"),
        pytest.param(
            "CreateSceneInput",
            lambda w: {"projectId": w.project_id, "title": "T", "colour": "red"},
            id="unknown-field",
        ),
        pytest.param(
            "CreateSceneInput",
            lambda w: {"projectId": w.project_id, "title": None},
            id="null-title",
        ),
    ],
)
async def test_inputs_the_schema_refuses_are_client_errors(
    db: Database, world: World, input_type: str, build: Build
) -> None:
    name = input_type[0].lower() + input_type[1:].removesuffix("Input")
    before = await state(db, world)
    result = await execute(
        db,
        f"mutation($i: {input_type}!) {{ {name}(input: $i) {{ userErrors {{ code }} }} }}",
        {"i": build(world)},
        token=world.ann.token,
    )
    assert result.errors
    assert all(error.message != MASKED for error in result.errors), result.errors
    assert await state(db, world) == before


# --- queries: malformed ID arguments are top-level errors, others' IDs give null -----------------


@pytest.mark.parametrize(
    ("query", "bad"),
    [
        pytest.param("project", "garbage", id="project-garbage"),
        pytest.param("project", "", id="project-empty"),
        pytest.param("project", base64.b64encode(b"nonsense").decode(), id="project-nonsense"),
        pytest.param("project", "scene", id="project-given-a-scene-id"),
        pytest.param("node", "garbage", id="node-garbage"),
        pytest.param("node", "", id="node-empty"),
        pytest.param("node", gid("Project", "0"), id="node-zero"),
        pytest.param("team", "project", id="team-given-a-project-id"),
        pytest.param("team", "garbage", id="team-garbage"),
    ],
)
async def test_malformed_id_arguments_of_queries(
    db: Database, world: World, query: str, bad: str
) -> None:
    bad = {"scene": world.scene_ids[0], "project": world.project_id}.get(bad, bad)
    result = await execute(
        db, f"query($id: ID!) {{ {query}(id: $id) {{ id }} }}", {"id": bad}, token=world.ann.token
    )
    assert result.errors is not None
    assert [e.extensions for e in result.errors] == [{"code": "BAD_USER_INPUT"}]
    assert result.data is None or result.data[query] is None


@pytest.mark.parametrize(
    "arguments",
    [
        'teamId: "garbage"',
        'after: "garbage"',
        "first: 101",
        "first: -1",
        f'teamId: "{gid("Project", "1")}"',
    ],
)
async def test_malformed_arguments_of_the_projects_list(
    db: Database, world: World, arguments: str
) -> None:
    result = await execute(
        db, f"{{ projects({arguments}) {{ totalCount }} }}", token=world.ann.token
    )
    assert result.errors is not None
    assert [e.extensions for e in result.errors] == [{"code": "BAD_USER_INPUT"}]


@pytest.mark.parametrize(
    "global_id",
    [gid("Project", "987654321"), gid("Bogus", "1"), gid("Scene", str(2**63 - 1))],
    ids=["unknown-project", "unknown-type", "unknown-scene"],
)
async def test_well_formed_ids_of_nothing_give_null(
    db: Database, world: World, global_id: str
) -> None:
    data = await gql(
        db, "query($id: ID!) { node(id: $id) { id } }", {"id": global_id}, token=world.ann.token
    )
    assert data == {"node": None}


# --- valid edge values pass ----------------------------------------------------------------------


async def test_edge_values_that_are_valid(db: Database, world: World) -> None:
    ann = world.ann
    title = "t" * 200
    made = await mutate_ok(
        db,
        "createProject",
        {"title": f"  {title}  ", "prompt": "p" * 10_000},
        "project { id title prompt }",
        token=ann.token,
    )
    assert made["project"]["title"] == title
    project_id = made["project"]["id"]
    renamed = await mutate_ok(
        db,
        "updateProject",
        {"id": project_id, "title": "u" * 200},
        "project { title }",
        token=ann.token,
    )
    assert renamed["project"]["title"] == "u" * 200
    first = await scene(db, ann, project_id, title="s" * 200, shots=2)
    updated = await mutate_ok(
        db,
        "updateScene",
        {"id": first["id"], "title": "v" * 200},
        "scene { title }",
        token=ann.token,
    )
    assert updated["scene"]["title"] == "v" * 200
    team = await mutate_ok(db, "createTeam", {"name": "n" * 100}, "team { name }", token=ann.token)
    assert team["team"]["name"] == "n" * 100

    # sceneNumber n+1 appends, 1 inserts before the rest; shotNumber likewise.
    second = await scene(db, ann, project_id, title="Second", sceneNumber=2)
    assert second["sceneNumber"] == 2
    front = await scene(db, ann, project_id, title="Front", sceneNumber=1)
    assert front["sceneNumber"] == 1
    appended = await mutate_ok(
        db,
        "createShot",
        {"sceneId": first["id"], "shotNumber": 3},
        "shot { shotNumber }",
        token=ann.token,
    )
    assert appended["shot"]["shotNumber"] == 3
    drafted = await scene(
        db,
        ann,
        project_id,
        title="Drafted",
        sceneNumber=4,
        shots=0,
    )
    assert drafted["sceneNumber"] == 4
    data = await gql(
        db,
        "query($id: ID!) { project(id: $id) { scenes { id title sceneNumber shots { shotNumber } } } }",
        {"id": project_id},
        token=ann.token,
    )
    scenes = data["project"]["scenes"]
    assert [(s["title"], s["sceneNumber"]) for s in scenes] == [
        ("Front", 1),
        ("v" * 200, 2),
        ("Second", 3),
        ("Drafted", 4),
    ]
    assert [s["shotNumber"] for s in scenes[1]["shots"]] == [1, 2, 3]

    # Twelve variants, the largest metadata, a FAILED image without a URL, numbered drafts.
    shot_id = first["shots"][0]["id"]
    images = image_drafts(12)
    padding = 16_384 - len(json.dumps({"pad": ""}, separators=(",", ":")).encode())
    images[0]["metadata"] = {"pad": "m" * padding}
    images[1] = {"variantNumber": 1, "status": "FAILED"}
    batch = await mutate_ok(
        db,
        "addShotImages",
        {"shotId": shot_id, "iterationPrompt": "i" * 10_000, "images": images},
        "images { variantNumber metadata }",
        token=ann.token,
    )
    assert [i["variantNumber"] for i in batch["images"]] == list(range(12))
    assert batch["images"][0]["metadata"] == {"pad": "m" * padding}
    numbered = await mutate_ok(
        db,
        "createScene",
        {
            "projectId": project_id,
            "title": "Numbered",
            "shots": [
                {"shotNumber": 2, "description": "second"},
                {"description": "third"},
                {"shotNumber": 1, "description": "first"},
            ],
        },
        "scene { shots { shotNumber description } }",
        token=ann.token,
    )
    assert [(s["shotNumber"], s["description"]) for s in numbered["scene"]["shots"]] == [
        (1, "first"),
        (2, "second"),
        (3, "third"),
    ]
