"""The database tables. Only Alembic migrations create or change them.

Tables are storage, not API: the GraphQL types in `schema/` are built from
these rows and never expose them directly. Enum-valued columns hold the enum's
name as a plain string, so both engines store them the same way.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

# BIGINT on PostgreSQL; on SQLite only INTEGER PRIMARY KEY is an auto-incrementing rowid.
IdType = BigInteger().with_variant(Integer(), "sqlite")
# The table options of every table whose `id` the database gives out. On SQLite an
# INTEGER PRIMARY KEY without AUTOINCREMENT gives the highest deleted id out again,
# so a global ID a client kept would name another object; AUTOINCREMENT never does
# (https://www.sqlite.org/autoinc.html). PostgreSQL's BIGSERIAL never reuses one.
NEW_IDS_ONLY = {"sqlite_autoincrement": True}
# none_as_null: a Python None is SQL NULL (not JSON null), so `IS NULL` finds it.
JsonType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time as an aware UTC datetime: every timestamp column's default."""
    return datetime.now(UTC)


class TeamRole(enum.StrEnum):
    """A member's role in a team; what each may do is `services.accounts.access`'s rule."""

    OWNER = "OWNER"
    ADMIN = "ADMIN"
    EDITOR = "EDITOR"
    VIEWER = "VIEWER"


class WorkflowStatus(enum.StrEnum):
    """A project's stage, in order (see `services.storyboard.workflow`)."""

    PROMPT_PLANNING = "PROMPT_PLANNING"
    SCENES_SETUP = "SCENES_SETUP"
    SHOT_ITERATION = "SHOT_ITERATION"
    STORYBOARD_FINAL = "STORYBOARD_FINAL"
    ANIMATION_COMPLETE = "ANIMATION_COMPLETE"

    @property
    def rank(self) -> int:
        """The stage's place in the order, from 0 (PROMPT_PLANNING)."""
        return list(WorkflowStatus).index(self)


class WorkflowVersion(enum.StrEnum):
    """Which design of the workflow a project follows; the default is V2_REDESIGN."""

    V1_LEGACY = "V1_LEGACY"
    V2_REDESIGN = "V2_REDESIGN"


class GenerationStatus(enum.StrEnum):
    """Where an image's generation or a master image's animation stands.

    PENDING: recorded, or submitted and still starting; PROCESSING: running, or
    finished at the provider while its output is copied into storage; COMPLETE:
    the output is stored (or, imported, recorded); FAILED and CANCELED: ended
    without one. Moves forward only (see `services.generation`).
    """

    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    CANCELED = "CANCELED"

    @property
    def is_active(self) -> bool:
        """Whether the work is still in progress (PENDING or PROCESSING)."""
        return self in (GenerationStatus.PENDING, GenerationStatus.PROCESSING)


def _id(**kwargs: Any) -> Any:
    return Field(default=None, primary_key=True, sa_type=IdType, **kwargs)


def _ref(target: str, *, ondelete: str | None = "CASCADE", index: bool = False) -> Any:
    options: dict[str, Any] = {"foreign_key": target, "sa_type": IdType, "index": index}
    if ondelete is not None:
        options["ondelete"] = ondelete
    return Field(**options)


def _optional_ref(target: str, *, ondelete: str) -> Any:
    options: dict[str, Any] = {"foreign_key": target, "sa_type": IdType, "ondelete": ondelete}
    return Field(default=None, **options)


def _created() -> Any:
    return Field(default_factory=utcnow)


class UserRow(SQLModel, table=True):
    """An account: a unique, lower-cased email, a display name, and a password hash
    (a PHC string, see `services.accounts.passwords`)."""

    __tablename__ = "users"
    __table_args__ = NEW_IDS_ONLY

    id: int | None = _id()
    email: str = Field(max_length=254, unique=True)
    name: str = Field(max_length=100)
    password_hash: str = Field(max_length=255)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class TeamRow(SQLModel, table=True):
    """A team, which owns projects; `is_personal` for the one made at sign-up."""

    __tablename__ = "teams"
    __table_args__ = NEW_IDS_ONLY

    id: int | None = _id()
    name: str = Field(max_length=100)
    is_personal: bool = False
    created_at: datetime = _created()
    updated_at: datetime = _created()


