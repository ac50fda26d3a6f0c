"""Generation statuses: one row's status, moved only forward, and a prediction's effect on its rows.

A row is a shot image, a storyboard selection's animation or a library asset being
(re)generated (`Row`; `services.generation.kinds` describes each table). Its status
only moves forward (PENDING -> PROCESSING -> COMPLETE, FAILED or CANCELED): a late
"processing" from the provider never undoes "succeeded".

Each start of a generation is an attempt with its own `attempt_id` (`start_attempt`);
a row whose generation was discarded has none. Whatever the provider says is for
one attempt only: a create's answer is recorded on a row still in the attempt it
was sent for, and a prediction applies to the rows that recorded it (starting
again or discarding clears `prediction_id`).
"""

from __future__ import annotations

import secrets
from typing import Any, Literal

from sqlalchemy import bindparam, literal, union_all
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.library.tables import AssetRow, AssetStatus
from services.realtime.recording import note_projects_of_shots
from services.replicate.gateway import Prediction
from services.tables import (
    GenerationStatus,
    ShotImageRow,
    ShotRow,
    StoryboardSelectionRow,
    utcnow,
)

Row = ShotImageRow | StoryboardSelectionRow | AssetRow
Kind = Literal["image", "animation"]

_RANK = {
    GenerationStatus.PENDING: 0,
    GenerationStatus.PROCESSING: 1,
    GenerationStatus.COMPLETE: 2,
    GenerationStatus.FAILED: 2,
    GenerationStatus.CANCELED: 2,
}


# An asset's own status while and after a generation runs (`AssetStatus`).
_ASSET_STATUS = {
    GenerationStatus.PENDING: AssetStatus.GENERATING,
    GenerationStatus.PROCESSING: AssetStatus.GENERATING,
    GenerationStatus.COMPLETE: AssetStatus.READY,
    GenerationStatus.FAILED: AssetStatus.FAILED,
    GenerationStatus.CANCELED: AssetStatus.FAILED,
}


def status_of(row: Row) -> GenerationStatus | None:
    """The row's generation status: a shot image's `status`, a selection's
    `animation_status`, an asset's `generation_status`; None for a selection that was
    never animated or an asset never generated here."""
    if isinstance(row, ShotImageRow):
        value: str | None = row.status
    elif isinstance(row, AssetRow):
        value = row.generation_status
    else:
        value = row.animation_status
    return None if value is None else GenerationStatus(value)


def set_status(row: Row, status: GenerationStatus, *, error: str | None = None) -> None:
    """Set the row's status as given, forward or not (see `advance` for the forward-only
    move), replace its `error` (None clears it) and stamp `updated_at`.

    An asset's own `status` follows: GENERATING while it runs, READY once COMPLETE
    (its file stored), FAILED when it failed or was canceled.

    Changes the row in memory only: the caller's transaction writes it.
    """
    if isinstance(row, ShotImageRow):
        row.status = status
    elif isinstance(row, AssetRow):
        row.generation_status = status
        row.status = _ASSET_STATUS[status]
    else:
        row.animation_status = status
    row.error = error
    row.updated_at = utcnow()


def advance(row: Row, status: GenerationStatus, *, error: str | None = None) -> bool:
    """Move the row's status forward only; False if it would move back or sideways,
    or if the row has no generation (a selection never animated, or whose animation
    was discarded with its master image): there is nothing to move forward."""
    current = status_of(row)
    if current is None:
        return False
    if _RANK[status] <= _RANK[current] and status != current:
        return False
    if _RANK[current] == 2:
        return False
    set_status(row, status, error=error)
    return True


def reset_attempts(row: Row) -> None:
    """A fresh start: no claim, no open submission, no failed tries or resubmissions."""
    row.dispatch_claimed_by = None
    row.submitted_at = None
    row.failed_tries = 0
    row.resubmissions = 0


def new_attempt_id() -> str:
    """A token for a new attempt of a generation: 16 random hex digits."""
    return secrets.token_hex(8)


def start_attempt(row: Row) -> None:
    """Start the row's generation again as a new attempt: PENDING, with a new
    `attempt_id`, and nothing of an earlier attempt (no prediction, output waiting to
    be copied, claim, open submission, or counted tries). An answer still on its way
    for an earlier attempt is then canceled, not recorded (see `Dispatching._record`).

    Changes the row in memory only: the caller's transaction writes it.
    """
    row.attempt_id = new_attempt_id()
    row.prediction_id = None
    row.provider_output = None
    row.dispatch_claimed_at = None
    reset_attempts(row)
    row.copy_attempts = 0  # a new output gets all its tries
    set_status(row, GenerationStatus.PENDING)


