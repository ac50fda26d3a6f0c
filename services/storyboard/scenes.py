"""Scenes of a project: created (with their first shots), edited, deleted, reordered."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.accounts.access import Actor
from services.storyboard import workflow
from services.storyboard.numbering import (
    apply_field_changes,
    check_order,
    renumber,
    slot_for,
)
from services.storyboard.projects import lock_parent_of, lock_project
from services.tables import (
    ProjectRow,
    SceneRow,
    ShotRow,
    utcnow,
)
from services.validation import (
    DESCRIPTION_MAX,
    MAX_SCENES_PER_PROJECT,
    MAX_SHOTS_PER_SCENE,
    PROMPT_MAX,
    TITLE_MAX,
    UNCHANGED,
    Checks,
    Maybe,
)


@dataclass(frozen=True)
class ShotDraft:
    """A shot to create along with its scene."""

    shot_number: int | None = None
    description: str | None = None
    initial_prompt: str | None = None


async def scenes_of(session: AsyncSession, project_id: int) -> list[SceneRow]:
    """The project's scenes in scene-number order ([] for none or no such project).
    No access check: callers have checked or locked the project."""
    result = await session.exec(
        select(SceneRow)
        .where(SceneRow.project_id == project_id)
        .order_by(col(SceneRow.scene_number))
    )
    return list(result.all())


async def shots_of(session: AsyncSession, scene_id: int) -> list[ShotRow]:
    """The scene's shots in shot-number order ([] for none or no such scene).
    No access check: callers have checked or locked the project."""
    result = await session.exec(
        select(ShotRow).where(ShotRow.scene_id == scene_id).order_by(col(ShotRow.shot_number))
    )
    return list(result.all())


async def scene_for_write(
    session: AsyncSession, actor: Actor, scene_id: int
) -> tuple[SceneRow, ProjectRow]:
    """The scene, read again after its project is locked for this transaction, and the
    project. Raises NotFound if the scene does not exist, was deleted meanwhile or is
    in a team the actor is not in; PermissionDenied for a VIEWER."""
    return await lock_parent_of(session, actor, SceneRow, scene_id, "scene")


async def create_scene(
    session: AsyncSession,
    actor: Actor,
    *,
    project_id: int,
    title: str,
    description: str | None = None,
    scene_number: int | None = None,
    shots: Sequence[ShotDraft] = (),
    checks: Checks | None = None,
) -> SceneRow:
    """A scene (appended, or inserted at `scene_number`), with its shots.

    Later scenes move down one; `shots` become shots 1..n (numbered drafts at their
    `shot_number`, the rest after them in the order given). Locks the project, flushes
    (the scene has its id) and may advance the project's workflow status; the
    caller's transaction commits. Raises InvalidInput, or ValidationFailed for several
    problems (BLANK, TOO_LONG, OUT_OF_RANGE, DUPLICATE_NUMBER, LIMIT_REACHED: at most
    `MAX_SCENES_PER_PROJECT` scenes and `MAX_SHOTS_PER_SCENE` shots); NotFound for a
    project the actor cannot see; PermissionDenied for a VIEWER. `checks` may carry
    problems found earlier (an ID that did not decode), reported with these.
    """
    checks = checks if checks is not None else Checks()
    title = checks.text(title, field=("title",), max_length=TITLE_MAX)
    description = checks.optional_text(
        description, field=("description",), max_length=DESCRIPTION_MAX
    )
    if len(shots) > MAX_SHOTS_PER_SCENE:
        checks.fail(
            "LIMIT_REACHED", f"A scene holds at most {MAX_SHOTS_PER_SCENE} shots.", ("shots",)
        )
    drafts = _check_drafts(checks, shots)
    checks.raise_if_unresolvable()
    project = await lock_project(session, actor, project_id)
    siblings = await scenes_of(session, project_id)
    number = slot_for(
        checks, scene_number, len(siblings), field=("sceneNumber",), label="scene number"
    )
    if len(siblings) >= MAX_SCENES_PER_PROJECT:
        checks.fail(
            "LIMIT_REACHED",
            f"A project holds at most {MAX_SCENES_PER_PROJECT} scenes.",
            ("projectId",),
        )
    checks.raise_if_any()

    await renumber(session, siblings, "scene_number", skip=number)
    scene = SceneRow(
        project_id=project_id, scene_number=number, title=title, description=description
    )
    session.add(scene)
    await session.flush()
    assert scene.id is not None
    for position, draft in enumerate(drafts, start=1):
        session.add(
            ShotRow(
                scene_id=scene.id,
                project_id=project_id,
                shot_number=position,
                description=draft.description,
                initial_prompt=draft.initial_prompt,
            )
        )
    await workflow.advance(session, project)
    return scene


def _check_drafts(checks: Checks, shots: Sequence[ShotDraft]) -> list[ShotDraft]:
    """Clean the drafts and put them in order: numbered ones at their numbers, the rest after."""
    cleaned: list[tuple[int, ShotDraft]] = []
    for index, draft in enumerate(shots):
        where = ("shots", str(index))
        if draft.shot_number is not None:
            checks.number(
                draft.shot_number,
                field=(*where, "shotNumber"),
                low=1,
                high=len(shots),
                label="shot number",
            )
        cleaned.append(
            (
                draft.shot_number if draft.shot_number is not None else len(shots) + 1 + index,
                ShotDraft(
                    shot_number=draft.shot_number,
                    description=checks.optional_text(
                        draft.description, field=(*where, "description"), max_length=DESCRIPTION_MAX
                    ),
                    initial_prompt=checks.optional_text(
                        draft.initial_prompt,
                        field=(*where, "initialPrompt"),
                        max_length=PROMPT_MAX,
                        label="initial prompt",
                    ),
                ),
            )
        )
    seen: set[int] = set()
    for index, draft in enumerate(shots):
        if draft.shot_number is None:
            continue
        if draft.shot_number in seen:
            checks.fail(
                "DUPLICATE_NUMBER",
                f"Shot number {draft.shot_number} appears twice in the list.",
                ("shots", str(index), "shotNumber"),
            )
        seen.add(draft.shot_number)
    return [draft for _, draft in sorted(cleaned, key=lambda pair: pair[0])]


async def update_scene(
    session: AsyncSession,
    actor: Actor,
    *,
    scene_id: int,
    title: Maybe[str] = UNCHANGED,
    description: Maybe[str | None] = UNCHANGED,
    checks: Checks | None = None,
) -> SceneRow:
    """Change the given fields (UNCHANGED: left as is; a blank description: None).

    Locks the project; the caller's transaction commits. Raises InvalidInput or
    ValidationFailed (BLANK, TOO_LONG, INVALID_CHARACTERS); NotFound for a scene the
    actor cannot see; PermissionDenied for a VIEWER.
    """
    checks = checks if checks is not None else Checks()
    changes: dict[str, Any] = {}
    if title is not UNCHANGED:
        changes["title"] = checks.text(title, field=("title",), max_length=TITLE_MAX)
    if description is not UNCHANGED:
        changes["description"] = checks.optional_text(
            description, field=("description",), max_length=DESCRIPTION_MAX
        )
    checks.raise_if_unresolvable()
    scene, _ = await scene_for_write(session, actor, scene_id)
    checks.raise_if_any()
    apply_field_changes(scene, changes)
    return scene


async def delete_scene(session: AsyncSession, actor: Actor, *, scene_id: int) -> SceneRow:
    """Delete a scene with its shots, images and selections; later scenes move up.

    Returns the deleted row (its id, for the payload). Locks the project and may
    advance its workflow status; the caller's transaction commits. Raises NotFound
    for a scene the actor cannot see, PermissionDenied for a VIEWER.
    """
    scene, project = await scene_for_write(session, actor, scene_id)
    await session.delete(scene)
    await session.flush()
    await renumber(session, await scenes_of(session, project.id or 0), "scene_number")
    project.updated_at = utcnow()
    # The scene may have been the one holding the project back (one without shots).
    await workflow.advance(session, project)
    return scene


async def reorder_scenes(
    session: AsyncSession, actor: Actor, *, project_id: int, scene_ids: Sequence[int]
) -> ProjectRow:
    """Renumber the project's scenes 1..n in the order of `scene_ids`; the project.

    Locks the project; the caller's transaction commits. Raises InvalidInput
    (INVALID_ORDER) unless `scene_ids` lists every scene of the project exactly once;
    NotFound for a project the actor cannot see; PermissionDenied for a VIEWER.
    """
    project = await lock_project(session, actor, project_id)
    scenes = await scenes_of(session, project_id)
    check_order(scene_ids, [s.id for s in scenes if s.id is not None], "scene of the project")
    by_id = {s.id: s for s in scenes}
    await renumber(session, [by_id[i] for i in scene_ids], "scene_number")
    project.updated_at = utcnow()
    return project
