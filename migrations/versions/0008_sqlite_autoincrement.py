"""ids are never given out twice on SQLite

An SQLite INTEGER PRIMARY KEY without AUTOINCREMENT takes the highest id in use
plus one, so deleting the newest project let the next one take its id, and a
global ID a client kept (Project:8) silently named another object, maybe another
team's. With AUTOINCREMENT SQLite never gives an id out twice
(https://www.sqlite.org/autoinc.html). SQLite cannot add it to a table, so every
table whose id the database gives out is rebuilt (Alembic's batch mode: a new
table, the rows copied with their ids, the old one dropped, the new one renamed).
The studio table (one row, id 1) and the tables keyed by other tables' ids are
left as they are.

The rebuild needs foreign keys off (dropping a table with them on deletes its
rows first, cascading): it runs only inside `Database.schema_change`, which sets
that up and checks every reference before committing, and refuses otherwise.

SQLite starts counting from the highest id the new table holds. An id deleted
before this migration above that is not known, except where a recorded project
event names it: the count starts above the highest id the events name too.

PostgreSQL is unchanged: BIGSERIAL ids come from a sequence, which never goes back.

The downgrade rebuilds the tables without AUTOINCREMENT.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every table with an `id` the database gives out.
TABLES = (
    "users",
    "teams",
    "access_tokens",
    "team_invitations",
    "projects",
    "scenes",
    "shots",
    "shot_images",
    "storyboard_selections",
    "project_events",
)
# The node type project events record for the rows of a table.
NODE_TYPES = {
    "projects": "Project",
    "scenes": "Scene",
    "shots": "Shot",
    "shot_images": "ShotImage",
    "storyboard_selections": "StoryboardSelection",
}


def upgrade() -> None:
    _rebuild(autoincrement=True)
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    for table, node_type in NODE_TYPES.items():
        named = [
            bind.execute(
                sa.text("SELECT max(node_id) FROM project_events WHERE node_type = :node_type"),
                {"node_type": node_type},
            ).scalar()
        ]
        if table == "projects":
            named.append(
                bind.execute(sa.text("SELECT max(project_id) FROM project_events")).scalar()
            )
        highest = max((value for value in named if value is not None), default=None)
        if highest is None:
            continue
        count = bind.execute(
            sa.text("SELECT seq FROM sqlite_sequence WHERE name = :table"), {"table": table}
        ).scalar()
        if count is None:
            bind.execute(
                sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES (:table, :seq)"),
                {"table": table, "seq": highest},
            )
        elif count < highest:
            bind.execute(
                sa.text("UPDATE sqlite_sequence SET seq = :seq WHERE name = :table"),
                {"table": table, "seq": highest},
            )


def downgrade() -> None:
    _rebuild(autoincrement=False)


def _rebuild(*, autoincrement: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    if bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError(
            "Migration 0008 rebuilds tables and needs SQLite's foreign keys off: "
            "run it with `studio migrate` (migrations.upgrade_to_head)."
        )
    for table in TABLES:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ):
            pass