async def load_row(
    session: AsyncSession,
    table: type[Row],
    row_id: int,
    *,
    fresh: bool = False,
    lock: bool = False,
) -> Row | None:
    """The row of `table` (ShotImageRow, StoryboardSelectionRow or AssetRow) with id `row_id`
    through `session` (its identity map first, then a SELECT); None if there is none.
    `fresh`: read it from the database again even if the session holds it (after
    waiting for a lock). `lock`: read it fresh and lock it for the transaction
    (FOR UPDATE on PostgreSQL; SQLite's writers hold the whole file already), so a
    write that changes or deletes it meanwhile is either seen or waits."""
    row = await session.get(
        table, row_id, populate_existing=fresh or lock, with_for_update=lock or None
    )
    assert row is None or isinstance(row, ShotImageRow | StoryboardSelectionRow | AssetRow)
    return row


async def apply_prediction(session: AsyncSession, prediction: Prediction) -> list[Row]:
    """Move the rows of a prediction forward to what the provider says of it.

    Every row (shot images, selections and assets) whose `prediction_id` is the prediction's
    gets `checked_at` stamped and its `failed_tries` reset: only the attempt that
    recorded the prediction has its id (a new attempt or a discard clears it), and a
    row without a generation is never moved (`advance`). A provider "succeeded"
    makes a row PROCESSING with `provider_output` set to the output's URLs (ours are
    COMPLETE only once copied; no URLs at all makes it FAILED); "failed" and
    "aborted" make it FAILED with the provider's error; a move back is ignored
    (`advance`). Returns the rows (possibly []); changes them in `session` only,
    the caller commits.
    """
    status = status_from_provider(prediction.status)
    rows = await _rows_following(session, prediction.id)
    for row in rows:
        row.checked_at = utcnow()
        row.failed_tries = 0
        if status is GenerationStatus.COMPLETE:
            # Succeeded at the provider; ours once the output is copied.
            if advance(row, GenerationStatus.PROCESSING):
                row.provider_output = prediction.output_urls or None
                if not prediction.output_urls:
                    advance(row, GenerationStatus.FAILED, error="The provider returned no output.")
        elif status is GenerationStatus.FAILED:
            advance(row, status, error=prediction.error or "The generation failed.")
        else:
            advance(row, status)
    return rows


# The statements every webhook runs, built once: building and compiling a select
# anew per delivery cost more than running it. Bound at execution: `prediction_id`.
_IMAGES_FOLLOWING = (
    select(ShotImageRow, ShotRow.project_id)
    .outerjoin(ShotRow, col(ShotRow.id) == col(ShotImageRow.shot_id))
    .where(col(ShotImageRow.prediction_id) == bindparam("prediction_id"))
)
_OTHERS_FOLLOWING: Any = union_all(
    select(literal(0), StoryboardSelectionRow.id).where(
        col(StoryboardSelectionRow.prediction_id) == bindparam("prediction_id")
    ),
    select(literal(1), AssetRow.id).where(
        col(AssetRow.prediction_id) == bindparam("prediction_id")
    ),
)


async def _rows_following(session: AsyncSession, prediction_id: str) -> list[Row]:
    """The rows whose `prediction_id` is `prediction_id`, in two statements however
    many tables hold one: the shot images with their shots' projects (told to the
    event recording, which then need not ask), and the IDs of the others, loaded
    only where there are some."""
    bound = {"prediction_id": prediction_id}
    images = await session.exec(_IMAGES_FOLLOWING, params=bound)
    rows: list[Row] = []
    projects: dict[int, int] = {}
    for image, project_id in images:
        rows.append(image)
        if project_id is not None:
            projects[image.shot_id] = project_id
    note_projects_of_shots(session, projects)
    found = await session.exec(_OTHERS_FOLLOWING, params=bound)
    ids: dict[int, list[int]] = {0: [], 1: []}
    for n, row_id in found:
        ids[n].append(row_id)
    if ids[0]:
        selections = select(StoryboardSelectionRow).where(
            col(StoryboardSelectionRow.id).in_(ids[0])
        )
        loaded_selections = await session.exec(selections)
        rows.extend(loaded_selections)
    if ids[1]:
        loaded_assets = await session.exec(select(AssetRow).where(col(AssetRow.id).in_(ids[1])))
        rows.extend(loaded_assets)
    return rows


def status_from_provider(provider_status: str) -> GenerationStatus:
    """Our status for a Replicate prediction status (starting, processing, succeeded,
    failed, canceled: https://replicate.com/docs/reference/http#predictions.get; also
    `aborted`, see `Prediction`). succeeded is COMPLETE here, though a row becomes
    COMPLETE only after its output is copied (`apply_prediction`); aborted is FAILED;
    a status Replicate may add later reads as PROCESSING, so a row keeps being followed.
    """
    return {
        "starting": GenerationStatus.PENDING,
        "processing": GenerationStatus.PROCESSING,
        "succeeded": GenerationStatus.COMPLETE,
        "failed": GenerationStatus.FAILED,
        "aborted": GenerationStatus.FAILED,
        "canceled": GenerationStatus.CANCELED,
    }.get(provider_status, GenerationStatus.PROCESSING)
