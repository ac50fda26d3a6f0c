"""generation bookkeeping

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("prediction_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("received_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    with op.batch_alter_table("shot_images", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("dispatch_claimed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "provider_output",
                sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column("checked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.create_index("ix_shot_images_status", ["status"], unique=False)

    with op.batch_alter_table("storyboard_selections", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("model", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "animation_metadata",
                sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column("dispatch_claimed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "provider_output",
                sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column("checked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.create_index(
            "ix_storyboard_selections_animation_status", ["animation_status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("storyboard_selections", schema=None) as batch_op:
        batch_op.drop_index("ix_storyboard_selections_animation_status")
        batch_op.drop_column("checked_at")
        batch_op.drop_column("provider_output")
        batch_op.drop_column("dispatch_claimed_at")
        batch_op.drop_column("animation_metadata")
        batch_op.drop_column("model")

    with op.batch_alter_table("shot_images", schema=None) as batch_op:
        batch_op.drop_index("ix_shot_images_status")
        batch_op.drop_column("checked_at")
        batch_op.drop_column("provider_output")
        batch_op.drop_column("dispatch_claimed_at")

    op.drop_table("webhook_deliveries")
