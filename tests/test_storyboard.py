"""Numbering, cascades, iterations, master selection and the workflow status."""

from __future__ import annotations

from typing import Any

from services.database import Database
from services.storyboard.shot_images import summarize
from services.storyboard.workflow import Progress
from services.tables import GenerationStatus, StoryboardSelectionRow, WorkflowStatus
from tests.factories import Account, account, gql, iteration, mutate, mutate_ok, project, scene

OUTLINE = """
query($id: ID!) { project(id: $id) { status
  progress { totalScenes totalShots shotsWithSelections shotsWithAnimations
             selectionProgress animationProgress isSelectionComplete isAnimationComplete }
  storyboard { shot { id } selectedImage { id } }
  scenes { id sceneNumber title storyboardComplete shots { id shotNumber description } } } }
"""


async def outline(db: Database, owner: Account, project_id: str) -> dict[str, Any]:
    data = await gql(db, OUTLINE, {"id": project_id}, token=owner.token)
    result: dict[str, Any] = data["project"]
    return result


def titles(data: dict[str, Any]) -> list[tuple[int, str]]:
    return [(s["sceneNumber"], s["title"]) for s in data["scenes"]]


async def test_scenes_append_insert_delete_and_reorder_stay_dense(db: Database) -> None:
    ann = await account(db)
    pid = await project(db, ann)
    a = await scene(db, ann, pid, title="A")
    b = await scene(db, ann, pid, title="B")
    c = await scene(db, ann, pid, title="C", sceneNumber=1)
    assert (a["sceneNumber"], b["sceneNumber"], c["sceneNumber"]) == (1, 2, 1)
    assert titles(await outline(db, ann, pid)) == [(1, "C"), (2, "A"), (3, "B")]

    await scene(db, ann, pid, title="D", sceneNumber=4)
    await mutate_ok(db, "deleteScene", {"id": a["id"]}, "deletedId", token=ann.token)
    assert titles(await outline(db, ann, pid)) == [(1, "C"), (2, "B"), (3, "D")]

    current = await outline(db, ann, pid)
    reversed_ids = [s["id"] for s in reversed(current["scenes"])]
    payload = await mutate_ok(
        db,
        "reorderScenes",
        {"parentId": pid, "ids": reversed_ids},
        "project { scenes { title sceneNumber } }",
        token=ann.token,
    )
    assert [(s["sceneNumber"], s["title"]) for s in payload["project"]["scenes"]] == [
        (1, "D"),
        (2, "B"),
        (3, "C"),
    ]


async def test_shots_number_insert_delete_and_reorder(db: Database) -> None:
    ann = await account(db)
    pid = await project(db, ann)
    made = await scene(
        db,
        ann,
        pid,
        shots=[
            {"description": "wide", "shotNumber": 2},
            {"description": "close"},
            {"description": "establishing", "shotNumber": 1},
        ],
    )
    data = await outline(db, ann, pid)
    shots = data["scenes"][0]["shots"]
    assert [(s["shotNumber"], s["description"]) for s in shots] == [
        (1, "establishing"),
        (2, "wide"),
        (3, "close"),
    ]
    inserted = await mutate_ok(
        db,
        "createShot",
        {"sceneId": made["id"], "shotNumber": 2, "description": "insert"},
        "shot { shotNumber }",
        token=ann.token,
    )
    assert inserted["shot"]["shotNumber"] == 2
    await mutate_ok(db, "deleteShot", {"id": shots[0]["id"]}, "deletedId", token=ann.token)
    shots = (await outline(db, ann, pid))["scenes"][0]["shots"]
    assert [(s["shotNumber"], s["description"]) for s in shots] == [
        (1, "insert"),
        (2, "wide"),
        (3, "close"),
    ]
    order = [shots[2]["id"], shots[0]["id"], shots[1]["id"]]
    payload = await mutate_ok(
        db,
        "reorderShots",
        {"parentId": made["id"], "ids": order},
        "scene { shots { id shotNumber } }",
        token=ann.token,
    )
    assert [s["id"] for s in payload["scene"]["shots"]] == order
    assert [s["shotNumber"] for s in payload["scene"]["shots"]] == [1, 2, 3]


