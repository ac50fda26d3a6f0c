"""Library assets as GraphQL types: what a viewer may see of each, with its access.

An `Asset` is built only by `load_asset` / `Asset.from_row` with the viewer's access
already decided (`services.library.access`); fields that lead elsewhere (team,
project, lineage parent) show what the viewer may see, or null.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Self, cast

import strawberry
from strawberry.scalars import JSON

from schema import ids
from schema.accounts import Team, User, member_team, visible_user
from schema.cluster_ids import encode_cluster
from schema.context import Info
from schema.node import Node
from schema.scalars import stored_json
from schema.storyboard import Project, ShotImage
from services.library.access import Access, permission
from services.library.tables import (
    AssetKind,
    AssetRow,
    AssetStatus,
    CollectionType,
    EvolutionType,
    SceneType,
    ShareLevel,
    SharePermission,
)

if TYPE_CHECKING:
    from schema.sharing import AssetShare

strawberry.enum(AssetKind, description="What an asset's file holds.")
strawberry.enum(
    AssetStatus,
    description="Where an asset stands: DRAFT (no file yet), GENERATING, READY (its file is "
    "stored) or FAILED (its generation failed; regenerate it to try again).",
)
strawberry.enum(
    ShareLevel,
    description="Who sees it besides those it is shared with: PRIVATE its creator only, TEAM "
    "every member of its team, PUBLIC every signed-in user.",
)
strawberry.enum(
    SharePermission,
    description="What a share allows, each including the one before: VIEW reads, EDIT also "
    "changes metadata, duplicates and remixes, ADMIN also shares, changes the level and deletes.",
)
strawberry.enum(
    EvolutionType,
    description="How an asset came from its lineage parent: ORIGINAL (no parent), EVOLVE (an "
    "img2img refinement), ANIMATE (a clip of its master image), DUPLICATE, REMIX, REGENERATE.",
)
strawberry.enum(SceneType, description="The kind of shot an asset shows.")
strawberry.enum(CollectionType, description="What a collection gathers.")


@strawberry.type(description="How a prompt differs from its lineage parent's, word by word.")
class PromptDelta:
    added: list[str] = strawberry.field(description="Words the prompt has that the parent's lacks.")
    removed: list[str] = strawberry.field(
        description="Words of the parent's prompt this one dropped."
    )


@strawberry.type(
    description="A library asset: a stored image, clip, sound or overlay, with its metadata, "
    "lineage and usage. Every completed shot image and animation becomes one."
)
class Asset(Node):
    kind: AssetKind = strawberry.field(description="What its file holds.")
    name: str = strawberry.field(description="Its name.")
    description: str | None = strawberry.field(description="What it shows, in words.")
    status: AssetStatus = strawberry.field(description="Where it stands.")
    share_level: ShareLevel = strawberry.field(description="Who sees it besides its shares.")
    can_duplicate: bool = strawberry.field(description="Whether it may be duplicated.")
    can_remix: bool = strawberry.field(description="Whether it may be remixed.")
    mime_type: str | None = strawberry.field(description="Its file's MIME type.")
    file_size: int | None = strawberry.field(description="Its file's size in bytes.")
    width: int | None = strawberry.field(description="Width in pixels (images and videos).")
    height: int | None = strawberry.field(description="Height in pixels (images and videos).")
    duration: float | None = strawberry.field(description="Length in seconds (video, audio).")
    fps: float | None = strawberry.field(description="Frames per second (video).")
    prompt: str | None = strawberry.field(description="The prompt it was generated with.")
    model: str | None = strawberry.field(description="The model that generated it.")
    generation_params: JSON | None = strawberry.field(
        description="The validated parameters it was generated with."
    )
    tags: list[str] = strawberry.field(description="Its tags, lower-case.")
    category: str | None = strawberry.field(description="Its category.")
    mood: str | None = strawberry.field(description="Its mood.")
    scene_type: SceneType | None = strawberry.field(description="The kind of shot it shows.")
    version: int = strawberry.field(description="Its lineage version: 1 for a root.")
    branch_name: str = strawberry.field(description="Its lineage branch.")
    evolution_type: EvolutionType = strawberry.field(description="How it came from its parent.")
    evolution_note: str | None = strawberry.field(description="A note on that step.")
    views: int = strawberry.field(
        description="How often it was opened with `asset(id)`: once per viewer per hour at most."
    )
    duplicate_count: int = strawberry.field(description="How often it was duplicated.")
    remix_count: int = strawberry.field(description="How often it was remixed.")
    error: str | None = strawberry.field(description="Why its last generation failed, if it did.")
    created_at: datetime = strawberry.field(description="When it was made.")
    updated_at: datetime = strawberry.field(description="When it last changed.")
    row: strawberry.Private[AssetRow]
    access: strawberry.Private[Access]

    @classmethod
    def from_row(cls, row: AssetRow, granted: Access) -> Self:
        """The asset as a viewer with `granted` access sees it (the caller checked it)."""
        return cls(
            id=ids.encode("Asset", row.id),
            row=row,
            access=granted,
            kind=AssetKind(row.kind),
            name=row.name,
            description=row.description,
            status=AssetStatus(row.status),
            share_level=ShareLevel(row.share_level),
            can_duplicate=row.can_duplicate,
            can_remix=row.can_remix,
            mime_type=row.mime_type,
            file_size=row.file_size,
            width=row.width,
            height=row.height,
            duration=row.duration,
            fps=row.fps,
            prompt=row.prompt,
            model=row.model,
            generation_params=cast(JSON, stored_json(row.generation_params)),
            tags=list(row.tags or []),
            category=row.category,
            mood=row.mood,
            scene_type=SceneType(row.scene_type) if row.scene_type else None,
            version=row.version,
            branch_name=row.branch_name,
            evolution_type=EvolutionType(row.evolution_type),
            evolution_note=row.evolution_note,
            views=row.views,
            duplicate_count=row.duplicate_count,
            remix_count=row.remix_count,
            error=row.error,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    def _link(self, info: Info, key: str | None) -> str | None:
        if key is None:
            return None
        if self.access.through_team:
            return info.context.media.url_for(key)
        ends = self.access.ends_at  # an expiring share: its links end with it
        return info.context.media.short_url_for(  # a share or PUBLIC: minutes, not hours
            key, not_after=ends.timestamp() if ends else None
        )

    @strawberry.field(
        description="Its stored file, by a signed URL that expires (ask again for a fresh one): "
        "hours for its team's members, at most 10 minutes through a share or a PUBLIC level."
    )
    def file_url(self, info: Info) -> str | None:
        return self._link(info, self.row.storage_key)

    @strawberry.field(
        description="A small preview made by the studio (WebP for an image, a poster frame for "
        "a video), by a signed URL like `fileUrl`; null until it is made."
    )
    def thumbnail_url(self, info: Info) -> str | None:
        return self._link(info, self.row.thumbnail_key)

    @strawberry.field(description="What you may do with it (null never: you see it).")
    def viewer_permission(self) -> SharePermission:
        assert self.access.permission is not None
        return self.access.permission

    @strawberry.field(description="How its prompt differs from its parent's; null for a root.")
    def prompt_delta(self) -> PromptDelta | None:
        delta = self.row.prompt_delta
        if not isinstance(delta, dict):
            return None
        return PromptDelta(
            added=[str(w) for w in delta.get("added") or []],
            removed=[str(w) for w in delta.get("removed") or []],
        )

    @strawberry.field(description="Its team; null when you are not a member of it.")
    async def team(self, info: Info) -> Team | None:
        return await member_team(info, self.row.team_id)

    @strawberry.field(
        description="Who made it; null once their account is gone or when you share no team."
    )
    async def creator(self, info: Info) -> User | None:
        return await visible_user(info, self.row.creator_id)

    @strawberry.field(
        description="The project it was made in; null once that is deleted, or if you cannot "
        "see it."
    )
    async def source_project(self, info: Info) -> Project | None:
        if self.row.project_id is None:
            return None
        row = await info.context.loaders.project.load(self.row.project_id)
        if row is None or not info.context.require_actor().can_read(row.team_id):
            return None
        return Project.from_row(row)

    @strawberry.field(description="Its lineage parent, if it has one you may see.")
    async def parent(self, info: Info) -> Asset | None:
        return await load_asset(info, self.row.parent_id)

    @strawberry.field(description="The first ancestor of its lineage, if you may see it.")
    async def root(self, info: Info) -> Asset | None:
        return await load_asset(info, self.row.root_id)

    # --- sharing ---
    @strawberry.field(
        description="Who it is shared with: every share (expired ones too) if you hold ADMIN "
        "on it, otherwise only your own share while it is in force."
    )
    async def shares(
        self, info: Info
    ) -> list[Annotated[AssetShare, strawberry.lazy("schema.sharing")]]:
        from schema.sharing import shares_of  # schema.sharing builds on this module

        return await shares_of(info, self)

    # --- constellation ---
    @strawberry.field(
        description="Its place on its team's constellation map; null until the map has "
        "placed it (reading `constellation(teamId)` does)."
    )
    def constellation_position(self) -> ConstellationPosition | None:
        row = self.row
        if row.constellation_x is None or row.constellation_y is None:
            return None
        cluster = row.constellation_cluster
        return ConstellationPosition(
            x=row.constellation_x,
            y=row.constellation_y,
            cluster_id=encode_cluster(row.team_id, cluster) if cluster else None,
            pinned=row.position_pinned,
        )

    # --- edits ---
    @strawberry.field(
        description="How many projects' storyboards use it: distinct projects with a master "
        "image that is its source shot image or an image added from it (addShotImages with "
        "assetId). Projects you cannot see count too."
    )
    async def used_in_projects(self, info: Info) -> int:
        assert self.row.id is not None
        return await info.context.loaders.projects_using_asset.load(self.row.id)

    @strawberry.field(
        description="Whether its source shot image is starred (setImageFavorite); false when "
        "it has none."
    )
    async def is_favorite(self, info: Info) -> bool:
        if self.row.shot_image_id is None:
            return False
        image = await info.context.loaders.image.load(self.row.shot_image_id)
        return image is not None and image.is_favorite

    @strawberry.field(
        description="The shot image it was made from; null once that is deleted, or if you "
        "cannot see its project."
    )
    async def source_image(self, info: Info) -> ShotImage | None:
        if self.row.shot_image_id is None:
            return None
        loaders = info.context.loaders
        image = await loaders.image.load(self.row.shot_image_id)
        shot = await loaders.shot.load(image.shot_id) if image else None
        project = await loaders.project.load(shot.project_id) if shot else None
        if image is None or project is None:
            return None
        if not info.context.require_actor().can_read(project.team_id):
            return None
        return ShotImage.from_row(image)


@strawberry.type(description="Where an asset sits on its team's constellation map.")
class ConstellationPosition:
    x: float = strawberry.field(description="Horizontal position, in map units.")
    y: float = strawberry.field(description="Vertical position, in map units.")
    cluster_id: strawberry.ID | None = strawberry.field(
        description="The ID of its cluster (as in `constellation(teamId).clusters`)."
    )
    pinned: bool = strawberry.field(
        description="Whether it was put there by hand; a layout never moves it."
    )


async def load_asset(info: Info, asset_id: int | None) -> Asset | None:
    """The asset as the viewer sees it, or None if there is none or they may not see it."""
    if asset_id is None:
        return None
    actor = info.context.require_actor()
    loaders = info.context.loaders
    row = await loaders.asset.load(asset_id)
    if row is None:
        return None
    share = await loaders.asset_share.load((asset_id, actor.user_id))
    granted = permission(actor, row, share)
    return Asset.from_row(row, granted) if granted.permission is not None else None
