"""Requests that start, cancel and retry generations (the mutations' side).

Each writes its rows PENDING, with all they need to be submitted, and commits
before anything is sent: the engine (`services.generation.engine`) submits them.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.accounts.access import Actor
from services.database import after_commit
from services.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    ProviderUnavailable,
)
from services.generation import catalog
from services.generation.catalog import GenerationModel, ModelKind
from services.generation.discards import stop_predictions
from services.generation.statuses import (
    Kind,
    Row,
    new_attempt_id,
    set_status,
    start_attempt,
    status_of,
)
from services.storyboard import shot_images, workflow
from services.storyboard.projects import lock_project
from services.storyboard.shot_images import (
    ImageDraft,
    Iteration,
    image_of_shot,
    next_iteration_number,
)
from services.storyboard.shots import shot_for_write
from services.tables import (
    GenerationStatus,
    ProjectRow,
    SceneRow,
    ShotImageRow,
    ShotRow,
    StoryboardSelectionRow,
    utcnow,
)
from services.validation import MAX_VARIANTS, PROMPT_MAX, Checks

DEFAULT_VARIANTS = 6
NOT_STORED_MESSAGE = (
    "This image has no copy in the studio's storage yet (an imported image is copied "
    "from its URL in the background, and that copy may have failed); only a stored "
    "image can be refined or animated."
)


if TYPE_CHECKING:
    from services.generation.engine import GenerationEngine


def _require_provider(generation_engine: GenerationEngine) -> None:
    if not generation_engine.provider_available():
        raise ProviderUnavailable(
            "The image and video provider is not answering; nothing was started. "
            "Try again in a minute."
        )


async def start_iteration(
    session: AsyncSession,
    actor: Actor,
    generation_engine: GenerationEngine,
    *,
    shot_id: int,
    prompt: str | None = None,
    parent_image_id: int | None = None,
    variant_count: int = DEFAULT_VARIANTS,
    model: str | None = None,
    params: dict[str, Any] | None = None,
    checks: Checks | None = None,
) -> Iteration:
    """The shot's next iteration: `variant_count` PENDING images, each with its own seed.

    The iteration is numbered 0 for the shot's first batch, then the latest plus one;
    its variants are numbered from 0 (six variants are 0..5).

    With `parent_image_id` (a COMPLETE image of the shot) it refines that image.
    """
    checks = checks if checks is not None else Checks()
    checks.number(
        variant_count, field=("variantCount",), low=1, high=MAX_VARIANTS, label="variant count"
    )
    kind = ModelKind.TEXT_TO_IMAGE if parent_image_id is None else ModelKind.IMAGE_TO_IMAGE
    chosen = catalog.choose(checks, model, kind)
    cleaned = chosen.clean_params(checks, params)
    given_prompt = (
        None if prompt is None else checks.text(prompt, field=("prompt",), max_length=PROMPT_MAX)
    )
    checks.raise_if_unresolvable()
    shot, project = await shot_for_write(session, actor, shot_id)
    final_prompt = given_prompt or shot.initial_prompt
    if final_prompt is None:
        checks.fail(
            "PROMPT_REQUIRED",
            "Give a prompt, or set the shot's initial prompt first.",
            ("prompt",),
        )
    if parent_image_id is not None:
        # Another team's image is reported exactly like one that does not exist.
        parent = await image_of_shot(
            session,
            actor,
            checks,
            parent_image_id,
            shot_id,
            field=("parentImageId",),
            role="parent image",
        )
        if parent is not None and parent.status != GenerationStatus.COMPLETE:
            checks.fail(
                "IMAGE_NOT_READY",
                "Only a COMPLETE image can be refined.",
                ("parentImageId",),
            )
        elif parent is not None and not parent.storage_key:
            checks.fail("IMAGE_NOT_STORED", NOT_STORED_MESSAGE, ("parentImageId",))
    checks.raise_if_any()
    _require_provider(generation_engine)
    assert final_prompt is not None

    number = await next_iteration_number(session, shot_id)
    rows = []
    for variant in range(variant_count):  # 0-based: six variants are 0..5
        seed = secrets.randbelow(2**31)
        metadata = {"model": chosen.replicate_model, "seed": seed, **cleaned}
        rows.append(
            ShotImageRow(
                shot_id=shot_id,
                iteration_number=number,
                variant_number=variant,
                status=GenerationStatus.PENDING,
                iteration_prompt=final_prompt,
                parent_image_id=parent_image_id,
                model=chosen.replicate_model,
                generation_metadata=metadata,
                attempt_id=new_attempt_id(),
            )
        )
    session.add_all(rows)
    shot.updated_at = utcnow()
    await workflow.advance(session, project)
    after_commit(session, generation_engine.kick)
    return Iteration(shot_id, number, final_prompt, parent_image_id, rows)


async def _selection_for_write(
    session: AsyncSession, actor: Actor, selection_id: int
) -> tuple[StoryboardSelectionRow, ProjectRow]:
    selection = await session.get(StoryboardSelectionRow, selection_id)
    if selection is None:
        raise NotFound("storyboard selection")
    project = await lock_project(session, actor, selection.project_id, what="storyboard selection")
    selection = await session.get(StoryboardSelectionRow, selection_id, populate_existing=True)
    if selection is None:
        raise NotFound("storyboard selection")
    return selection, project


def _queue_animation(
    selection: StoryboardSelectionRow, chosen: GenerationModel, params: dict[str, Any]
) -> None:
    selection.model = chosen.replicate_model
    selection.animation_metadata = {"model": chosen.replicate_model, **params}
    selection.animated_video_url = None
    selection.video_storage_key = None
    start_attempt(selection)


async def animate_shot(
    session: AsyncSession,
    actor: Actor,
    generation_engine: GenerationEngine,
    *,
    selection_id: int,
    model: str | None = None,
    params: dict[str, Any] | None = None,
    checks: Checks | None = None,
) -> StoryboardSelectionRow:
    """Animate a selection's master image into a clip; replaces a finished animation."""
    checks = checks if checks is not None else Checks()
    chosen = catalog.choose(checks, model, ModelKind.IMAGE_TO_VIDEO)
    cleaned = chosen.clean_params(checks, params)
    checks.raise_if_unresolvable()
    selection, _ = await _selection_for_write(session, actor, selection_id)
    master = await session.get(ShotImageRow, selection.selected_image_id)
    if master is None or not master.storage_key:
        checks.fail("IMAGE_NOT_STORED", NOT_STORED_MESSAGE, ("selectionId",))
    checks.raise_if_any()
    if (status := status_of(selection)) is not None and status.is_active:
        raise Conflict(
            "This shot is being animated already; cancel it first to start again.",
            code="ALREADY_RUNNING",
            field=("selectionId",),
        )
    _require_provider(generation_engine)
    _queue_animation(selection, chosen, cleaned)
    after_commit(session, generation_engine.kick)
    return selection