class TeamMemberRow(SQLModel, table=True):
    """A user's membership of a team, keyed by (team, user); `role` a TeamRole name."""

    __tablename__ = "team_members"

    team_id: int = Field(
        primary_key=True, foreign_key="teams.id", ondelete="CASCADE", sa_type=IdType
    )
    user_id: int = Field(
        primary_key=True, foreign_key="users.id", ondelete="CASCADE", sa_type=IdType, index=True
    )
    role: str = Field(max_length=16)
    created_at: datetime = _created()


class AccessTokenRow(SQLModel, table=True):
    """A bearer token; only its SHA-256 digest is stored."""

    __tablename__ = "access_tokens"
    __table_args__ = NEW_IDS_ONLY

    id: int | None = _id()
    user_id: int = _ref("users.id", index=True)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = _created()
    expires_at: datetime


class TeamInvitationRow(SQLModel, table=True):
    """A pending invitation to join a team; only the SHA-256 of its code is stored.

    Accepting or revoking it deletes it, so a code works once.
    """

    __tablename__ = "team_invitations"
    __table_args__ = NEW_IDS_ONLY

    id: int | None = _id()
    team_id: int = _ref("teams.id", index=True)
    role: str = Field(max_length=16)
    code_hash: str = Field(max_length=64, unique=True)
    invited_by_id: int | None = _optional_ref("users.id", ondelete="SET NULL")
    created_at: datetime = _created()
    expires_at: datetime


