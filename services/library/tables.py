"""The media library's tables and enums (see `services.tables` for the conventions).

Only Alembic migrations create or change them (0010 on). Importing this module
registers the tables on SQLModel's metadata, as `services.tables` does for the rest.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from services.tables import (
    NEW_IDS_ONLY,
    IdType,
    JsonType,
    _created,
    _id,
    _optional_ref,
    _ref,
)


class AssetKind(enum.StrEnum):
    """What an asset's file holds."""

    IMAGE = "IMAGE"
    VIDEO = "VIDEO"
    AUDIO = "AUDIO"
    OVERLAY = "OVERLAY"


class AssetStatus(enum.StrEnum):
    """Where an asset stands: DRAFT (no file yet: a remix to generate), GENERATING,
    READY (its file is stored) or FAILED (its generation failed; it may be regenerated)."""

    DRAFT = "DRAFT"
    GENERATING = "GENERATING"
    READY = "READY"
    FAILED = "FAILED"


class ShareLevel(enum.StrEnum):
    """Who sees an asset or a collection besides those it is shared with: PRIVATE its
    creator only, TEAM every member of its team, PUBLIC every signed-in user."""

    PRIVATE = "PRIVATE"
    TEAM = "TEAM"
    PUBLIC = "PUBLIC"


class SharePermission(enum.StrEnum):
    """What a share (or a role) allows on an asset, each including the one before:
    VIEW reads it, EDIT also changes its metadata (and duplicates and remixes it),
    ADMIN also shares it, changes its level and deletes it."""

    VIEW = "VIEW"
    EDIT = "EDIT"
    ADMIN = "ADMIN"

    @property
    def rank(self) -> int:
        """0 for VIEW, 1 for EDIT, 2 for ADMIN."""
        return list(SharePermission).index(self)


class EvolutionType(enum.StrEnum):
    """How an asset came from its lineage parent (ORIGINAL: it has none)."""

    ORIGINAL = "ORIGINAL"
    EVOLVE = "EVOLVE"
    ANIMATE = "ANIMATE"
    DUPLICATE = "DUPLICATE"
    REMIX = "REMIX"
    REGENERATE = "REGENERATE"


class SceneType(enum.StrEnum):
    """The kind of shot an asset shows, in film pre-production's terms."""

    WIDE = "WIDE"
    ESTABLISHING = "ESTABLISHING"
    MEDIUM = "MEDIUM"
    CLOSE_UP = "CLOSE_UP"
    EXTREME_CLOSE_UP = "EXTREME_CLOSE_UP"
    OVER_THE_SHOULDER = "OVER_THE_SHOULDER"
    POINT_OF_VIEW = "POINT_OF_VIEW"
    TRACKING = "TRACKING"
    AERIAL = "AERIAL"
    STATIC = "STATIC"


class CollectionType(enum.StrEnum):
    """What a collection gathers."""

    CAMPAIGN = "CAMPAIGN"
    SERIES = "SERIES"
    CHARACTER_ARC = "CHARACTER_ARC"
    BRAND_KIT = "BRAND_KIT"
    UNIVERSE = "UNIVERSE"


