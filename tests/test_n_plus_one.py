"""The nested storyboard query costs the same number of statements at any size."""

from __future__ import annotations

from typing import Any

from api.graphql import build_context
from api.schema import schema
from services.database import Database
from tests import factories
from tests.factories import Account, account, iteration, mutate_ok, project, resources, scene

NESTED = """
query($id: ID!) {
  project(id: $id) {
    title status owner { name } team { name viewerRole }
    progress { totalShots shotsWithSelections selectionProgress }
    storyboard { id shot { shotNumber } selectedImage { id } }
    scenes {
      sceneNumber title storyboardComplete
      shots {
        shotNumber latestIterationNumber
        selectedImage { id imageUrl }
        storyboardSelection { id animationStatus }
        iterations {
          iterationNumber prompt status parentImage { id }
          images { id variantNumber status imageUrl isFavorite metadata parentImage { id } }
        }
      }
    }
  }
}
"""


async def build(db: Database, owner: Account, scenes: int, shots: int, images: int) -> str:
    project_id = await project(db, owner, title=f"{scenes}x{shots}x{images}")
    for _ in range(scenes):
        made = await scene(db, owner, project_id, shots=shots)
        for shot in made["shots"]:
            first = await iteration(db, owner, shot["id"], count=images)
            # A refinement of the first image, so parent links are loaded too.
            await iteration(
                db, owner, shot["id"], count=1, parent_image_id=first["images"][0]["id"]
            )
            await mutate_ok(
                db,
                "selectMasterShot",
                {"shotId": shot["id"], "imageId": first["images"][0]["id"]},
                "selection { id }",
                token=owner.token,
            )
    return project_id


async def statements_for(
    db: Database, owner: Account, project_id: str
) -> tuple[int, dict[str, Any]]:
    """The statements the query sends, counted on an engine of its own: the shared
    `db` may be running other tests' background work (copies, the engine's sweeps)."""
    reader = Database(db.url.render_as_string(hide_password=False))
    try:
        # Once uncounted: a new engine's first connection asks the server about itself.
        async with reader.session() as session:
            await session.connection()
        context = await build_context(resources(reader), owner.token)
        with factories.statements(reader) as statements:
            result = await schema.execute(NESTED, {"id": project_id}, context_value=context)
    finally:
        await reader.dispose()
    assert result.errors is None, result.errors
    assert result.data is not None
    return len(statements), result.data


async def test_nested_query_statement_count_does_not_grow(db: Database) -> None:
    owner = await account(db)
    small = await build(db, owner, scenes=1, shots=1, images=1)
    large = await build(db, owner, scenes=10, shots=8, images=12)

    small_count, small_data = await statements_for(db, owner, small)
    large_count, large_data = await statements_for(db, owner, large)

    large_scenes = large_data["project"]["scenes"]
    assert len(large_scenes) == 10
    assert all(len(s["shots"]) == 8 for s in large_scenes)
    assert all(
        len(shot["iterations"][0]["images"]) == 12 for s in large_scenes for shot in s["shots"]
    )
    assert large_data["project"]["progress"]["selectionProgress"] == 100.0
    assert small_data["project"]["progress"]["totalShots"] == 1
    print(f"\nstatements: 1x1x1 -> {small_count}, 10x8x12 -> {large_count}")
    assert small_count == large_count
