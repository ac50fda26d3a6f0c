"""generation attempts: claim owners, open submissions, failed tries, resubmissions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("shot_images", "storyboard_selections")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column(
                    "dispatch_claimed_by",
                    sqlmodel.sql.sqltypes.AutoString(length=128),
                    nullable=True,
                )
            )
            batch_op.add_column(
                sa.Column("submitted_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
            )
            batch_op.add_column(
                sa.Column("failed_tries", sa.Integer(), server_default="0", nullable=False)
            )
            batch_op.add_column(
                sa.Column("resubmissions", sa.Integer(), server_default="0", nullable=False)
            )


def downgrade() -> None:
    for table in reversed(TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("resubmissions")
            batch_op.drop_column("failed_tries")
            batch_op.drop_column("submitted_at")
            batch_op.drop_column("dispatch_claimed_by")
