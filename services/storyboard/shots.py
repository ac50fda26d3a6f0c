"""Shots of a scene: created, edited, deleted and reordered, numbered 1..n within their scene."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from services.accounts.access import Actor
from services.storyboard import workflow
from services.storyboard.numbering import (
    apply_field_changes,
    check_order,
    renumber,
    slot_for,
)
from services.storyboard.projects import lock_parent_of
from services.storyboard.scenes import scene_for_write, shots_of
from services.tables import (
    ProjectRow,
    SceneRow,
    ShotRow,
    utcnow,
)
from services.validation import (
    DESCRIPTION_MAX,
    MAX_SHOTS_PER_SCENE,
    PROMPT_MAX,
    UNCHANGED,
    Checks,
    Maybe,
)


async def shot_for_write(
    session: AsyncSession, actor: Actor, shot_id: int
) -> tuple[ShotRow, ProjectRow]:
    """The shot, read again after its project is locked for this transaction, and the
    project. Raises NotFound if the shot does not exist, was deleted meanwhile or is
    in a team the actor is not in; PermissionDenied for a VIEWER."""
    return await lock_parent_of(session, actor, ShotRow, shot_id, "shot")


async def create_shot(
    session: AsyncSession,
    actor: Actor,
    *,
    scene_id: int,
    shot_number: int | None = None,
    description: str | None = None,
    initial_prompt: str | None = None,
    checks: Checks | None = None,
) -> ShotRow:
    """A shot in the scene: appended, or inserted at `shot_number` (later shots move
    down one). Blank texts become None.

    Locks the project and flushes (the shot has its id); the caller's transaction
    commits. Raises InvalidInput, or ValidationFailed for several problems (TOO_LONG,
    INVALID_CHARACTERS, OUT_OF_RANGE for a number outside 1..n+1, LIMIT_REACHED at
    `MAX_SHOTS_PER_SCENE` shots); NotFound for a scene the actor cannot see;
    PermissionDenied for a VIEWER.
    """
    checks = checks if checks is not None else Checks()
    description = checks.optional_text(
        description, field=("description",), max_length=DESCRIPTION_MAX
    )
    initial_prompt = checks.optional_text(
        initial_prompt, field=("initialPrompt",), max_length=PROMPT_MAX, label="initial prompt"
    )
    checks.raise_if_unresolvable()
    scene, _ = await scene_for_write(session, actor, scene_id)
    siblings = await shots_of(session, scene_id)
    number = slot_for(
        checks, shot_number, len(siblings), field=("shotNumber",), label="shot number"
    )
    if len(siblings) >= MAX_SHOTS_PER_SCENE:
        checks.fail(
            "LIMIT_REACHED", f"A scene holds at most {MAX_SHOTS_PER_SCENE} shots.", ("sceneId",)
        )
    checks.raise_if_any()
    await renumber(session, siblings, "shot_number", skip=number)
    shot = ShotRow(
        scene_id=scene_id,
        project_id=scene.project_id,
        shot_number=number,
        description=description,
        initial_prompt=initial_prompt,
    )
    session.add(shot)
    scene.updated_at = utcnow()
    await session.flush()
    return shot


async def update_shot(
    session: AsyncSession,
    actor: Actor,
    *,
    shot_id: int,
    description: Maybe[str | None] = UNCHANGED,
    initial_prompt: Maybe[str | None] = UNCHANGED,
    checks: Checks | None = None,
) -> ShotRow:
    """Change the given fields (UNCHANGED: left as is; blank text: None).

    Locks the project; the caller's transaction commits. Raises InvalidInput or
    ValidationFailed (TOO_LONG, INVALID_CHARACTERS); NotFound for a shot the actor
    cannot see; PermissionDenied for a VIEWER.
    """
    checks = checks if checks is not None else Checks()
    changes: dict[str, Any] = {}
    if description is not UNCHANGED:
        changes["description"] = checks.optional_text(
            description, field=("description",), max_length=DESCRIPTION_MAX
        )
    if initial_prompt is not UNCHANGED:
        changes["initial_prompt"] = checks.optional_text(
            initial_prompt, field=("initialPrompt",), max_length=PROMPT_MAX, label="initial prompt"
        )
    checks.raise_if_unresolvable()
    shot, _ = await shot_for_write(session, actor, shot_id)
    checks.raise_if_any()
    apply_field_changes(shot, changes)
    return shot


async def delete_shot(session: AsyncSession, actor: Actor, *, shot_id: int) -> ShotRow:
    """Delete a shot with its images and selection; later shots move up.

    Returns the deleted row. Locks the project and may advance its workflow status;
    the caller's transaction commits. Raises NotFound for a shot the actor cannot
    see, PermissionDenied for a VIEWER.
    """
    shot, project = await shot_for_write(session, actor, shot_id)
    await session.delete(shot)
    await session.flush()
    await renumber(session, await shots_of(session, shot.scene_id), "shot_number")
    await workflow.advance(session, project)
    return shot


async def reorder_shots(
    session: AsyncSession, actor: Actor, *, scene_id: int, shot_ids: Sequence[int]
) -> SceneRow:
    """Renumber the scene's shots 1..n in the order of `shot_ids`; the scene.

    Locks the project; the caller's transaction commits. Raises InvalidInput
    (INVALID_ORDER) unless `shot_ids` lists every shot of the scene exactly once;
    NotFound for a scene the actor cannot see; PermissionDenied for a VIEWER.
    """
    scene, _ = await scene_for_write(session, actor, scene_id)
    shots = await shots_of(session, scene_id)
    check_order(shot_ids, [s.id for s in shots if s.id is not None], "shot of the scene")
    by_id = {s.id: s for s in shots}
    await renumber(session, [by_id[i] for i in shot_ids], "shot_number")
    scene.updated_at = utcnow()
    return scene