async def animate_storyboard(
    session: AsyncSession,
    actor: Actor,
    generation_engine: GenerationEngine,
    *,
    project_id: int,
    model: str | None = None,
    params: dict[str, Any] | None = None,
    only_missing: bool = True,
    checks: Checks | None = None,
) -> list[StoryboardSelectionRow]:
    """Animate every selection of the project: those without a finished clip, or all."""
    checks = checks if checks is not None else Checks()
    chosen = catalog.choose(checks, model, ModelKind.IMAGE_TO_VIDEO)
    cleaned = chosen.clean_params(checks, params)
    checks.raise_if_unresolvable()
    await lock_project(session, actor, project_id)
    checks.raise_if_any()
    selections = (
        await session.exec(
            select(StoryboardSelectionRow).where(StoryboardSelectionRow.project_id == project_id)
        )
    ).all()
    chosen_rows = []
    for selection in selections:
        status = status_of(selection)
        if status is not None and status.is_active:
            continue  # already on its way
        if only_missing and status is GenerationStatus.COMPLETE:
            continue
        chosen_rows.append(selection)
    masters = (
        await session.exec(
            select(ShotImageRow.id).where(
                col(ShotImageRow.id).in_([s.selected_image_id for s in chosen_rows]),
                col(ShotImageRow.storage_key).is_not(None),
            )
        )
    ).all()
    unstored = {s.selected_image_id for s in chosen_rows} - set(masters)
    if unstored:
        places = (
            await session.exec(
                select(SceneRow.scene_number, ShotRow.shot_number)
                .join(SceneRow, col(SceneRow.id) == col(ShotRow.scene_id))
                .where(
                    col(ShotRow.id).in_(
                        [s.shot_id for s in chosen_rows if s.selected_image_id in unstored]
                    )
                )
                .order_by(col(SceneRow.scene_number), col(ShotRow.shot_number))
            )
        ).all()
        named = "; ".join(f"scene {scene}, shot {shot}" for scene, shot in places[:5])
        if len(places) > 5:
            named += f" and {len(places) - 5} more"
        raise InvalidInput(
            f"The master image of {named} has no copy in the studio's storage (an imported "
            "image is copied from its URL in the background, and that copy may have "
            "failed: its `error` says why); only a stored image can be animated. Choose "
            "a generated or stored image as the master, or import the image again.",
            code="IMAGE_NOT_STORED",
            field=("projectId",),
        )
    if chosen_rows:
        _require_provider(generation_engine)
    for selection in chosen_rows:
        _queue_animation(selection, chosen, cleaned)
    if chosen_rows:
        after_commit(session, generation_engine.kick)
    return chosen_rows


