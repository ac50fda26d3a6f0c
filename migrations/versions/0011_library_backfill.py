"""library assets for the images and clips stored before the library

From 0011 on, the generation engine makes an asset in the transaction that stores
each copy (`services.library.assets`). This revision makes the assets of what was
stored before, as that code would have, in set-based SQL on both engines:

1. one IMAGE asset per COMPLETE shot image with a stored copy (generated or
   imported) and no asset yet (an image added from the library has the asset it
   came from, and gets none); one VIDEO asset per COMPLETE animation with a stored
   clip and no asset of that clip yet. Team, creator (the project's owner), source
   links, name ("<title, cut at 120> · Scene n · Shot n · Iteration i · Variant v",
   or "... · Animation"), prompt, model, params (none for imports: client
   metadata), MIME type from the key's extension, READY, TEAM, created when the
   source row last changed (its copy was stored then, or later);
2. lineage: an image with a parent image is an EVOLVE child of that image's asset
   (or of the asset the parent image was added from), a clip an ANIMATE child of
   its master image's; then root, version and branch, one UPDATE per generation of
   descendants (each pass sets the children of rows already placed);
3. the prompt delta of each child against its parent: words are not SQL's, so it
   is computed here (a frozen copy of `services.library.lineage_words`) and written
   a batch at a time.

File sizes, dimensions, durations, frame rates and thumbnails need the files, which a
migration does not reach: `studio thumbnails` and the server's start-up task fill
them (`services.library.thumbnails`). Running it again adds nothing (each insert
skips rows that have an asset). The downgrade keeps the assets: the library is the
archive, and they may have been edited, shared or collected since.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000

_MIME = """CASE
    WHEN lower({key}) LIKE '%.png' THEN 'image/png'
    WHEN lower({key}) LIKE '%.jpg' OR lower({key}) LIKE '%.jpeg' THEN 'image/jpeg'
    WHEN lower({key}) LIKE '%.webp' THEN 'image/webp'
    WHEN lower({key}) LIKE '%.gif' THEN 'image/gif'
    WHEN lower({key}) LIKE '%.mp4' THEN 'video/mp4'
    WHEN lower({key}) LIKE '%.mov' THEN 'video/quicktime'
    WHEN lower({key}) LIKE '%.webm' THEN 'video/webm'
END"""

# Every NOT NULL column without a server default, as the model's defaults set them.
_COLUMNS = """team_id, creator_id, project_id, shot_image_id, selection_id, kind, name,
    storage_key, mime_type, prompt, model, generation_params, tags, status, share_level,
    can_duplicate, can_remix, version, branch_name, evolution_type, views,
    duplicate_count, remix_count, position_pinned, failed_tries, resubmissions,
    copy_attempts, created_at, updated_at"""
_DEFAULTS = """'[]', 'READY', 'TEAM', TRUE, TRUE, 1, 'main', 'ORIGINAL', 0, 0, 0, FALSE, 0, 0, 0"""

IMAGES = f"""
INSERT INTO assets ({_COLUMNS})
SELECT p.team_id, p.owner_id, p.id, i.id, NULL, 'IMAGE',
    substr(p.title, 1, 120) || ' · Scene ' || CAST(sc.scene_number AS TEXT)
        || ' · Shot ' || CAST(s.shot_number AS TEXT)
        || ' · Iteration ' || CAST(i.iteration_number AS TEXT)
        || ' · Variant ' || CAST(i.variant_number AS TEXT),
    i.storage_key, {_MIME.format(key="i.storage_key")}, i.iteration_prompt, i.model,
    CASE WHEN i.imported THEN NULL ELSE i.metadata END,
    {_DEFAULTS}, i.updated_at, i.updated_at
FROM shot_images i
JOIN shots s ON s.id = i.shot_id
JOIN scenes sc ON sc.id = s.scene_id
JOIN projects p ON p.id = s.project_id
WHERE i.status = 'COMPLETE' AND i.storage_key IS NOT NULL AND i.source_asset_id IS NULL
    AND NOT EXISTS (SELECT 1 FROM assets a WHERE a.shot_image_id = i.id)
ORDER BY i.id
"""  # noqa: S608 - fixed text, no input

CLIPS = f"""
INSERT INTO assets ({_COLUMNS})
SELECT p.team_id, p.owner_id, p.id, NULL, sel.id, 'VIDEO',
    substr(p.title, 1, 120) || ' · Scene ' || CAST(sc.scene_number AS TEXT)
        || ' · Shot ' || CAST(s.shot_number AS TEXT) || ' · Animation',
    sel.video_storage_key, {_MIME.format(key="sel.video_storage_key")},
    COALESCE(NULLIF(s.description, ''), m.iteration_prompt), sel.model,
    sel.animation_metadata,
    {_DEFAULTS}, sel.updated_at, sel.updated_at
