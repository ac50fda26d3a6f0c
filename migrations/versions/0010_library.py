"""the media library: assets, shares, views, collections, the constellation and library events

Every stored image and clip becomes an asset (`services.library`); this revision
makes the tables. The assets of rows stored before it are made by the next one
(0011), their thumbnails by `studio thumbnails` or the server at start-up
(migrations have no storage).

`shot_images.source_asset_id` names the library asset an image was added from. It
has no foreign key: `assets.shot_image_id` already refers to `shot_images`, and
SQLite cannot create the cycle; deleting an asset clears it. It is added with a
plain ADD COLUMN (no batch rebuild, which would drop 0008's AUTOINCREMENT).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "library_event_counters",
        sa.Column(
            "team_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column(
            "last_sequence", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.PrimaryKeyConstraint("team_id", name=op.f("pk_library_event_counters")),
    )
    op.create_table(
        "library_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("team_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sequence", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("node_type", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("node_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "changes",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column("share_level", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column(
            "creator_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_library_events")),
        sa.UniqueConstraint("team_id", "sequence", name=op.f("uq_library_events_team_id_sequence")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("library_events", schema=None) as batch_op:
        batch_op.create_index("ix_library_events_at", ["at"], unique=False)

    op.create_table(
        "constellation_clusters",
        sa.Column("team_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("label", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("x", sa.Float(), nullable=False),
        sa.Column("y", sa.Float(), nullable=False),
        sa.Column("pinned", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_constellation_clusters_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("team_id", "key", name=op.f("pk_constellation_clusters")),
    )
    op.create_table(
        "assets",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("team_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "creator_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "project_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "shot_image_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "selection_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("storage_key", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=True),
        sa.Column("thumbnail_key", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=True),
        sa.Column("mime_type", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("file_size", sa.BigInteger(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("fps", sa.Float(), nullable=True),
        sa.Column("prompt", sa.Text(), nullable=True),
        sa.Column("model", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column(
            "generation_params",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column(
            "tags",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=False,
        ),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("mood", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("scene_type", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("share_level", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("can_duplicate", sa.Boolean(), nullable=False),
        sa.Column("can_remix", sa.Boolean(), nullable=False),
        sa.Column("root_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("parent_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("branch_name", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("evolution_type", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("evolution_note", sa.Text(), nullable=True),
        sa.Column(
            "prompt_delta",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column("views", sa.Integer(), nullable=False),
        sa.Column("duplicate_count", sa.Integer(), nullable=False),
        sa.Column("remix_count", sa.Integer(), nullable=False),
        sa.Column("constellation_x", sa.Float(), nullable=True),
        sa.Column("constellation_y", sa.Float(), nullable=True),
        sa.Column(
            "constellation_cluster", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True
        ),
        sa.Column("position_pinned", sa.Boolean(), nullable=False),
        sa.Column("generation_status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("prediction_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("dispatch_claimed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column(
            "dispatch_claimed_by", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True
        ),
        sa.Column(
            "provider_output",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column("checked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("submitted_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("failed_tries", sa.Integer(), nullable=False),
        sa.Column("resubmissions", sa.Integer(), nullable=False),
        sa.Column("attempt_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("copy_attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["creator_id"],
            ["users.id"],
            name=op.f("fk_assets_creator_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["assets.id"],
            name=op.f("fk_assets_parent_id_assets"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_assets_project_id_projects"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["root_id"], ["assets.id"], name=op.f("fk_assets_root_id_assets"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["selection_id"],
            ["storyboard_selections.id"],
            name=op.f("fk_assets_selection_id_storyboard_selections"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["shot_image_id"],
            ["shot_images.id"],
            name=op.f("fk_assets_shot_image_id_shot_images"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_assets_team_id_teams"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assets")),
        sa.UniqueConstraint("shot_image_id", name=op.f("uq_assets_shot_image_id")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.create_index("ix_assets_prediction_id", ["prediction_id"], unique=False)
        batch_op.create_index("ix_assets_team_id_id", ["team_id", "id"], unique=False)

    op.create_table(
        "asset_shares",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("asset_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("permission", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column(
            "shared_by_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["assets.id"],
            name=op.f("fk_asset_shares_asset_id_assets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["shared_by_id"],
            ["users.id"],
            name=op.f("fk_asset_shares_shared_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_asset_shares_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_shares")),
        sa.UniqueConstraint("asset_id", "user_id", name=op.f("uq_asset_shares_asset_id_user_id")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("asset_shares", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_asset_shares_user_id"), ["user_id"], unique=False)

    op.create_table(
        "asset_views",
        sa.Column("asset_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("viewed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["assets.id"],
            name=op.f("fk_asset_views_asset_id_assets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_asset_views_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("asset_id", "user_id", name=op.f("pk_asset_views")),
    )
    op.create_table(
        "collections",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("team_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "creator_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("collection_type", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column(
            "cover_asset_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "tags",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=False,
        ),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("share_level", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cover_asset_id"],
            ["assets.id"],
            name=op.f("fk_collections_cover_asset_id_assets"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["creator_id"],
            ["users.id"],
            name=op.f("fk_collections_creator_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_collections_team_id_teams"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collections")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.create_index("ix_collections_team_id_id", ["team_id", "id"], unique=False)

    op.create_table(
        "collection_items",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "collection_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("asset_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column(
            "added_by_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("added_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["added_by_id"],
            ["users.id"],
            name=op.f("fk_collection_items_added_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["assets.id"],
            name=op.f("fk_collection_items_asset_id_assets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_collection_items_collection_id_collections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collection_items")),
        sa.UniqueConstraint(
            "collection_id", "asset_id", name=op.f("uq_collection_items_collection_id_asset_id")
        ),
        sa.UniqueConstraint(
            "collection_id", "position", name=op.f("uq_collection_items_collection_id_position")
        ),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("collection_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_collection_items_asset_id"), ["asset_id"], unique=False
        )

    op.add_column(
        "shot_images",
        sa.Column(
            "source_asset_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
    )
    op.create_index(
        op.f("ix_shot_images_source_asset_id"), "shot_images", ["source_asset_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_shot_images_source_asset_id"), table_name="shot_images")
    # SQLite 3.35+ drops a column in place (no rebuild); PostgreSQL always does.
    op.drop_column("shot_images", "source_asset_id")

    with op.batch_alter_table("collection_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_collection_items_asset_id"))

    op.drop_table("collection_items")
    with op.batch_alter_table("collections", schema=None) as batch_op:
        batch_op.drop_index("ix_collections_team_id_id")

    op.drop_table("collections")
    op.drop_table("asset_views")
    with op.batch_alter_table("asset_shares", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_asset_shares_user_id"))

    op.drop_table("asset_shares")
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.drop_index("ix_assets_team_id_id")
        batch_op.drop_index("ix_assets_prediction_id")

    op.drop_table("assets")
    op.drop_table("constellation_clusters")
    with op.batch_alter_table("library_events", schema=None) as batch_op:
        batch_op.drop_index("ix_library_events_at")

    op.drop_table("library_events")
    op.drop_table("library_event_counters")
