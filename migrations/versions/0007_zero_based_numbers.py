"""variant numbers count from 0, as in the design

Images were numbered 1..n within an iteration; the design numbers them 0..n-1
(an iteration of six holds variants 0..5). Iterations already counted from 0
(iteration 0 is a shot's first batch), so only variant numbers move. Recorded
events keep the numbers they were written with.

The unique (shot_id, iteration_number, variant_number) constraint is checked row
by row on both engines, so a plain `variant_number - 1` can collide with a row
not yet moved. Each shift goes through negative numbers, which no stored row
uses: first every number is negated (distinct, and clear of every positive one),
then moved to its place.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # 1..n -> -1..-n -> 0..n-1
    op.execute("UPDATE shot_images SET variant_number = -variant_number")
    op.execute("UPDATE shot_images SET variant_number = -variant_number - 1")


def downgrade() -> None:
    # 0..n-1 -> -1..-n -> 1..n
    op.execute("UPDATE shot_images SET variant_number = -variant_number - 1")
    op.execute("UPDATE shot_images SET variant_number = -variant_number")
