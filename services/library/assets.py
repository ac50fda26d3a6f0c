"""Library assets made from the storyboard: every stored shot image and animation.

The generation engine calls `record_copy` in the transaction that stores our copy
of a file (`services.generation.outputs`), so an image or a clip is stored and
becomes an asset together or not at all. Its measurements and thumbnail were made
before that transaction, from the bytes in memory (`services.library.thumbnails`).

What an asset made here holds:

- team: the project's; creator: the project's owner (the studio records no
  requester per generation, and an import or a generation is always work on the
  owner's project); source links: project, shot image (or storyboard selection
  for a clip);
- name: `asset_name`, from the project's title and the numbers the API shows:
  scenes and shots from 1, iterations and variants from 0, e.g.
  "Night Market · Scene 1 · Shot 2 · Iteration 0 · Variant 3" or
  "Night Market · Scene 1 · Shot 2 · Animation"; it is not renamed when the
  project or its storyboard is;
- prompt: an image's iteration prompt; a clip's the prompt its animation was sent
  with (the shot's description, else its master image's prompt);
- model and params: the validated parameters the provider was sent
  (`generation_metadata`, `animation_metadata`). An import's metadata came from a
  client and was never checked: its asset keeps the model name only, no params;
- kind IMAGE or VIDEO, status READY, share level TEAM (the team sees the shot);
- lineage (`descend`): an img2img refinement is an EVOLVE child of its parent
  image's asset (that image's own asset, or, for an image added from the library,
  the asset it came from), an animation an ANIMATE child of its master image's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.library.lineage_words import prompt_delta
from services.library.tables import (
    AssetKind,
    AssetRow,
    AssetStatus,
    EvolutionType,
    ShareLevel,
)
from services.library.thumbnails import StoredMedia
from services.tables import (
    ProjectRow,
    SceneRow,
    ShotImageRow,
    ShotRow,
    StoryboardSelectionRow,
)

SEPARATOR = " · "
TITLE_IN_NAME = 120
"""At most this many characters of the project's title go into an asset's name, so
the numbers after it always fit (the migration 0011 back-fill cuts at the same place)."""


def asset_name(
    title: str,
    scene_number: int | None,
    shot_number: int | None,
    *,
    iteration_number: int | None = None,
    variant_number: int | None = None,
) -> str:
    """An asset's name from its source: the project's title (cut at TITLE_IN_NAME
    characters), "Scene n", "Shot n", then "Iteration i · Variant v" for an image
    or "Animation" for a clip (no iteration given). Numbers as the API shows them.

        asset_name("Night Market", 1, 2, iteration_number=0, variant_number=3)
        # "Night Market · Scene 1 · Shot 2 · Iteration 0 · Variant 3"
    """
    parts = [title[:TITLE_IN_NAME]]
    if scene_number is not None:
        parts.append(f"Scene {scene_number}")
    if shot_number is not None:
        parts.append(f"Shot {shot_number}")
    if iteration_number is None:
        parts.append("Animation")
    else:
        parts.append(f"Iteration {iteration_number}")
        if variant_number is not None:
            parts.append(f"Variant {variant_number}")
    return SEPARATOR.join(parts)


async def record_copy(
    session: AsyncSession,
    row: ShotImageRow | StoryboardSelectionRow | AssetRow,
    media: StoredMedia,
) -> AssetRow | None:
    """Make the asset of a shot image or a selection's clip whose copy `media` this
    transaction stores; None if the row's source is gone or its asset exists already
    (an image has one asset; a clip, one per stored animation). A regenerated asset
    (`regenerateAsset`) is that asset: it takes the stored file and its facts."""
    if isinstance(row, AssetRow):
        keep_file(row, media)
        return row
    if isinstance(row, ShotImageRow):
        return await asset_for_image(session, row, media)
    return await asset_for_animation(session, row, media)


def keep_file(asset: AssetRow, media: StoredMedia) -> None:
    """Record `media` as the asset's stored file: its key, thumbnail, MIME type, size in
    bytes and measurements (pixels; seconds and frames per second for a video)."""
    facts = media.measurements
    asset.storage_key = media.storage_key
    asset.thumbnail_key = media.thumbnail_key
    asset.mime_type = media.mime_type
    asset.file_size = media.file_size
    asset.width, asset.height = facts.width, facts.height
    if asset.kind == AssetKind.VIDEO:
        asset.duration, asset.fps = facts.duration, facts.fps


async def asset_for_image(
    session: AsyncSession, image: ShotImageRow, media: StoredMedia
) -> AssetRow | None:
    """Add (to `session`, unflushed) the IMAGE asset of `image`, stored as `media`.

    None if the image already has an asset, or its shot or project is gone.
    """
    existing = await session.exec(select(AssetRow.id).where(AssetRow.shot_image_id == image.id))
    if existing.first() is not None:
        return None
    source = await _source(session, image.shot_id)
    if source is None:
        return None
    shot, project, scene = source
    asset = _new_asset(
        project,
        media,
        kind=AssetKind.IMAGE,
        name=asset_name(
            project.title,
            scene.scene_number if scene else None,
            shot.shot_number,
            iteration_number=image.iteration_number,
            variant_number=image.variant_number,
        ),
        prompt=image.iteration_prompt,
        model=image.model,
        params=None if image.imported else image.generation_metadata,
    )
    asset.shot_image_id = image.id
    if image.parent_image_id is not None:
        parent = await image_asset(session, image.parent_image_id)
        if parent is not None:
            descend(asset, parent, EvolutionType.EVOLVE)
    session.add(asset)
    return asset


async def asset_for_animation(
    session: AsyncSession, selection: StoryboardSelectionRow, media: StoredMedia
) -> AssetRow | None:
    """Add (to `session`, unflushed) the VIDEO asset of the selection's animation,
    stored as `media`. None if its shot or project is gone."""
    source = await _source(session, selection.shot_id)
    if source is None:
        return None
    shot, project, scene = source
    master = await session.get(ShotImageRow, selection.selected_image_id)
    asset = _new_asset(
        project,
        media,
        kind=AssetKind.VIDEO,
        name=asset_name(project.title, scene.scene_number if scene else None, shot.shot_number),
        prompt=shot.description or (master.iteration_prompt if master else None),
        model=selection.model,
        params=selection.animation_metadata,
    )
    asset.selection_id = selection.id
    parent = await image_asset(session, selection.selected_image_id)
    if parent is not None:
        descend(asset, parent, EvolutionType.ANIMATE)
    session.add(asset)
    return asset


async def image_asset(session: AsyncSession, image_id: int) -> AssetRow | None:
    """The asset standing for a shot image in lineage: its own, or, for an image
    added from the library (`source_asset_id`), the asset it was added from; None
    if there is neither (or the image is gone)."""
    own = await session.exec(select(AssetRow).where(AssetRow.shot_image_id == image_id))
    found = own.first()
    if found is not None:
        return found
    image = await session.get(ShotImageRow, image_id)
    if image is None or image.source_asset_id is None:
        return None
    return await session.get(AssetRow, image.source_asset_id)


async def image_thumbnails(
    session: AsyncSession, image_ids: Sequence[int]
) -> dict[int, str | None]:
    """The stored thumbnail key of each of `image_ids` that has one: its own asset's,
    or, for an image added from the library, that asset's. Images without (still in
    progress, failed, or no thumbnail could be made) are left out. One statement each
    for own assets and added images, whatever the number of images."""
    if not image_ids:
        return {}
    found: dict[int, str | None] = {}
    own = await session.exec(
        select(AssetRow.shot_image_id, AssetRow.thumbnail_key).where(
            col(AssetRow.shot_image_id).in_(image_ids), col(AssetRow.thumbnail_key).is_not(None)
        )
    )
    for image_id, key in own.all():
        if image_id is not None and key is not None:
            found[image_id] = key
    rest = [image_id for image_id in image_ids if image_id not in found]
    if rest:
        added = await session.exec(
            select(ShotImageRow.id, AssetRow.thumbnail_key)
            .join(AssetRow, col(AssetRow.id) == col(ShotImageRow.source_asset_id))
            .where(col(ShotImageRow.id).in_(rest), col(AssetRow.thumbnail_key).is_not(None))
        )
        for image_id, key in added.all():
            if image_id is not None and key is not None:
                found[image_id] = key
    return found


def descend(child: AssetRow, parent: AssetRow, evolution: EvolutionType) -> None:
    """Make `child` the next version of `parent`: its parent and root (the parent's
    root, or the parent itself), version + 1, the parent's branch, `evolution`, and
    the prompt delta against the parent's prompt. In memory only."""
    child.parent_id = parent.id
    child.root_id = parent.root_id if parent.root_id is not None else parent.id
    child.version = parent.version + 1
    child.branch_name = parent.branch_name
    child.evolution_type = evolution
    child.prompt_delta = prompt_delta(parent.prompt, child.prompt)


