"""library lookups: indexes on the columns that refer to files and rows

`deleteAsset` asks whether any asset, shot image or selection still uses a file
before deleting it; deleting a project, selection, lineage root or user sets
assets' references to NULL; deleting an asset clears collection covers. Each of
those looked through a whole table without these indexes.

Plain CREATE INDEX on both engines (no batch rebuild: SQLite keeps its tables'
AUTOINCREMENT and the search triggers of 0014).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_assets_storage_key", "assets", "storage_key"),
    ("ix_assets_thumbnail_key", "assets", "thumbnail_key"),
    ("ix_assets_root_id", "assets", "root_id"),
    ("ix_assets_project_id", "assets", "project_id"),
    ("ix_assets_selection_id", "assets", "selection_id"),
    ("ix_assets_creator_id", "assets", "creator_id"),
    ("ix_collections_cover_asset_id", "collections", "cover_asset_id"),
    ("ix_shot_images_storage_key", "shot_images", "storage_key"),
    ("ix_storyboard_selections_video_storage_key", "storyboard_selections", "video_storage_key"),
)


def upgrade() -> None:
    for name, table, column in INDEXES:
        op.create_index(name, table, [column], unique=False)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
