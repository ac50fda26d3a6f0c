"""the constellation map: what each asset's stored position was computed from

`assets.constellation_basis` is a short digest of the tags and category an asset's
position and cluster were computed from (`services.library.constellation_layout`).
When they change, by any path, the digest no longer matches and the next layout
places the asset again (unless it is pinned), so no writer has to remember to
clear the position.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (no batch rebuild, which would drop 0008's AUTOINCREMENT on SQLite).
    op.add_column(
        "assets",
        sa.Column(
            "constellation_basis", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True
        ),
    )


def downgrade() -> None:
    # SQLite 3.35+ drops a column in place, keeping AUTOINCREMENT (as 0010's downgrade).
    op.drop_column("assets", "constellation_basis")