class AssetRow(SQLModel, table=True):
    """A library asset: a stored image, clip, sound or overlay of a team, with its
    metadata, lineage, usage counts and place on the constellation map.

    Made from a shot image or an animation in the transaction that stores its file
    (`services.library.assets`); it outlives its source (the links become NULL).
    `status` an AssetStatus name, `kind` an AssetKind, `share_level` a ShareLevel,
    `evolution_type` an EvolutionType, `scene_type` a SceneType. `tags` is a JSON list
    of lower-cased strings. Sizes are bytes, dimensions pixels, `duration` seconds.
    """

    __tablename__ = "assets"
    __table_args__ = (
        Index("ix_assets_team_id_id", "team_id", "id"),
        Index("ix_assets_prediction_id", "prediction_id"),
        # Lookups by what refers to a row (0015): whether a file is still in use before
        # it is deleted, and the SET NULL of a deleted project, selection or root.
        Index("ix_assets_storage_key", "storage_key"),
        Index("ix_assets_thumbnail_key", "thumbnail_key"),
        Index("ix_assets_root_id", "root_id"),
        Index("ix_assets_project_id", "project_id"),
        Index("ix_assets_selection_id", "selection_id"),
        Index("ix_assets_creator_id", "creator_id"),
        NEW_IDS_ONLY,
    )

    id: int | None = _id()
    team_id: int = _ref("teams.id")
    creator_id: int | None = _optional_ref("users.id", ondelete="SET NULL")
    # Where it came from; NULL once that is deleted (the library is the archive).
    project_id: int | None = _optional_ref("projects.id", ondelete="SET NULL")
    shot_image_id: int | None = Field(
        default=None,
        foreign_key="shot_images.id",
        ondelete="SET NULL",
        sa_type=IdType,
        unique=True,
    )
    selection_id: int | None = _optional_ref("storyboard_selections.id", ondelete="SET NULL")
    kind: str = Field(max_length=16)
    name: str = Field(max_length=200)
    description: str | None = Field(default=None, sa_type=Text)
    storage_key: str | None = Field(default=None, max_length=512)
    thumbnail_key: str | None = Field(default=None, max_length=512)
    mime_type: str | None = Field(default=None, max_length=100)
    file_size: int | None = Field(default=None, sa_type=BigInteger)
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    fps: float | None = None
    prompt: str | None = Field(default=None, sa_type=Text)
    model: str | None = Field(default=None, max_length=200)
    generation_params: dict[str, Any] | None = Field(default=None, sa_type=JsonType)
    tags: list[str] = Field(default_factory=list, sa_type=JsonType)
    category: str | None = Field(default=None, max_length=100)
    mood: str | None = Field(default=None, max_length=100)
    scene_type: str | None = Field(default=None, max_length=32)
    status: str = Field(default=AssetStatus.READY, max_length=16)
    share_level: str = Field(default=ShareLevel.TEAM, max_length=16)
    can_duplicate: bool = True
    can_remix: bool = True
    # Lineage: the first ancestor, the parent, the version (root 1, a child its
    # parent's + 1), the branch, how it came from its parent, and the words its
    # prompt gained and lost against the parent's ({"added": [...], "removed": [...]}).
    root_id: int | None = _optional_ref("assets.id", ondelete="SET NULL")
    parent_id: int | None = _optional_ref("assets.id", ondelete="SET NULL")
    version: int = 1
    branch_name: str = Field(default="main", max_length=100)
    evolution_type: str = Field(default=EvolutionType.ORIGINAL, max_length=16)
    evolution_note: str | None = Field(default=None, sa_type=Text)
    prompt_delta: dict[str, Any] | None = Field(default=None, sa_type=JsonType)
    # Usage counters kept with their cause (views by `asset_views`).
    views: int = 0
    duplicate_count: int = 0
    remix_count: int = 0
    # The constellation map: a stored position (computed, or pinned by hand) and cluster.
    constellation_x: float | None = None
    constellation_y: float | None = None
    constellation_cluster: str | None = Field(default=None, max_length=64)
    position_pinned: bool = False
    # --- constellation (migration 0013) ---
    # A digest of the tags and category the stored position was computed from: when it
    # no longer matches, the next layout places the asset again (unless it is pinned).
    constellation_basis: str | None = Field(default=None, max_length=32)
    # Generation bookkeeping of regenerateAsset, as on ShotImageRow (services.generation):
    # `generation_status` a GenerationStatus name while or after one runs, else NULL.
    generation_status: str | None = Field(default=None, max_length=16)
    prediction_id: str | None = Field(default=None, max_length=128)
    error: str | None = Field(default=None, sa_type=Text)
    dispatch_claimed_at: datetime | None = None
    dispatch_claimed_by: str | None = Field(default=None, max_length=128)
    provider_output: list[str] | None = Field(default=None, sa_type=JsonType)
    checked_at: datetime | None = None
    submitted_at: datetime | None = None
    failed_tries: int = 0
    resubmissions: int = 0
    attempt_id: str | None = Field(default=None, max_length=32)
    copy_attempts: int = 0
    created_at: datetime = _created()
    updated_at: datetime = _created()


class AssetShareRow(SQLModel, table=True):
    """An asset shared with one user: `permission` a SharePermission name, until
    `expires_at` (None: until revoked). One share per (asset, user)."""

    __tablename__ = "asset_shares"
    __table_args__ = (UniqueConstraint("asset_id", "user_id"), NEW_IDS_ONLY)

    id: int | None = _id()
    asset_id: int = _ref("assets.id")
    user_id: int = _ref("users.id", index=True)
    permission: str = Field(max_length=16)
    message: str | None = Field(default=None, sa_type=Text)
    shared_by_id: int | None = _optional_ref("users.id", ondelete="SET NULL")
    expires_at: datetime | None = None
    created_at: datetime = _created()
    updated_at: datetime = _created()