FROM storyboard_selections sel
JOIN shots s ON s.id = sel.shot_id
JOIN scenes sc ON sc.id = s.scene_id
JOIN projects p ON p.id = sel.project_id
LEFT JOIN shot_images m ON m.id = sel.selected_image_id
WHERE sel.animation_status = 'COMPLETE' AND sel.video_storage_key IS NOT NULL
    AND NOT EXISTS (
        SELECT 1 FROM assets a
        WHERE a.selection_id = sel.id AND a.storage_key = sel.video_storage_key
    )
ORDER BY sel.id
"""  # noqa: S608 - fixed text, no input

# The asset standing for a shot image in lineage: its own, else the one it was added from.
_IMAGE_ASSET = """COALESCE(
    (SELECT own.id FROM assets own WHERE own.shot_image_id = {image}),
    (SELECT src.id FROM shot_images si JOIN assets src ON src.id = si.source_asset_id
        WHERE si.id = {image}))"""

EVOLVED = f"""
UPDATE assets SET evolution_type = 'EVOLVE', parent_id = {
    _IMAGE_ASSET.format(
        image="(SELECT ci.parent_image_id FROM shot_images ci WHERE ci.id = assets.shot_image_id)"
    )
}
WHERE assets.id > :floor AND assets.kind = 'IMAGE' AND assets.parent_id IS NULL
    AND EXISTS (
        SELECT 1 FROM shot_images ci
        WHERE ci.id = assets.shot_image_id AND ci.parent_image_id IS NOT NULL
    )
"""  # noqa: S608 - fixed text, no input

ANIMATED = f"""
UPDATE assets SET evolution_type = 'ANIMATE', parent_id = {
    _IMAGE_ASSET.format(
        image="(SELECT sel.selected_image_id FROM storyboard_selections sel "
        "WHERE sel.id = assets.selection_id)"
    )
}
WHERE assets.id > :floor AND assets.kind = 'VIDEO' AND assets.parent_id IS NULL
    AND assets.selection_id IS NOT NULL
"""  # noqa: S608 - fixed text, no input

# A child whose parent asset could not be found stays an ORIGINAL.
ORPHANS = """
UPDATE assets SET evolution_type = 'ORIGINAL'
WHERE assets.id > :floor AND assets.parent_id IS NULL AND assets.evolution_type <> 'ORIGINAL'
"""

# One generation of descendants: children of rows that are placed (roots, or rows
# whose root is set) take their parent's root, version + 1 and branch.
PLACE = """
UPDATE assets SET
    root_id = (SELECT COALESCE(p.root_id, p.id) FROM assets p WHERE p.id = assets.parent_id),
    version = (SELECT p.version + 1 FROM assets p WHERE p.id = assets.parent_id),
    branch_name = (SELECT p.branch_name FROM assets p WHERE p.id = assets.parent_id)
WHERE assets.id > :floor AND assets.parent_id IS NOT NULL AND assets.root_id IS NULL
    AND EXISTS (
        SELECT 1 FROM assets p
        WHERE p.id = assets.parent_id AND (p.parent_id IS NULL OR p.root_id IS NOT NULL)
    )
"""

CHILDREN = """
SELECT c.id, c.prompt, p.prompt FROM assets c JOIN assets p ON p.id = c.parent_id
WHERE c.id > :after AND c.id > :floor AND c.prompt_delta IS NULL
ORDER BY c.id LIMIT :batch
"""

# A frozen copy of services.library.lineage_words (a migration must not change
# with the code after it).
_WORD = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")


def _words(prompt: str | None) -> list[str]:
    seen: dict[str, None] = {}
    for match in _WORD.finditer(prompt or ""):
        seen.setdefault(match.group().lower(), None)
    return list(seen)


def _delta(old: str | None, new: str | None) -> dict[str, list[str]]:
    before, after = _words(old), _words(new)
    return {
        "added": [w for w in after if w not in set(before)],
        "removed": [w for w in before if w not in set(after)],
    }


def upgrade() -> None:
    connection = op.get_bind()
    floor = connection.execute(sa.text("SELECT COALESCE(MAX(id), 0) FROM assets")).scalar_one()
    connection.execute(sa.text(IMAGES))
    connection.execute(sa.text(CLIPS))
    connection.execute(sa.text(EVOLVED), {"floor": floor})
    connection.execute(sa.text(ANIMATED), {"floor": floor})
    connection.execute(sa.text(ORPHANS), {"floor": floor})
    while connection.execute(sa.text(PLACE), {"floor": floor}).rowcount:
        pass
    assets = sa.table(
        "assets",
        sa.column("id", sa.Integer()),
        sa.column("prompt_delta", sa.JSON().with_variant(postgresql.JSONB(), "postgresql")),
    )
    write = (
        sa.update(assets)
        .where(assets.c.id == sa.bindparam("child"))
        .values(prompt_delta=sa.bindparam("delta"))
    )
    after = 0
    while True:
        rows = connection.execute(
            sa.text(CHILDREN), {"after": after, "floor": floor, "batch": BATCH}
        ).all()
        if not rows:
            break
        connection.execute(
            write,
            [{"child": child, "delta": _delta(parent, prompt)} for child, prompt, parent in rows],
        )
        after = rows[-1][0]


def downgrade() -> None:
    # The assets stay (see the module): 0010's tables hold them as they are.
    pass