async def test_iterations_number_from_zero_and_track_their_parent(db: Database) -> None:
    ann = await account(db)
    pid = await project(db, ann)
    shot_id = (await scene(db, ann, pid, shots=1))["shots"][0]["id"]
    first = await iteration(db, ann, shot_id, prompt="first")
    parent = first["images"][2]["id"]
    second = await iteration(db, ann, shot_id, parent_image_id=parent, prompt="refined")
    assert first["iteration"]["iterationNumber"] == 0
    assert second["iteration"]["iterationNumber"] == 1
    assert second["iteration"]["parentImage"] == {"id": parent}

    await mutate_ok(
        db,
        "setImageFavorite",
        {"imageId": parent, "isFavorite": True},
        "image { isFavorite }",
        token=ann.token,
    )
    data = await gql(
        db,
        """query($id: ID!) { node(id: $id) { ... on Shot {
            latestIterationNumber
            iterations { iterationNumber prompt parentImage { id } images { id iterationPrompt parentImage { id } } }
            favorites: images(favoritesOnly: true) { id }
            refined: images(iterationNumber: 1) { id }
        } } }""",
        {"id": shot_id},
        token=ann.token,
    )
    shot = data["node"]
    assert shot["latestIterationNumber"] == 1
    assert [(i["iterationNumber"], i["prompt"]) for i in shot["iterations"]] == [
        (0, "first"),
        (1, "refined"),
    ]
    assert all(img["parentImage"] == {"id": parent} for img in shot["iterations"][1]["images"])
    assert all(img["iterationPrompt"] == "refined" for img in shot["iterations"][1]["images"])
    assert shot["favorites"] == [{"id": parent}]
    assert len(shot["refined"]) == 6

    # Deleting the parent keeps its refinements, now without a parent.
    await mutate_ok(db, "deleteShotImage", {"id": parent}, "deletedId", token=ann.token)
    data = await gql(
        db,
        "query($id: ID!) { node(id: $id) { ... on Shot { iterations { images { parentImage { id } } } } } }",
        {"id": shot_id},
        token=ann.token,
    )
    assert [len(i["images"]) for i in data["node"]["iterations"]] == [5, 6]
    assert all(img["parentImage"] is None for img in data["node"]["iterations"][1]["images"])


async def test_iteration_status_summarizes_its_images(db: Database) -> None:
    ann = await account(db)
    pid = await project(db, ann)
    shot_id = (await scene(db, ann, pid, shots=1))["shots"][0]["id"]
    # Imports are COMPLETE or FAILED; the summary of the other mixes is checked below.
    cases = [
        (["FAILED", "COMPLETE"], "COMPLETE"),
        (["FAILED", "FAILED"], "FAILED"),
        (["COMPLETE", "COMPLETE"], "COMPLETE"),
    ]
    for statuses, expected in cases:
        images = [
            {"variantNumber": n, "status": s, "imageUrl": f"https://example.com/{n}.png"}
            for n, s in enumerate(statuses)
        ]
        payload = await mutate_ok(
            db,
            "addShotImages",
            {"shotId": shot_id, "iterationPrompt": "p", "images": images},
            "iteration { status }",
            token=ann.token,
        )
        assert payload["iteration"]["status"] == expected, statuses
    mixes = [
        (["PENDING", "PENDING"], "PENDING"),
        (["PENDING", "COMPLETE"], "PROCESSING"),
        (["FAILED", "CANCELED"], "FAILED"),
        (["CANCELED", "CANCELED"], "CANCELED"),
    ]
    for statuses, expected in mixes:
        assert summarize([GenerationStatus(s) for s in statuses]) == expected, statuses


