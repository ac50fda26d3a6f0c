"""library event recipients: an ASSET_SHARED event names the user its share is to

`library_events.recipient_id` holds, for an ASSET_SHARED event, the user the share
was made, changed or revoked for, so the event reaches them even once the share row
is gone (a revoked share leaves nothing to read it from). NULL for every other
kind, and for the events stored before this revision (there are none of that kind).
No foreign key, like the table's other ids: events outlive what they name.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column with no default: a plain ADD COLUMN on both engines, no
    # table rebuild on SQLite (which would drop 0008's AUTOINCREMENT).
    op.add_column(
        "library_events",
        sa.Column(
            "recipient_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
    )


def downgrade() -> None:
    # SQLite 3.35 and later drops a plain column in place: no rebuild.
    op.drop_column("library_events", "recipient_id")