class AssetViewRow(SQLModel, table=True):
    """When a user last opened an asset: `views` counts an open at most once an hour."""

    __tablename__ = "asset_views"

    asset_id: int = Field(
        primary_key=True, foreign_key="assets.id", ondelete="CASCADE", sa_type=IdType
    )
    user_id: int = Field(
        primary_key=True, foreign_key="users.id", ondelete="CASCADE", sa_type=IdType
    )
    viewed_at: datetime = _created()


class CollectionRow(SQLModel, table=True):
    """A team's ordered set of assets; `collection_type` a CollectionType name,
    `share_level` a ShareLevel name, `tags` a JSON list. Counts and durations are
    derived from its items, never stored."""

    __tablename__ = "collections"
    __table_args__ = (
        Index("ix_collections_team_id_id", "team_id", "id"),
        Index("ix_collections_cover_asset_id", "cover_asset_id"),  # 0015
        NEW_IDS_ONLY,
    )

    id: int | None = _id()
    team_id: int = _ref("teams.id")
    creator_id: int | None = _optional_ref("users.id", ondelete="SET NULL")
    name: str = Field(default="Untitled Collection", max_length=200)
    description: str | None = Field(default=None, sa_type=Text)
    collection_type: str = Field(default=CollectionType.CAMPAIGN, max_length=16)
    cover_asset_id: int | None = _optional_ref("assets.id", ondelete="SET NULL")
    tags: list[str] = Field(default_factory=list, sa_type=JsonType)
    category: str | None = Field(default=None, max_length=100)
    share_level: str = Field(default=ShareLevel.TEAM, max_length=16)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class CollectionItemRow(SQLModel, table=True):
    """An asset in a collection at `position` (dense from 0), with notes."""

    __tablename__ = "collection_items"
    __table_args__ = (
        UniqueConstraint("collection_id", "asset_id"),
        UniqueConstraint("collection_id", "position"),
        NEW_IDS_ONLY,
    )

    id: int | None = _id()
    collection_id: int = _ref("collections.id")
    asset_id: int = _ref("assets.id", index=True)
    position: int
    notes: str | None = Field(default=None, sa_type=Text)
    added_by_id: int | None = _optional_ref("users.id", ondelete="SET NULL")
    added_at: datetime = _created()


class ConstellationClusterRow(SQLModel, table=True):
    """A cluster of a team's constellation map: its label, centre and whether it is pinned.

    `key` names the cluster within the team (stable across layouts)."""

    __tablename__ = "constellation_clusters"

    team_id: int = Field(
        primary_key=True, foreign_key="teams.id", ondelete="CASCADE", sa_type=IdType
    )
    key: str = Field(primary_key=True, max_length=64)
    label: str = Field(max_length=200)
    x: float = 0.0
    y: float = 0.0
    pinned: bool = False
    updated_at: datetime = _created()


class LibraryEventRow(SQLModel, table=True):
    """One change in a team's library: its per-team `sequence` is `libraryEvents`' cursor.

    `share_level` and `creator_id` are the asset's when the event was recorded, so a
    DELETED event reaches only those who could see the asset. No foreign keys (see
    ProjectEventRow)."""

    __tablename__ = "library_events"
    __table_args__ = (
        UniqueConstraint("team_id", "sequence"),
        Index("ix_library_events_at", "at"),
        NEW_IDS_ONLY,
    )

    id: int | None = _id()
    team_id: int = Field(sa_type=IdType)
    sequence: int = Field(sa_type=IdType)
    kind: str = Field(max_length=40)
    node_type: str = Field(max_length=40)
    node_id: int = Field(sa_type=IdType)
    changes: list[str] | None = Field(default=None, sa_type=JsonType)
    share_level: str | None = Field(default=None, max_length=16)
    creator_id: int | None = Field(default=None, sa_type=IdType)
    at: datetime = _created()
    # --- library events ---
    # Of an ASSET_SHARED event: the user the share is to (it reaches them even once
    # the share is revoked). Migration 0012.
    recipient_id: int | None = Field(default=None, sa_type=IdType)


class LibraryEventCounterRow(SQLModel, table=True):
    """The last sequence given out in a team's library (see ProjectEventCounterRow)."""

    __tablename__ = "library_event_counters"

    team_id: int = Field(
        primary_key=True, sa_type=IdType, sa_column_kwargs={"autoincrement": False}
    )
    last_sequence: int = Field(default=0, sa_type=IdType)
