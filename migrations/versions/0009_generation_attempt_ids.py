"""generation attempt ids: a create's prediction is recorded only on its own attempt

Each shot image and storyboard selection gets `attempt_id`, a token naming the
current attempt of its generation: set anew whenever a generation is started
(generateShotImages, animateShot, animateStoryboard, retryGeneration), cleared
when it is discarded (a new master image replaces the one an animation was made
from). The dispatcher reads it before it sends a create and records the answer
only on a row still in that attempt; otherwise the prediction is canceled.

Rows written before this revision have none (NULL). That is safe: a running one
keeps being followed by its prediction id, and starting or discarding it sets or
clears the token like any other's.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("shot_images", "storyboard_selections")


def upgrade() -> None:
    for table in TABLES:
        # A nullable column with no default: a plain ADD COLUMN on both engines, no
        # table rebuild on SQLite.
        op.add_column(
            table,
            sa.Column("attempt_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        )


def downgrade() -> None:
    for table in reversed(TABLES):
        # SQLite drops a plain column in place (3.35 and later): no rebuild, so the
        # tables keep AUTOINCREMENT (0008), which a batch rebuild would lose.
        op.drop_column(table, "attempt_id")
