"""Dense numbering of scenes in a project and shots in a scene (1..n), and edits to their rows.

Creating without a number appends, creating with one inserts and shifts the rest,
deleting and reordering close the gaps. Callers hold the project lock
(`services.storyboard.projects.lock_project`), so numbers never race.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession

from services.errors import InvalidInput
from services.tables import (
    ProjectRow,
    SceneRow,
    ShotRow,
    utcnow,
)
from services.validation import (
    Checks,
)


def apply_field_changes(row: ProjectRow | SceneRow | ShotRow, changes: dict[str, Any]) -> None:
    """Set each attribute named in `changes` (row attribute names, already checked
    values) and, if there was any, stamp `updated_at`. In memory only: the caller's
    transaction writes it (and records the UPDATED event with these columns)."""
    for name, value in changes.items():
        setattr(row, name, value)
    if changes:
        row.updated_at = utcnow()


Numbered = TypeVar("Numbered", SceneRow, ShotRow)


async def renumber(
    session: AsyncSession, rows: Sequence[Numbered], attribute: str, *, skip: int | None = None
) -> None:
    """Number `rows` 1..n in the given order, leaving out `skip` for a row about to be inserted.

    `rows`: every scene of one project or every shot of one scene; `attribute`:
    "scene_number" or "shot_number". Only rows whose number changes are touched
    (their `updated_at` too). Two flushes: first every number becomes negative, so
    the unique (parent, number) constraint never sees two rows with one number
    half-way through. Call with the project locked; database errors propagate.
    """
    wanted = []
    number = 1
    for _ in rows:
        if number == skip:
            number += 1
        wanted.append(number)
        number += 1
    moving = [(row, n) for row, n in zip(rows, wanted, strict=True) if getattr(row, attribute) != n]
    if not moving:
        return
    for row, _ in moving:
        setattr(row, attribute, -getattr(row, attribute))
    await session.flush()
    now = utcnow()
    for row, n in moving:
        setattr(row, attribute, n)
        row.updated_at = now
    await session.flush()


def slot_for(
    checks: Checks, number: int | None, count: int, *, field: Sequence[str], label: str
) -> int:
    """The number a new row takes among `count` siblings: `count + 1` (appended) when
    `number` is None, else `number` itself, with OUT_OF_RANGE recorded on `checks` (at
    `field`, naming `label`) unless 1 <= number <= count + 1. Raises nothing."""
    if number is None:
        return count + 1
    return checks.number(number, field=field, low=1, high=count + 1, label=label)


def check_order(ids: Sequence[int], current: Sequence[int], what: str) -> None:
    """Raise InvalidInput (INVALID_ORDER, field `ids`) unless `ids` lists every id of
    `current` exactly once and nothing else; `what` names one item in the message
    ("scene of the project")."""
    if len(ids) != len(set(ids)) or set(ids) != set(current):
        raise InvalidInput(
            f"The new order must list every {what} exactly once ({len(current)} in all).",
            code="INVALID_ORDER",
            field=("ids",),
        )