class ProjectRow(SQLModel, table=True):
    """A storyboard project of a team; `status` a WorkflowStatus name,
    `workflow_version` a WorkflowVersion name."""

    __tablename__ = "projects"
    __table_args__ = (Index("ix_projects_team_id_id", "team_id", "id"), NEW_IDS_ONLY)

    id: int | None = _id()
    team_id: int = _ref("teams.id")
    owner_id: int = _ref("users.id", ondelete=None, index=True)
    title: str = Field(max_length=200)
    prompt: str | None = Field(default=None, sa_type=Text)
    prompt_planner_data: str | None = Field(default=None, sa_type=Text)
    workflow_version: str = Field(default=WorkflowVersion.V2_REDESIGN, max_length=16)
    status: str = Field(default=WorkflowStatus.PROMPT_PLANNING, max_length=32)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class SceneRow(SQLModel, table=True):
    """A scene of a project; `scene_number` is its place, unique within the project."""

    __tablename__ = "scenes"
    # Also the index for "the scenes of a project, in order".
    __table_args__ = (UniqueConstraint("project_id", "scene_number"), NEW_IDS_ONLY)

    id: int | None = _id()
    project_id: int = _ref("projects.id")
    scene_number: int
    title: str = Field(max_length=200)
    description: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class ShotRow(SQLModel, table=True):
    """A shot of a scene; `shot_number` is its place, unique within the scene."""

    __tablename__ = "shots"
    __table_args__ = (UniqueConstraint("scene_id", "shot_number"), NEW_IDS_ONLY)

    id: int | None = _id()
    scene_id: int = _ref("scenes.id")
    # Denormalised (a shot never changes project) so access checks take one hop.
    project_id: int = _ref("projects.id", index=True)
    shot_number: int
    description: str | None = Field(default=None, sa_type=Text)
    initial_prompt: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class ShotImageRow(SQLModel, table=True):
    """One variant of one iteration of a shot; an iteration is the images sharing a number.

    Both numbers count from 0, as in the design: iteration 0 is the shot's first batch,
    and an iteration of six holds variants 0..5 (at most 0..11).
    """

    __tablename__ = "shot_images"
    __table_args__ = (
        UniqueConstraint("shot_id", "iteration_number", "variant_number"),
        Index("ix_shot_images_prediction_id", "prediction_id"),
        Index("ix_shot_images_status", "status"),
        Index("ix_shot_images_storage_key", "storage_key"),  # 0015: is a file in use?
        NEW_IDS_ONLY,
    )

    id: int | None = _id()
    shot_id: int = _ref("shots.id")
    iteration_number: int
    variant_number: int
    status: str = Field(default=GenerationStatus.PENDING, max_length=16)
    image_url: str | None = Field(default=None, sa_type=Text)
    storage_key: str | None = Field(default=None, max_length=512)
    iteration_prompt: str = Field(sa_type=Text)
    parent_image_id: int | None = _optional_ref("shot_images.id", ondelete="SET NULL")
    is_favorite: bool = False
    prediction_id: str | None = Field(default=None, max_length=128)
    model: str | None = Field(default=None, max_length=200)
    generation_metadata: dict[str, Any] | None = Field(
        default=None, sa_column=Column("metadata", JsonType, nullable=True)
    )
    error: str | None = Field(default=None, sa_type=Text)
    # Generation bookkeeping (see services.generation.engine): who is submitting it, the
    # provider's output waiting to be copied into storage, and the last poll.
    dispatch_claimed_at: datetime | None = None
    provider_output: list[str] | None = Field(default=None, sa_type=JsonType)
    checked_at: datetime | None = None
    # Robustness bookkeeping (see services.generation.engine): which server holds the claim,
    # when a create was sent whose answer is not recorded yet, failed tries in a row,
    # and how often the provider lost its prediction and it was submitted again.
    dispatch_claimed_by: str | None = Field(default=None, max_length=128)
    submitted_at: datetime | None = None
    failed_tries: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    resubmissions: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # The generation's current attempt: a new token each time it is started (generated,
    # animated, retried), None once it is discarded. A create carries the token it was
    # sent for, and its prediction is recorded only on a row still in that attempt.
    attempt_id: str | None = Field(default=None, max_length=32)
    # Recorded by addShotImages: made elsewhere, never generated here; its
    # `image_url` is the client's, copied into storage in the background.
    imported: bool = False
    # Failed tries to copy the output (or the imported URL) into storage; the
    # last one's time is `checked_at`.
    copy_attempts: int = 0
    # The library asset it was added from (addShotImages with `assetId`), if any. No
    # foreign key (assets already refer to shot_images; a cycle cannot be created on
    # SQLite): deleting an asset clears it (services.library.assets.delete_asset).
    source_asset_id: int | None = Field(default=None, sa_type=IdType, index=True)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class StoryboardSelectionRow(SQLModel, table=True):
    """The master image chosen for a shot, and its animation."""

    __tablename__ = "storyboard_selections"
    __table_args__ = (
        Index("ix_storyboard_selections_prediction_id", "prediction_id"),
        Index("ix_storyboard_selections_animation_status", "animation_status"),
        Index("ix_storyboard_selections_video_storage_key", "video_storage_key"),  # 0015
        NEW_IDS_ONLY,
    )

    id: int | None = _id()
    project_id: int = _ref("projects.id", index=True)
    shot_id: int = Field(foreign_key="shots.id", ondelete="CASCADE", sa_type=IdType, unique=True)
    # No ON DELETE action: a master image cannot be deleted while it is selected,
    # but a cascade that removes the shot removes both in one statement.
    selected_image_id: int = _ref("shot_images.id", ondelete=None, index=True)
    animation_status: str | None = Field(default=None, max_length=16)
    animated_video_url: str | None = Field(default=None, sa_type=Text)
    video_storage_key: str | None = Field(default=None, max_length=512)
    prediction_id: str | None = Field(default=None, max_length=128)
    error: str | None = Field(default=None, sa_type=Text)
    model: str | None = Field(default=None, max_length=200)
    animation_metadata: dict[str, Any] | None = Field(default=None, sa_type=JsonType)
    dispatch_claimed_at: datetime | None = None
    provider_output: list[str] | None = Field(default=None, sa_type=JsonType)
    checked_at: datetime | None = None
    dispatch_claimed_by: str | None = Field(default=None, max_length=128)
    submitted_at: datetime | None = None
    failed_tries: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    resubmissions: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    attempt_id: str | None = Field(default=None, max_length=32)  # as on ShotImageRow
    copy_attempts: int = 0  # as on ShotImageRow
    created_at: datetime = _created()
    updated_at: datetime = _created()


