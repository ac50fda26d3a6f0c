"""team events: each change a team's projects list and team page show, numbered per team

`team_events` holds the `teamEvents` feed (projects created, updated and deleted,
members joining, leaving or changing role, invitations made and used up), numbered
per team with `team_event_counters`, as `library_events` does for the library.
No foreign keys, like the other event tables: events outlive what they name. The
events of changes made before this revision are not written (a feed starts from the
state as it is).

New tables and an index only: no rebuild of an existing table on SQLite.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "team_event_counters",
        sa.Column("team_id", _ID, autoincrement=False, nullable=False),
        sa.Column("last_sequence", _ID, nullable=False),
        sa.PrimaryKeyConstraint("team_id", name=op.f("pk_team_event_counters")),
    )
    op.create_table(
        "team_events",
        sa.Column("id", _ID, nullable=False),
        sa.Column("team_id", _ID, nullable=False),
        sa.Column("sequence", _ID, nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("node_type", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("node_id", _ID, nullable=False),
        sa.Column(
            "changes",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_team_events")),
        sa.UniqueConstraint("team_id", "sequence", name=op.f("uq_team_events_team_id_sequence")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_team_events_at", "team_events", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_team_events_at", table_name="team_events")
    op.drop_table("team_events")
    op.drop_table("team_event_counters")
