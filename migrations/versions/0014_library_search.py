"""library search: full-text search over assets on both engines, and indexes for its sorts

PostgreSQL: `assets.search_vector`, a tsvector the database computes from the name
(weight A), tags (B), prompt (C) and description (D) with the `english`
configuration (a STORED generated column, so no code and no trigger can forget it);
a GIN index over (team_id, search_vector) (btree_gin), so a team's matches come from
one index; a GIN index over (team_id, tags) (jsonb_ops, for `?|` and `@>`); a covering btree index of the
columns the facets group, so `libraryFilters` is an index-only scan.

SQLite: `asset_search`, an FTS5 external-content table over the same four columns of
`assets` (porter stemming, so "running" finds "run"), kept in step by three triggers.

Both: btree indexes (team_id, sort key, id) for every sort of `library` and one on
`parent_id` (an asset's children, for `hasLineage`).

None of these objects is in the models (they cannot describe a generated tsvector or
an FTS5 table): `migrations.include_object` leaves them out of the drift check.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (name, columns) of the btree indexes both engines get.
BTREE = [
    ("ix_assets_library_created", "team_id, created_at, id"),
    ("ix_assets_library_name", "team_id, name, id"),
    ("ix_assets_library_duration", "team_id, duration, id"),
    ("ix_assets_library_views", "team_id, views, id"),
    ("ix_assets_library_parent", "parent_id"),
    # PUBLIC assets of every team (a search with includePublic and no team).
]
# PUBLIC assets of every team (a search with includePublic and no team), partial.
PUBLIC = (
    "CREATE INDEX ix_assets_library_public ON assets (created_at, id) WHERE share_level = 'PUBLIC'"
)

VECTOR = """
    setweight(to_tsvector('english'::regconfig, coalesce(name, '')), 'A')
    || setweight(to_tsvector('english'::regconfig, tags), 'B')
    || setweight(to_tsvector('english'::regconfig, coalesce(prompt, '')), 'C')
    || setweight(to_tsvector('english'::regconfig, coalesce(description, '')), 'D')
"""

FTS_COLUMNS = "name, description, prompt, tags"
# An external-content FTS5 table is told of every change; a 'delete' names the old values.
TRIGGERS = [
    """CREATE TRIGGER asset_search_insert AFTER INSERT ON assets BEGIN
        INSERT INTO asset_search(rowid, name, description, prompt, tags)
        VALUES (new.id, new.name, new.description, new.prompt, new.tags);
    END""",
    """CREATE TRIGGER asset_search_delete AFTER DELETE ON assets BEGIN
        INSERT INTO asset_search(asset_search, rowid, name, description, prompt, tags)
        VALUES ('delete', old.id, old.name, old.description, old.prompt, old.tags);
    END""",
    """CREATE TRIGGER asset_search_update
    AFTER UPDATE OF name, description, prompt, tags ON assets BEGIN
        INSERT INTO asset_search(asset_search, rowid, name, description, prompt, tags)
        VALUES ('delete', old.id, old.name, old.description, old.prompt, old.tags);
        INSERT INTO asset_search(rowid, name, description, prompt, tags)
        VALUES (new.id, new.name, new.description, new.prompt, new.tags);
    END""",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
        op.execute(
            f"ALTER TABLE assets ADD COLUMN search_vector tsvector "
            f"GENERATED ALWAYS AS ({VECTOR}) STORED"
        )
        op.execute(
            "CREATE INDEX ix_assets_library_text ON assets USING gin (team_id, search_vector)"
        )
        # With the team, like the text index: a global tags index hands a team's search
        # tens of thousands of other teams' rows to AND away (measured: 35 ms of 36).
        op.execute("CREATE INDEX ix_assets_library_tags ON assets USING gin (team_id, tags)")
        # libraryFilters reads every visible asset of a team: with what it groups (and
        # what the access rule reads) in the index, that is an index-only scan of the
        # team's entries instead of one heap page per asset (teams' rows interleave).
        # Tags are bounded (a few dozen short words), so an entry stays far below
        # btree's limit of about 2.7 kB.
        op.execute(
            "CREATE INDEX ix_assets_library_facets ON assets (team_id) INCLUDE (id, creator_id, "
            "share_level, category, mood, scene_type, kind, model, project_id, duration, "
            "created_at, tags)"
        )
        # DESC NULLS LAST is not the reverse of the ASC index (whose NULLs also come last).
        op.execute(
            "CREATE INDEX ix_assets_library_duration_desc "
            "ON assets (team_id, duration DESC NULLS LAST, id DESC)"
        )
    else:
        op.execute(
            f"CREATE VIRTUAL TABLE asset_search USING fts5({FTS_COLUMNS}, content='assets', "
            "content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')"
        )
        for trigger in TRIGGERS:
            op.execute(trigger)
        op.execute("INSERT INTO asset_search(asset_search) VALUES ('rebuild')")
    for name, columns in BTREE:
        op.execute(f"CREATE INDEX {name} ON assets ({columns})")
    op.execute(PUBLIC)


def downgrade() -> None:
    op.execute("DROP INDEX ix_assets_library_public")
    for name, _ in reversed(BTREE):
        op.execute(f"DROP INDEX {name}")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_assets_library_duration_desc")
        op.execute("DROP INDEX ix_assets_library_facets")
        op.execute("DROP INDEX ix_assets_library_tags")
        op.execute("DROP INDEX ix_assets_library_text")
        op.execute("ALTER TABLE assets DROP COLUMN search_vector")
        # btree_gin stays: other objects may use it, and it costs nothing.
    else:
        for trigger in ("asset_search_update", "asset_search_delete", "asset_search_insert"):
            op.execute(f"DROP TRIGGER {trigger}")
        op.execute("DROP TABLE asset_search")
