"""Fetching any object by global ID, showing only what the viewer's teams hold.

Used by the root `node` field and by `ProjectEvent.node`; the `Node` interface itself
is in `schema.node`.
"""

from schema import ids
from schema.accounts import Invitation, member_team, visible_user
from schema.collections import load_collection, load_collection_item
from schema.context import BadRequest, Info
from schema.library import load_asset
from schema.node import Node
from schema.sharing import load_share
from schema.storyboard import Project, Scene, Shot, ShotImage, StoryboardSelection
from services.accounts.access import MANAGERS


async def visible_project(info: Info, project_id: int) -> Project | None:
    actor = info.context.require_actor()
    row = await info.context.loaders.project.load(project_id)
    if row is None or not actor.can_read(row.team_id):
        return None
    return Project.from_row(row)


async def _project_visible(info: Info, project_id: int) -> bool:
    return await visible_project(info, project_id) is not None


async def resolve(info: Info, type_name: str, pk: int) -> Node | None:
    """The object, if it exists and the viewer may see it; else None."""
    actor = info.context.require_actor()
    loaders = info.context.loaders
    if type_name == "Project":
        return await visible_project(info, pk)
    if type_name == "Scene":
        scene = await loaders.scene.load(pk)
        if scene and await _project_visible(info, scene.project_id):
            return Scene.from_row(scene)
    elif type_name == "Shot":
        shot = await loaders.shot.load(pk)
        if shot and await _project_visible(info, shot.project_id):
            return Shot.from_row(shot)
    elif type_name == "ShotImage":
        image = await loaders.image.load(pk)
        owner = await loaders.shot.load(image.shot_id) if image else None
        if image and owner and await _project_visible(info, owner.project_id):
            return ShotImage.from_row(image)
    elif type_name == "StoryboardSelection":
        selection = await loaders.selection.load(pk)
        if selection and await _project_visible(info, selection.project_id):
            return StoryboardSelection.from_row(selection)
    elif type_name == "Asset":
        return await load_asset(info, pk)
    elif type_name == "Collection":
        return await load_collection(info, pk)
    elif type_name == "CollectionItem":
        return await load_collection_item(info, pk)
    elif type_name == "AssetShare":
        return await load_share(info, pk)
    elif type_name == "Team":
        return await member_team(info, pk)
    elif type_name == "Invitation":
        invitation = await loaders.pending_invitation.load(pk)
        if invitation and actor.role_in(invitation.team_id) in MANAGERS:
            return Invitation.from_row(invitation)
    elif type_name == "User":
        return await visible_user(info, pk)
    return None


def parse_or_reject(global_id: str, expected: str | None = None) -> tuple[str, int]:
    """The (type, key) of an ID argument of a query; a malformed one is a top-level error."""
    parsed = ids.parse(global_id)
    if parsed is None:
        raise BadRequest(
            f"{global_id[:50]!r} is not a valid ID: use an `id` from one of the API's "
            'answers (an opaque string such as "UHJvamVjdDox", not a number).'
        )
    if expected is not None and parsed[0] != expected:
        raise BadRequest(f"Expected the ID of a {expected}, got the ID of a {parsed[0]}.")
    return parsed
