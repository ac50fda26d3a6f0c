"""Generations that stop being wanted, and their predictions stopped at the provider.

A running generation (PENDING or PROCESSING) is discarded when someone cancels it
(`requests.cancel`), when its row goes with the project, scene, shot or image
deleted, or when a new master image replaces the one a shot's animation is made
from. The write that discards it also schedules, with `after_commit`, a cancel of
every prediction the discarded rows were following (`stop_predictions`): nothing
is sent for a write that rolls back, and a provider that keeps running (and
billing) work nobody will see is told to stop.

A create still on its way has no prediction id to cancel yet: when its answer
comes, the dispatcher finds the row gone, no longer PENDING or in another attempt,
and cancels the prediction instead of recording it (`Dispatching._record`).

The rows are read locked (FOR UPDATE on PostgreSQL) under the project's lock, so
a prediction id the dispatcher records meanwhile is either seen here or recorded
after this write, which the dispatcher then sees.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.accounts.access import Actor
from services.database import after_commit
from services.storyboard import projects, scenes, shot_images, shots
from services.storyboard.shot_images import image_for_write, selection_for_write
from services.tables import (
    GenerationStatus,
    SceneRow,
    ShotImageRow,
    ShotRow,
    StoryboardSelectionRow,
)

if TYPE_CHECKING:
    from services.generation.engine import GenerationEngine

RUNNING = (GenerationStatus.PENDING, GenerationStatus.PROCESSING)


def stop_predictions(
    session: AsyncSession,
    generation_engine: GenerationEngine | None,
    prediction_ids: Iterable[str | None],
) -> None:
    """Cancel each prediction at the provider once this write commits; never if it rolls back.

    `prediction_ids` may hold None (a generation not submitted yet, or whose create
    is on its way): skipped. The cancels run in the background, best effort
    (`GenerationEngine.cancel_remote`). Without an engine (a server that runs no
    generation) nothing is sent.
    """
    if generation_engine is None:
        return
    for prediction_id in dict.fromkeys(p for p in prediction_ids if p):
        after_commit(session, functools.partial(generation_engine.cancel_remote, prediction_id))


async def running_predictions(session: AsyncSession, shot_ids: Any) -> list[str]:
    """The prediction ids of every running image and animation of the shots, rows locked.

    `shot_ids`: a list of shot ids or a subquery of them. Rows still waiting for
    their create's answer have no id: the dispatcher cancels theirs (module docstring).
    """
    found: list[str] = []
    for table, status_column in (
        (ShotImageRow, col(ShotImageRow.status)),
        (StoryboardSelectionRow, col(StoryboardSelectionRow.animation_status)),
    ):
        statement = (
            select(table.prediction_id)
            .where(
                col(table.shot_id).in_(shot_ids),
                status_column.in_(RUNNING),
                col(table.prediction_id).is_not(None),
            )
            .with_for_update()
        )
        found.extend(str(prediction_id) for prediction_id in await session.exec(statement))
    return found


async def delete_project(
    session: AsyncSession,
    actor: Actor,
    generation_engine: GenerationEngine | None,
    *,
    project_id: int,
) -> None:
    """`projects.delete_project`, and the project's running predictions canceled once it commits.

    Raises what `projects.delete_project` raises (nothing is canceled then).
    """
    await projects.lock_project(session, actor, project_id)
    stopping = await running_predictions(
        session, select(ShotRow.id).where(ShotRow.project_id == project_id)
    )
    await projects.delete_project(session, actor, project_id=project_id)
    stop_predictions(session, generation_engine, stopping)


async def delete_scene(
    session: AsyncSession,
    actor: Actor,
    generation_engine: GenerationEngine | None,
    *,
    scene_id: int,
) -> SceneRow:
    """`scenes.delete_scene`, and its shots' running predictions canceled once it commits.

    Returns the deleted scene; raises what `scenes.delete_scene` raises.
    """
    await scenes.scene_for_write(session, actor, scene_id)
    stopping = await running_predictions(
        session, select(ShotRow.id).where(ShotRow.scene_id == scene_id)
    )
    scene = await scenes.delete_scene(session, actor, scene_id=scene_id)
    stop_predictions(session, generation_engine, stopping)
    return scene


async def delete_shot(
    session: AsyncSession,
    actor: Actor,
    generation_engine: GenerationEngine | None,
    *,
    shot_id: int,
) -> ShotRow:
    """`shots.delete_shot`, and the shot's running predictions canceled once it commits.

    Returns the deleted shot; raises what `shots.delete_shot` raises.
    """
    await shots.shot_for_write(session, actor, shot_id)
    stopping = await running_predictions(session, [shot_id])
    shot = await shots.delete_shot(session, actor, shot_id=shot_id)
    stop_predictions(session, generation_engine, stopping)
    return shot


async def delete_shot_image(
    session: AsyncSession,
    actor: Actor,
    generation_engine: GenerationEngine | None,
    *,
    image_id: int,
) -> ShotImageRow:
    """`shot_images.delete_shot_image`, and the image's prediction canceled once it commits
    if it was still running.

    Returns the deleted image; raises what `shot_images.delete_shot_image` raises.
    """
    await image_for_write(session, actor, image_id)
    image = await session.get(ShotImageRow, image_id, with_for_update=True, populate_existing=True)
    running = image is not None and image.status in RUNNING
    deleted = await shot_images.delete_shot_image(session, actor, image_id=image_id)
    if running:
        stop_predictions(session, generation_engine, [deleted.prediction_id])
    return deleted


async def select_master_shot(
    session: AsyncSession,
    actor: Actor,
    generation_engine: GenerationEngine | None,
    *,
    shot_id: int,
    image_id: int,
) -> StoryboardSelectionRow:
    """`shot_images.select_master_shot`; a running animation of the old master is
    discarded there, and its prediction canceled once this commits.

    Returns the selection; raises what `shot_images.select_master_shot` raises.
    """
    await shots.shot_for_write(session, actor, shot_id)
    before = await selection_for_write(session, shot_id)
    old_master = before.selected_image_id if before is not None else None
    stopping = (
        before.prediction_id if before is not None and before.animation_status in RUNNING else None
    )
    selection = await shot_images.select_master_shot(
        session, actor, shot_id=shot_id, image_id=image_id
    )
    if old_master is not None and selection.selected_image_id != old_master:
        stop_predictions(session, generation_engine, [stopping])
    return selection
