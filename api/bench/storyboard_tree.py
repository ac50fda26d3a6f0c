"""The side-by-side bench's data and reads: one full storyboard, the nested read of it
in our API and in PostGraphile's, and checks that an answer is whole.

`seed` builds, on a migrated database of either engine, one project of 10 scenes x 8
shots x 2 iterations of 6 images (960 images) with a master image per shot. The
account, team, project, scenes and shots come through our schema (signUp,
createProject, createScene), as a client makes them; the images and selections are
inserted directly, as the generation engine leaves them once their files are copied:
COMPLETE, imported from a URL that stays recorded (`image_url`) and stored under a key
of ours (`storage_key`, which our API serves by a signed URL). No media file is
written and no library asset made: the read touches neither.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

import migrations
from api.graphql import build_context
from api.schema import schema
from schema import ids
from schema.context import Resources
from services.database import Database
from services.media.storage import MediaLinks
from services.tables import (
    GenerationStatus,
    ProjectRow,
    ShotImageRow,
    ShotRow,
    StoryboardSelectionRow,
    WorkflowStatus,
    utcnow,
)

SCENES = 10
SHOTS_PER_SCENE = 8
ITERATIONS = 2
VARIANTS = 6
SHOTS = SCENES * SHOTS_PER_SCENE
IMAGES = SHOTS * ITERATIONS * VARIANTS

OURS = (
    "query($id: ID!) { project(id: $id) { id title status progress { totalShots "
    "shotsWithSelections selectionProgress } scenes { id sceneNumber title shots { id "
    "shotNumber selectedImage { id imageUrl } iterations { iterationNumber images { id "
    "iterationNumber variantNumber status imageUrl isFavorite } } } } } }"
)
"""Our nested storyboard read, as issue 12 gives it."""

# PostGraphile types our BIGINT keys as BigInt (a string), so `$id` is BigInt! where
# issue 12's text says Int!; the selection is the issue's.
PEER = (
    "query($id: BigInt!) { projectByRowId(rowId: $id) { id title status "
    "shotsByProjectId { totalCount } storyboardSelectionsByProjectId { totalCount } "
    "scenesByProjectId(orderBy: SCENE_NUMBER_ASC) { nodes { id sceneNumber title "
    "shotsBySceneId(orderBy: SHOT_NUMBER_ASC) { nodes { id shotNumber "
    "storyboardSelectionByShotId { shotImageBySelectedImageId { id imageUrl } } "
    "shotImagesByShotId(orderBy: [ITERATION_NUMBER_ASC, VARIANT_NUMBER_ASC]) { nodes { id "
    "iterationNumber variantNumber status imageUrl isFavorite } } } } } } } }"
)
"""PostGraphile's read of the same tree, over the same tables and in the same order."""


@dataclass(frozen=True)
class SeededProject:
    """What `seed` made: a bearer token of the project's owner, the project's global ID
    (ours) and row ID (the peer's `rowId`)."""

    token: str
    project_id: str
    row_id: int

    def ours(self) -> dict[str, Any]:
        """The JSON body of our read."""
        return {"query": OURS, "variables": {"id": self.project_id}}

    def peer(self) -> dict[str, Any]:
        """The JSON body of PostGraphile's read."""
        return {"query": PEER, "variables": {"id": str(self.row_id)}}


async def execute(db: Database, token: str | None, query: str, variables: dict[str, Any]) -> Any:
    """Run one operation through our schema in this process, signed in with `token`
    (None: signed out); its data. RuntimeError with the first error's message."""
    resources = Resources(db=db, media=MediaLinks(secrets.token_urlsafe(32), "http://bench"))
    result = await schema.execute(
        query, variables, context_value=await build_context(resources, token)
    )
    if result.errors:
        raise RuntimeError(result.errors[0].message)
    return result.data


async def seed(url: str) -> SeededProject:
    """Migrate the empty database at `url` (SQLAlchemy URL, either engine) and build the
    storyboard described in the module docstring; RuntimeError if a mutation fails."""
    db = Database(url)
    try:
        await migrations.upgrade_to_head(db)
        signed = await execute(
            db,
            None,
            "mutation($i: SignUpInput!) { signUp(input: $i) { token } }",
            {
                "i": {
                    "email": f"bench-{secrets.token_hex(4)}@example.com",
                    "password": "bench password",
                    "name": "Bench",
                }
            },
        )
        token: str = signed["signUp"]["token"]
        made = await execute(
            db,
            token,
            "mutation($i: CreateProjectInput!) { createProject(input: $i) { project { id } } }",
            {"i": {"title": "Side by side", "prompt": "A storyboard of ten scenes"}},
        )
        project_id: str = made["createProject"]["project"]["id"]
        parsed = ids.parse(project_id)
        if parsed is None:
            raise RuntimeError(f"createProject gave no project ID: {project_id!r}")
        row_id = parsed[1]
        for number in range(1, SCENES + 1):
            await execute(
                db,
                token,
                "mutation($i: CreateSceneInput!) { createScene(input: $i) { scene { id } } }",
                {
                    "i": {
                        "projectId": project_id,
                        "title": f"Scene {number}",
                        "shots": [{}] * SHOTS_PER_SCENE,
                    }
                },
            )
        async with (
            AsyncSession(db.engine, expire_on_commit=False) as session,
            session.begin(),
        ):
            await _images_and_masters(session, row_id)
        return SeededProject(token=token, project_id=project_id, row_id=row_id)
    finally:
        await db.dispose()