async def test_workflow_moves_forward_by_itself_and_never_back(db: Database) -> None:
    ann = await account(db)
    pid = await project(db, ann)
    assert (await outline(db, ann, pid))["status"] == "PROMPT_PLANNING"
    made = await scene(db, ann, pid, shots=2)
    assert (await outline(db, ann, pid))["status"] == "SCENES_SETUP"
    first, second = (s["id"] for s in made["shots"])
    one = await iteration(db, ann, first)
    data = await outline(db, ann, pid)
    assert data["status"] == "SHOT_ITERATION"
    assert data["scenes"][0]["storyboardComplete"] is False

    await mutate_ok(
        db,
        "selectMasterShot",
        {"shotId": first, "imageId": one["images"][0]["id"]},
        "selection { id }",
        token=ann.token,
    )
    data = await outline(db, ann, pid)
    assert data["status"] == "SHOT_ITERATION"
    assert data["progress"]["selectionProgress"] == 50.0

    two = await iteration(db, ann, second)
    await mutate_ok(
        db,
        "selectMasterShot",
        {"shotId": second, "imageId": two["images"][1]["id"]},
        "selection { id }",
        token=ann.token,
    )
    data = await outline(db, ann, pid)
    assert data["status"] == "STORYBOARD_FINAL"
    assert data["scenes"][0]["storyboardComplete"] is True
    assert data["progress"] == {
        "totalScenes": 1,
        "totalShots": 2,
        "shotsWithSelections": 2,
        "shotsWithAnimations": 0,
        "selectionProgress": 100.0,
        "animationProgress": 0.0,
        "isSelectionComplete": True,
        "isAnimationComplete": False,
    }
    assert [s["shot"]["id"] for s in data["storyboard"]] == [first, second]

    # A new shot without a master does not move the status back...
    await mutate_ok(db, "createShot", {"sceneId": made["id"]}, "shot { id }", token=ann.token)
    data = await outline(db, ann, pid)
    assert data["status"] == "STORYBOARD_FINAL"
    assert data["progress"]["isSelectionComplete"] is False
    # ...but a person may.
    payload = await mutate_ok(
        db,
        "updateProject",
        {"id": pid, "status": "SCENES_SETUP"},
        "project { status }",
        token=ann.token,
    )
    assert payload["project"]["status"] == "SCENES_SETUP"


async def select_first_image(db: Database, owner: Account, shot_id: str) -> None:
    images = (await iteration(db, owner, shot_id))["images"]
    await mutate_ok(
        db,
        "selectMasterShot",
        {"shotId": shot_id, "imageId": images[0]["id"]},
        "selection { id }",
        token=owner.token,
    )


async def test_a_scene_without_shots_keeps_its_project_from_completing(db: Database) -> None:
    ann = await account(db)
    pid = await project(db, ann)
    full = await scene(db, ann, pid, title="Full", shots=2)
    empty = await scene(db, ann, pid, title="Empty")
    for shot in full["shots"]:
        await select_first_image(db, ann, shot["id"])

    data = await outline(db, ann, pid)
    assert [s["storyboardComplete"] for s in data["scenes"]] == [True, False]
    # The percentages stay counts over shots; completeness asks every scene.
    assert data["progress"] == {
        "totalScenes": 2,
        "totalShots": 2,
        "shotsWithSelections": 2,
        "shotsWithAnimations": 0,
        "selectionProgress": 100.0,
        "animationProgress": 0.0,
        "isSelectionComplete": False,
        "isAnimationComplete": False,
    }
    assert data["status"] == "SHOT_ITERATION"

    # Without the empty scene, the storyboard is complete, and the status follows.
    await mutate_ok(db, "deleteScene", {"id": empty["id"]}, "deletedId", token=ann.token)
    data = await outline(db, ann, pid)
    assert data["progress"]["isSelectionComplete"] is True
    assert data["status"] == "STORYBOARD_FINAL"


async def test_a_project_that_moved_on_stays_when_an_empty_scene_arrives(db: Database) -> None:
    ann = await account(db)
    pid = await project(db, ann)
    made = await scene(db, ann, pid, shots=1)
    await select_first_image(db, ann, made["shots"][0]["id"])
    assert (await outline(db, ann, pid))["status"] == "STORYBOARD_FINAL"

    await scene(db, ann, pid, title="Later")
    # More work on the complete scene does not move the status either way.
    await select_first_image(db, ann, made["shots"][0]["id"])
    data = await outline(db, ann, pid)
    assert [s["storyboardComplete"] for s in data["scenes"]] == [True, False]
    assert data["progress"]["isSelectionComplete"] is False
    assert data["status"] == "STORYBOARD_FINAL"


