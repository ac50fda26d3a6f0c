"""variant numbers count from 0, as in the design

Images were numbered 1..n within an iteration; the design numbers them 0..n-1
(an iteration of six holds variants 0..5). Iterations already counted from 0
(iteration 0 is a shot's first batch), so only variant numbers move. Recorded
events keep the numbers they were written with.

The rule, per iteration (the images of one shot sharing an iteration number):

- An iteration whose numbers are all 1 or more moves down by one: 1..12 becomes
  0..11, and gaps stay gaps (variants 1, 3, 4 become 0, 2, 3). Every API before
  this one accepted 1..12 only (addShotImages refused 0 and 13 with OUT_OF_RANGE;
  generateShotImages numbered 1..n), so this is every iteration the API wrote.
- An iteration holding a number below 1 (0 or negative) could only come from a
  direct write to the database, or from a server already numbering from 0; it is
  left exactly as it is and logged. Moving it by one would turn its 0 into -1.
  A number above 12 in an iteration that moves moves with it (13 becomes 12).

The downgrade is the same rule the other way: an iteration whose numbers are all
0 or more moves up by one, one holding a negative number stays. An upgrade then a
downgrade gives back every iteration the API wrote.

The unique (shot_id, iteration_number, variant_number) constraint is checked row
by row on both engines, so a plain `variant_number - 1` can collide with a row
not yet moved. The moving iterations' numbers first go below every number a
stored row uses (v becomes v - 1 - offset, offset > the largest stored number
minus the smallest), then up by `offset`.

On PostgreSQL the table is locked (SHARE ROW EXCLUSIVE: reads go on, every
insert, update and delete waits until the migration commits), so no row is
written between the two statements, nor after the iterations to skip are
chosen. A server of the old version that is still running writes 1-based rows
after the migration commits: stop every server before `studio migrate`. On
SQLite the migration's `BEGIN IMMEDIATE` holds the file's write lock throughout.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

logger = logging.getLogger("alembic.runtime.migration")

_images = sa.table(
    "shot_images",
    sa.column("id", sa.Integer),
    sa.column("shot_id", sa.Integer),
    sa.column("iteration_number", sa.Integer),
    sa.column("variant_number", sa.Integer),
)


def upgrade() -> None:
    _shift(-1, lowest_that_moves=1)


def downgrade() -> None:
    _shift(+1, lowest_that_moves=0)


def _shift(by: int, *, lowest_that_moves: int) -> None:
    """Add `by` to the variant numbers of every iteration whose numbers are all
    at least `lowest_that_moves`; leave the other iterations as they are."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("LOCK TABLE shot_images IN SHARE ROW EXCLUSIVE MODE")
    number = _images.c.variant_number
    iteration = sa.tuple_(_images.c.shot_id, _images.c.iteration_number)
    lowest, highest = bind.execute(sa.select(sa.func.min(number), sa.func.max(number))).one()
    if lowest is None:
        return  # no images
    kept = [
        (row.shot_id, row.iteration_number)
        for row in bind.execute(
            sa.select(_images.c.shot_id, _images.c.iteration_number)
            .group_by(_images.c.shot_id, _images.c.iteration_number)
            .having(sa.func.min(number) < lowest_that_moves)
            .order_by(_images.c.shot_id, _images.c.iteration_number)
        )
    ]
    if kept:
        logger.warning(
            "shot_images: %d iteration(s) hold a variant number below %d and keep their "
            "numbers: (shot_id, iteration_number) %s",
            len(kept),
            lowest_that_moves,
            kept[:20],
        )
    moves = sa.true() if not kept else sa.not_(iteration.in_(kept))
    # Below every stored number first (no collision with a row not yet moved), then
    # to the place: v -> v + by - offset -> v + by.
    offset = highest - lowest + 2
    bind.execute(sa.update(_images).where(moves).values(variant_number=number + by - offset))
    bind.execute(sa.update(_images).where(moves).values(variant_number=number + offset))