async def _images_and_masters(session: AsyncSession, project_id: int) -> None:
    """Insert the images and master images of the project's shots."""
    query = select(ShotRow).where(ShotRow.project_id == project_id).order_by(col(ShotRow.id))
    shots = [(_known(shot.id), shot.shot_number) for shot in (await session.exec(query)).all()]
    now = utcnow()
    images = [
        ShotImageRow(
            shot_id=shot_id,
            iteration_number=iteration,
            variant_number=variant,
            status=GenerationStatus.COMPLETE,
            image_url=f"https://images.example.com/storyboard/{shot_id}/{iteration}-{variant}.webp",
            iteration_prompt=f"Shot {number}, take {iteration + 1}",
            imported=True,
            created_at=now,
            updated_at=now,
        )
        for shot_id, number in shots
        for iteration in range(ITERATIONS)
        for variant in range(VARIANTS)
    ]
    session.add_all(images)
    await session.flush()
    masters: dict[int, int] = {}
    for image in images:
        image_id = _known(image.id)
        # The key the engine gives a copied image (services.generation.kinds / outputs).
        image.storage_key = f"images/{image.shot_id}/{image_id}-{secrets.token_hex(4)}.webp"
        if image.iteration_number == ITERATIONS - 1 and image.variant_number == 0:
            masters[image.shot_id] = image_id
    session.add_all(
        StoryboardSelectionRow(
            project_id=project_id,
            shot_id=shot_id,
            selected_image_id=masters[shot_id],
            created_at=now,
            updated_at=now,
        )
        for shot_id, _number in shots
    )
    # Every scene has shots and every shot a master image: the stage workflow.advance
    # gives such a project.
    await session.exec(
        update(ProjectRow)
        .where(col(ProjectRow.id) == project_id)
        .values(status=WorkflowStatus.STORYBOARD_FINAL, updated_at=now)
    )


def _known(row_id: int | None) -> int:
    """The ID of a row read or flushed (never None then)."""
    if row_id is None:
        raise RuntimeError("a row without an ID after it was written")
    return row_id


def check_ours(answer: Any) -> str | None:
    """What is wrong with our read's JSON answer, or None when it is whole: no errors,
    every scene, shot, iteration and image, a master per shot, signed image URLs."""
    if not isinstance(answer, dict) or answer.get("errors"):
        return f"errors: {_errors(answer)}"
    project = (answer.get("data") or {}).get("project")
    if not project:
        return "no project in the answer"
    progress = project["progress"]
    if (progress["totalShots"], progress["shotsWithSelections"]) != (SHOTS, SHOTS):
        return f"progress is {progress}, not {SHOTS} shots all selected"
    scenes = project["scenes"]
    shots = [shot for scene in scenes for shot in scene["shots"]]
    images = [i for shot in shots for it in shot["iterations"] for i in it["images"]]
    masters = [shot["selectedImage"] for shot in shots if shot["selectedImage"]]
    return _counts(len(scenes), len(shots), len(images), len(masters)) or _urls(
        [i["imageUrl"] for i in images] + [m["imageUrl"] for m in masters], signed=True
    )


def check_peer(answer: Any) -> str | None:
    """What is wrong with PostGraphile's JSON answer, or None when it is whole (as
    `check_ours`, with the recorded image URLs)."""
    if not isinstance(answer, dict) or answer.get("errors"):
        return f"errors: {_errors(answer)}"
    project = (answer.get("data") or {}).get("projectByRowId")
    if not project:
        return "no project in the answer"
    totals = (
        project["shotsByProjectId"]["totalCount"],
        project["storyboardSelectionsByProjectId"]["totalCount"],
    )
    if totals != (SHOTS, SHOTS):
        return f"totals are {totals}, not {SHOTS} shots and selections"
    scenes = project["scenesByProjectId"]["nodes"]
    shots = [shot for scene in scenes for shot in scene["shotsBySceneId"]["nodes"]]
    images = [i for shot in shots for i in shot["shotImagesByShotId"]["nodes"]]
    masters = [
        shot["storyboardSelectionByShotId"]["shotImageBySelectedImageId"]
        for shot in shots
        if shot["storyboardSelectionByShotId"]
    ]
    return _counts(len(scenes), len(shots), len(images), len(masters)) or _urls(
        [i["imageUrl"] for i in images] + [m["imageUrl"] for m in masters], signed=False
    )


def _counts(scenes: int, shots: int, images: int, masters: int) -> str | None:
    if (scenes, shots, images, masters) != (SCENES, SHOTS, IMAGES, SHOTS):
        return (
            f"{scenes} scenes, {shots} shots, {images} images, {masters} masters; "
            f"not {SCENES}, {SHOTS}, {IMAGES}, {SHOTS}"
        )
    return None


def _urls(urls: list[Any], *, signed: bool) -> str | None:
    for url in urls:
        if not isinstance(url, str) or (signed and "signature=" not in url):
            return f"an image URL is {url!r}"
    return None


def _errors(answer: Any) -> str:
    if not isinstance(answer, dict):
        return f"not a JSON object: {str(answer)[:200]}"
    return "; ".join(str(e.get("message", e)) for e in answer.get("errors") or [])[:300]