def test_only_scenes_with_shots_all_done_are_complete() -> None:
    selected = StoryboardSelectionRow(project_id=1, shot_id=1, selected_image_id=1)
    animated = StoryboardSelectionRow(
        project_id=1, shot_id=2, selected_image_id=2, animation_status=GenerationStatus.COMPLETE
    )
    assert not Progress.of_scene([]).selection_complete
    assert not Progress.of_scene([]).animation_complete
    assert not Progress.of_scene([selected, None]).selection_complete
    assert Progress.of_scene([selected, animated]).selection_complete
    assert not Progress.of_scene([selected, animated]).animation_complete
    assert Progress.of_scene([animated]).animation_complete
    assert not Progress().selection_complete  # a project without scenes
    assert not Progress(total_scenes=2, scenes_without_shots=2).selection_complete
    every_shot_but_one_scene = Progress(
        total_scenes=3,
        scenes_without_shots=1,
        total_shots=4,
        shots_with_selections=4,
        shots_with_animations=4,
        has_images=True,
    )
    assert not every_shot_but_one_scene.selection_complete
    assert not every_shot_but_one_scene.animation_complete
    assert every_shot_but_one_scene.selection_percent == 100.0
    assert every_shot_but_one_scene.stage is WorkflowStatus.SHOT_ITERATION


async def test_variants_number_from_zero_to_eleven(db: Database) -> None:
    ann = await account(db)
    pid = await project(db, ann)
    shot_id = (await scene(db, ann, pid, shots=1))["shots"][0]["id"]
    ends = [
        {"variantNumber": n, "status": "COMPLETE", "imageUrl": f"https://example.com/{n}.png"}
        for n in (11, 0)
    ]
    payload = await mutate_ok(
        db,
        "addShotImages",
        {"shotId": shot_id, "iterationPrompt": "p", "images": ends},
        "iteration { iterationNumber } images { variantNumber }",
        token=ann.token,
    )
    assert payload["iteration"] == {"iterationNumber": 0}
    assert [i["variantNumber"] for i in payload["images"]] == [0, 11]

    past = {"variantNumber": 12, "status": "FAILED"}
    refused = await mutate(
        db,
        "addShotImages",
        {"shotId": shot_id, "iterationPrompt": "p", "images": [past]},
        "images { id }",
        token=ann.token,
    )
    assert [(e["code"], e["field"], e["message"]) for e in refused["userErrors"]] == [
        (
            "OUT_OF_RANGE",
            ["images", "0", "variantNumber"],
            "The variant number must be between 0 and 11; got 12.",
        )
    ]


async def test_choosing_a_master_again_replaces_it(db: Database) -> None:
    ann = await account(db)
    pid = await project(db, ann)
    shot_id = (await scene(db, ann, pid, shots=1))["shots"][0]["id"]
    images = (await iteration(db, ann, shot_id))["images"]
    first = await mutate_ok(
        db,
        "selectMasterShot",
        {"shotId": shot_id, "imageId": images[0]["id"]},
        "selection { id }",
        token=ann.token,
    )
    again = await mutate_ok(
        db,
        "selectMasterShot",
        {"shotId": shot_id, "imageId": images[3]["id"]},
        "selection { id selectedImage { id } shot { selectedImage { id } } }",
        token=ann.token,
    )
    assert again["selection"]["id"] == first["selection"]["id"]
    assert again["selection"]["selectedImage"]["id"] == images[3]["id"]
    assert again["selection"]["shot"]["selectedImage"]["id"] == images[3]["id"]
    data = await outline(db, ann, pid)
    assert len(data["storyboard"]) == 1
    # The previous master is free to delete now; the current one is not.
    await mutate_ok(db, "deleteShotImage", {"id": images[0]["id"]}, "deletedId", token=ann.token)
    refused = await mutate(
        db, "deleteShotImage", {"id": images[3]["id"]}, "deletedId", token=ann.token
    )
    assert [e["code"] for e in refused["userErrors"]] == ["IMAGE_IS_MASTER"]