async def _source(
    session: AsyncSession, shot_id: int
) -> tuple[ShotRow, ProjectRow, SceneRow | None] | None:
    """The shot an asset is made from, with its project and scene (None if the scene is
    gone); None if the shot or its project is gone."""
    shot = await session.get(ShotRow, shot_id)
    if shot is None:
        return None
    project = await session.get(ProjectRow, shot.project_id)
    if project is None:
        return None
    return shot, project, await session.get(SceneRow, shot.scene_id)


def _new_asset(
    project: ProjectRow,
    media: StoredMedia,
    *,
    kind: AssetKind,
    name: str,
    prompt: str | None,
    model: str | None,
    params: dict[str, Any] | None,
) -> AssetRow:
    facts = media.measurements
    return AssetRow(
        team_id=project.team_id,
        creator_id=project.owner_id,
        project_id=project.id,
        kind=kind,
        name=name,
        storage_key=media.storage_key,
        thumbnail_key=media.thumbnail_key,
        mime_type=media.mime_type,
        file_size=media.file_size,
        width=facts.width,
        height=facts.height,
        duration=facts.duration if kind is AssetKind.VIDEO else None,
        fps=facts.fps if kind is AssetKind.VIDEO else None,
        prompt=prompt,
        model=model,
        generation_params=dict(params) if params is not None else None,
        status=AssetStatus.READY,
        share_level=ShareLevel.TEAM,
    )