class WebhookDeliveryRow(SQLModel, table=True):
    """A webhook delivery already handled, by its `webhook-id`: deliveries can repeat."""

    __tablename__ = "webhook_deliveries"

    id: str = Field(primary_key=True, max_length=200)
    prediction_id: str | None = Field(default=None, max_length=128)
    received_at: datetime = _created()


class ProjectEventRow(SQLModel, table=True):
    """One change in a project: its per-project `sequence` is the subscriptions' cursor.

    No foreign keys: events are written last in a transaction, and a key check on
    `projects` would wait on the lock a writer of that project holds (see
    `services.realtime.events`).
    """

    __tablename__ = "project_events"
    __table_args__ = (
        UniqueConstraint("project_id", "sequence"),
        Index("ix_project_events_at", "at"),
        NEW_IDS_ONLY,
    )

    id: int | None = _id()
    project_id: int = Field(sa_type=IdType)
    sequence: int = Field(sa_type=IdType)
    kind: str = Field(max_length=40)
    node_type: str = Field(max_length=40)
    node_id: int = Field(sa_type=IdType)
    # The shot an image or selection belongs to, for per-shot feeds.
    shot_id: int | None = Field(default=None, sa_type=IdType)
    changes: list[str] | None = Field(default=None, sa_type=JsonType)
    at: datetime = _created()


class ProjectEventCounterRow(SQLModel, table=True):
    """The last sequence given out in a project; its row lock orders the project's events."""

    __tablename__ = "project_event_counters"

    project_id: int = Field(
        primary_key=True, sa_type=IdType, sa_column_kwargs={"autoincrement": False}
    )
    last_sequence: int = Field(default=0, sa_type=IdType)


class TeamEventRow(SQLModel, table=True):
    """One change a team's projects list or team page shows: its per-team `sequence` is
    `teamEvents`' cursor (see `services.realtime.team_events`). No foreign keys (see
    ProjectEventRow): events outlive what they name."""

    __tablename__ = "team_events"
    __table_args__ = (
        UniqueConstraint("team_id", "sequence"),
        Index("ix_team_events_at", "at"),
        NEW_IDS_ONLY,
    )

    id: int | None = _id()
    team_id: int = Field(sa_type=IdType)
    sequence: int = Field(sa_type=IdType)
    kind: str = Field(max_length=40)
    node_type: str = Field(max_length=40)
    node_id: int = Field(sa_type=IdType)
    changes: list[str] | None = Field(default=None, sa_type=JsonType)
    at: datetime = _created()


class TeamEventCounterRow(SQLModel, table=True):
    """The last sequence given out in a team's feed (see ProjectEventCounterRow)."""

    __tablename__ = "team_event_counters"

    team_id: int = Field(
        primary_key=True, sa_type=IdType, sa_column_kwargs={"autoincrement": False}
    )
    last_sequence: int = Field(default=0, sa_type=IdType)


class StudioRow(SQLModel, table=True):
    """This studio's identity, one row: names its channels on a shared event bus."""

    __tablename__ = "studio"

    id: int = Field(default=1, primary_key=True, sa_type=IdType)
    studio_id: str = Field(max_length=32)