async def test_deleting_cascades_down_the_hierarchy(db: Database) -> None:
    ann = await account(db)
    pid = await project(db, ann)
    made = await scene(db, ann, pid, shots=2)
    shot_id = made["shots"][0]["id"]
    images = (await iteration(db, ann, shot_id))["images"]
    selection = await mutate_ok(
        db,
        "selectMasterShot",
        {"shotId": shot_id, "imageId": images[0]["id"]},
        "selection { id }",
        token=ann.token,
    )
    doomed = [made["id"], shot_id, images[0]["id"], selection["selection"]["id"]]

    await mutate_ok(db, "deleteShot", {"id": shot_id}, "deletedId", token=ann.token)
    for node_id in doomed[1:]:
        assert (
            await gql(
                db, "query($id: ID!) { node(id: $id) { id } }", {"id": node_id}, token=ann.token
            )
        )["node"] is None
    assert [s["shotNumber"] for s in (await outline(db, ann, pid))["scenes"][0]["shots"]] == [1]

    await mutate_ok(db, "deleteScene", {"id": made["id"]}, "deletedId", token=ann.token)
    await mutate_ok(db, "deleteProject", {"id": pid}, "deletedId", token=ann.token)
    assert (
        await gql(db, "query($id: ID!) { project(id: $id) { id } }", {"id": pid}, token=ann.token)
    )["project"] is None


async def test_deleting_a_project_removes_everything_in_it(db: Database) -> None:
    ann = await account(db)
    pid = await project(db, ann)
    made = await scene(db, ann, pid, shots=1)
    images = (await iteration(db, ann, made["shots"][0]["id"]))["images"]
    await mutate_ok(
        db,
        "selectMasterShot",
        {"shotId": made["shots"][0]["id"], "imageId": images[0]["id"]},
        "selection { id }",
        token=ann.token,
    )
    await mutate_ok(db, "deleteProject", {"id": pid}, "deletedId", token=ann.token)
    for node_id in [made["id"], made["shots"][0]["id"], images[0]["id"]]:
        data = await gql(
            db, "query($id: ID!) { node(id: $id) { id } }", {"id": node_id}, token=ann.token
        )
        assert data["node"] is None


async def test_updates_change_only_what_is_given(db: Database) -> None:
    ann = await account(db)
    pid = await project(db, ann)
    before = await gql(
        db,
        "query($id: ID!) { project(id: $id) { title prompt updatedAt } }",
        {"id": pid},
        token=ann.token,
    )
    payload = await mutate_ok(
        db,
        "updateProject",
        {"id": pid, "title": "  Renamed  "},
        "project { title prompt updatedAt }",
        token=ann.token,
    )
    assert payload["project"]["title"] == "Renamed"
    assert payload["project"]["prompt"] == before["project"]["prompt"]
    assert payload["project"]["updatedAt"] > before["project"]["updatedAt"]
    cleared = await mutate_ok(
        db,
        "updateProject",
        {"id": pid, "prompt": None},
        "project { title prompt }",
        token=ann.token,
    )
    assert cleared["project"] == {"title": "Renamed", "prompt": None}


async def test_an_id_is_never_given_out_again_after_a_delete(db: Database) -> None:
    """A global ID a client kept never comes to name another object: the newest
    project, scene, shot or image deleted, the next one gets a new id (SQLite
    without AUTOINCREMENT gave the deleted one out again)."""
    from schema import ids

    ann = await account(db)

    async def delete(name: str, global_id: str) -> None:
        await mutate_ok(db, name, {"id": global_id}, "deletedId", token=ann.token)

    gone_project = await project(db, ann)
    await delete("deleteProject", gone_project)
    kept_project = await project(db, ann)
    assert ids.decode(kept_project, "Project") > ids.decode(gone_project, "Project")

    gone_scene = await scene(db, ann, kept_project, shots=1)
    gone_shot = gone_scene["shots"][0]["id"]
    await delete("deleteScene", gone_scene["id"])  # and its shot with it
    kept_scene = await scene(db, ann, kept_project, shots=2)
    assert ids.decode(kept_scene["id"], "Scene") > ids.decode(gone_scene["id"], "Scene")
    assert ids.decode(kept_scene["shots"][0]["id"], "Shot") > ids.decode(gone_shot, "Shot")

    newest_shot = kept_scene["shots"][1]["id"]
    await delete("deleteShot", newest_shot)
    later = await scene(db, ann, kept_project, title="Later", shots=1)
    shot = later["shots"][0]["id"]
    assert ids.decode(shot, "Shot") > ids.decode(newest_shot, "Shot")

    gone_image = (await iteration(db, ann, shot, count=1))["images"][0]["id"]
    await delete("deleteShotImage", gone_image)
    kept_image = (await iteration(db, ann, shot, count=1))["images"][0]["id"]
    assert ids.decode(kept_image, "ShotImage") > ids.decode(gone_image, "ShotImage")
