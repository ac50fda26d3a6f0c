from services.database import Database
from tests import factories


async def test_an_asset_is_seen_by_its_team_and_not_by_others(db: Database) -> None:
    ann = await factories.account(db)
    bob = await factories.account(db, name="Bob")
    asset_id = await factories.library_asset(db, ann, name="Lantern")
    q = "query($id: ID!) { asset(id: $id) { name viewerPermission fileUrl } node(id: $id) { id } }"
    mine = await factories.gql(db, q, {"id": asset_id}, token=ann.token)
    assert mine["asset"]["name"] == "Lantern"
    assert mine["asset"]["viewerPermission"] == "ADMIN"
    theirs = await factories.gql(db, q, {"id": asset_id}, token=bob.token)
    assert theirs == {"asset": None, "node": None}