async def _generation_for_write(
    session: AsyncSession, actor: Actor, kind: Kind, row_id: int
) -> Row:
    if kind == "image":
        image = await session.get(ShotImageRow, row_id)
        shot = await session.get(ShotRow, image.shot_id) if image else None
        if image is None or shot is None:
            raise NotFound("image")
        await lock_project(session, actor, shot.project_id, what="image")
        refreshed = await session.get(ShotImageRow, row_id, populate_existing=True)
        if refreshed is None:
            raise NotFound("image")
        return refreshed
    selection, _ = await _selection_for_write(session, actor, row_id)
    return selection


async def cancel(
    session: AsyncSession,
    actor: Actor,
    generation_engine: GenerationEngine,
    *,
    kind: Kind,
    row_id: int,
) -> Row:
    """Cancel a PENDING or PROCESSING generation, and its prediction once this commits.

    A create still on its way has no prediction id yet: its prediction is canceled
    when the answer comes (the row is no longer PENDING). Raises NotFound (no such
    generation the actor may see), PermissionDenied (VIEWER), Conflict NOT_RUNNING
    (it already finished).
    """
    row = await _generation_for_write(session, actor, kind, row_id)
    status = status_of(row)
    if status is None or not status.is_active:
        raise Conflict(
            f"Only a PENDING or PROCESSING generation can be canceled; this one is {status}.",
            code="NOT_RUNNING",
            field=("id",),
        )
    set_status(row, GenerationStatus.CANCELED, error=None)
    stop_predictions(session, generation_engine, [row.prediction_id])
    return row


async def retry(
    session: AsyncSession,
    actor: Actor,
    generation_engine: GenerationEngine,
    *,
    kind: Kind,
    row_id: int,
) -> Row:
    """Start a FAILED or CANCELED generation again, with the same parameters, as a new
    attempt (`start_attempt`): an answer still on its way for the old one is canceled."""
    row = await _generation_for_write(session, actor, kind, row_id)
    if isinstance(row, ShotImageRow) and row.imported:
        raise Conflict(
            "This image was recorded by addShotImages, not generated here, so it cannot be "
            "retried; use generateShotImages to make new images.",
            code="IMPORTED_IMAGE",
            field=("id",),
        )
    status = status_of(row)
    if status not in (GenerationStatus.FAILED, GenerationStatus.CANCELED):
        raise Conflict(
            f"Only a FAILED or CANCELED generation can be retried; this one is {status}.",
            code="NOT_RETRYABLE",
            field=("id",),
        )
    _require_provider(generation_engine)
    start_attempt(row)
    after_commit(session, generation_engine.kick)
    return row


async def add_shot_images(
    session: AsyncSession,
    actor: Actor,
    generation_engine: GenerationEngine | None,
    *,
    shot_id: int,
    iteration_prompt: str,
    images: Sequence[ImageDraft],
    parent_image_id: int | None = None,
    checks: Checks | None = None,
) -> Iteration:
    """Record images made elsewhere (`shot_images.add_shot_images`), then copy them in.

    Once this commits, the engine (when this server runs one) copies the given
    URLs into storage in the background. Raises what `shot_images.add_shot_images`
    raises.
    """
    iteration = await shot_images.add_shot_images(
        session,
        actor,
        shot_id=shot_id,
        iteration_prompt=iteration_prompt,
        images=images,
        parent_image_id=parent_image_id,
        checks=checks,
    )
    if generation_engine is not None:
        after_commit(session, generation_engine.kick)
    return iteration
