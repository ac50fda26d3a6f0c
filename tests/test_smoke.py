from services.database import Database
from tests.factories import account, gql, iteration, project, scene


async def test_the_hierarchy_round_trips(db: Database) -> None:
    ann = await account(db)
    project_id = await project(db, ann)
    first = await scene(db, ann, project_id, shots=2)
    shot_id = first["shots"][0]["id"]
    batch = await iteration(db, ann, shot_id)
    assert [i["variantNumber"] for i in batch["images"]] == [0, 1, 2, 3, 4, 5]
    data = await gql(
        db,
        """query($id: ID!) { project(id: $id) { title status scenes { sceneNumber shots {
            shotNumber latestIterationNumber iterations { iterationNumber status images { variantNumber } } } } } }""",
        {"id": project_id},
        token=ann.token,
    )
    project_data = data["project"]
    assert project_data["status"] == "SHOT_ITERATION"
    shots = project_data["scenes"][0]["shots"]
    assert [s["shotNumber"] for s in shots] == [1, 2]
    assert shots[0]["latestIterationNumber"] == 0
    assert shots[0]["iterations"][0]["status"] == "COMPLETE"
    assert shots[1]["latestIterationNumber"] is None
