"""image copies: imported images, bounded copy tries

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("shot_images", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("imported", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("copy_attempts", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("storyboard_selections", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("copy_attempts", sa.Integer(), nullable=False, server_default="0")
        )
    # Earlier imports: the engine never sets `image_url` (it clears it once the
    # output is stored), so a URL without a prediction is a client's.
    op.execute(
        "UPDATE shot_images SET imported = true "
        "WHERE image_url IS NOT NULL AND prediction_id IS NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("storyboard_selections", schema=None) as batch_op:
        batch_op.drop_column("copy_attempts")
    with op.batch_alter_table("shot_images", schema=None) as batch_op:
        batch_op.drop_column("copy_attempts")
        batch_op.drop_column("imported")
