"""Projects, scenes and shots: the storyboard hierarchy and its numbering.

Scene numbers within a project, and shot numbers within a scene, are always
dense (1..n): creating without a number appends, creating with one inserts and
shifts the rest, deleting and reordering close the gaps. Every structural
write locks the project row first, so concurrent writers to one project queue
instead of racing for numbers (SQLite serializes writers anyway).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.accounts.access import Actor
from services.errors import InvalidInput, NotFound, PermissionDenied
from services.storyboard import workflow
from services.tables import (
    ProjectRow,
    SceneRow,
    ShotRow,
    TeamMemberRow,
    TeamRole,
    TeamRow,
    WorkflowStatus,
    WorkflowVersion,
    utcnow,
)
from services.validation import (
    DESCRIPTION_MAX,
    MAX_SCENES_PER_PROJECT,
    MAX_SHOTS_PER_SCENE,
    PLANNER_DATA_MAX,
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


# --- projects ------------------------------------------------------------------


async def lock_project(
    session: AsyncSession, actor: Actor, project_id: int, *, what: str = "project"
) -> ProjectRow:
    """The project, locked for this transaction, if the actor may change (the `what` in) it."""
    project = (
        await session.exec(select(ProjectRow).where(ProjectRow.id == project_id).with_for_update())
    ).first()
    if project is None:
        raise NotFound(what)
    actor.require_write(project.team_id, what)
    return project


Child = TypeVar("Child", SceneRow, ShotRow)


async def lock_parent_of(
    session: AsyncSession, actor: Actor, table: type[Child], child_id: int, what: str
) -> tuple[Child, ProjectRow]:
    """A scene or shot, and its project locked for this transaction, if the actor may change it."""
    child = await session.get(table, child_id)
    if child is None:
        raise NotFound(what)
    project = await lock_project(session, actor, child.project_id, what=what)
    # Read again under the lock: a writer that held it may have changed or deleted the row.
    child = await session.get(table, child_id, populate_existing=True)
    if child is None:
        raise NotFound(what)
    return child, project


async def personal_team_id(session: AsyncSession, actor: Actor) -> int:
    team_id = (
        await session.exec(
            select(TeamRow.id)
            .join(TeamMemberRow, col(TeamMemberRow.team_id) == TeamRow.id)
            .where(TeamRow.is_personal, TeamMemberRow.user_id == actor.user_id)
        )
    ).first()
    if team_id is None:
        raise NotFound("personal team", field=("teamId",))
    return team_id


async def create_project(
    session: AsyncSession,
    actor: Actor,
    *,
    team_id: int | None,
    title: str,
    prompt: str | None = None,
    prompt_planner_data: str | None = None,
    workflow_version: WorkflowVersion = WorkflowVersion.V2_REDESIGN,
    checks: Checks | None = None,
) -> ProjectRow:
    """A new project in the team (the actor's personal team by default)."""
    checks = checks if checks is not None else Checks()
    title = checks.text(title, field=("title",), max_length=TITLE_MAX)
    prompt = checks.optional_text(prompt, field=("prompt",), max_length=PROMPT_MAX)
    prompt_planner_data = _planner_data(checks, prompt_planner_data)
    checks.raise_if_unresolvable()
    if team_id is None:
        team_id = await personal_team_id(session, actor)
    actor.require_write(team_id, "team")
    checks.raise_if_any()
    project = ProjectRow(
        team_id=team_id,
        owner_id=actor.user_id,
        title=title,
        prompt=prompt,
        prompt_planner_data=prompt_planner_data,
        workflow_version=workflow_version,
        status=WorkflowStatus.PROMPT_PLANNING,
    )
    session.add(project)
    await session.flush()
    return project


def _planner_data(checks: Checks, value: str | None) -> str | None:
    if value is None:
        return None
    checks.storable(value, field=("promptPlannerData",), label="prompt planner data")
    if len(value) > PLANNER_DATA_MAX:
        checks.fail(
            "TOO_LONG",
            f"The prompt planner data is {len(value)} characters; the limit is {PLANNER_DATA_MAX}.",
            ("promptPlannerData",),
        )
    return value


async def update_project(
    session: AsyncSession,
    actor: Actor,
    *,
    project_id: int,
    title: Maybe[str] = UNCHANGED,
    prompt: Maybe[str | None] = UNCHANGED,
    prompt_planner_data: Maybe[str | None] = UNCHANGED,
    status: Maybe[WorkflowStatus] = UNCHANGED,
    checks: Checks | None = None,
) -> ProjectRow:
    """Change the given fields; `status` may be set either way."""
    checks = checks if checks is not None else Checks()
    changes: dict[str, Any] = {}
    if title is not UNCHANGED:
        changes["title"] = checks.text(title, field=("title",), max_length=TITLE_MAX)
    if prompt is not UNCHANGED:
        changes["prompt"] = checks.optional_text(prompt, field=("prompt",), max_length=PROMPT_MAX)
    if prompt_planner_data is not UNCHANGED:
        changes["prompt_planner_data"] = _planner_data(checks, prompt_planner_data)
    if status is not UNCHANGED:
        changes["status"] = status
    checks.raise_if_unresolvable()
    project = await lock_project(session, actor, project_id)
    checks.raise_if_any()
    _apply(project, changes)
    return project


async def delete_project(session: AsyncSession, actor: Actor, *, project_id: int) -> None:
    """Delete a project and everything in it; its owner or a team owner/admin may."""
    project = await lock_project(session, actor, project_id)
    if project.owner_id != actor.user_id and actor.role_in(project.team_id) not in (
        TeamRole.OWNER,
        TeamRole.ADMIN,
    ):
        raise PermissionDenied(
            "Only the project's owner or a team owner or admin can delete a project."
        )
    await session.delete(project)


def _apply(row: ProjectRow | SceneRow | ShotRow, changes: dict[str, Any]) -> None:
    for name, value in changes.items():
        setattr(row, name, value)
    if changes:
        row.updated_at = utcnow()


# --- dense numbering --------------------------------------------------------------

Numbered = TypeVar("Numbered", SceneRow, ShotRow)


async def _renumber(
    session: AsyncSession, rows: Sequence[Numbered], attribute: str, *, skip: int | None = None
) -> None:
    """Number `rows` 1..n in the given order, leaving out `skip` for a row about to be inserted.

    Two flushes: first every number becomes negative, so the unique (parent, number)
    constraint never sees two rows with one number half-way through.
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


def _slot(
    checks: Checks, number: int | None, count: int, *, field: Sequence[str], label: str
) -> int:
    """The number a new row takes: `number` if within 1..count+1, else appended."""
    if number is None:
        return count + 1
    return checks.number(number, field=field, low=1, high=count + 1, label=label)


def _check_order(ids: Sequence[int], current: Sequence[int], what: str) -> None:
    if len(ids) != len(set(ids)) or set(ids) != set(current):
        raise InvalidInput(
            f"The new order must list every {what} exactly once ({len(current)} in all).",
            code="INVALID_ORDER",
            field=("ids",),
        )


# --- scenes ---------------------------------------------------------------------


async def _scenes_of(session: AsyncSession, project_id: int) -> list[SceneRow]:
    result = await session.exec(
        select(SceneRow)
        .where(SceneRow.project_id == project_id)
        .order_by(col(SceneRow.scene_number))
    )
    return list(result.all())


async def _shots_of(session: AsyncSession, scene_id: int) -> list[ShotRow]:
    result = await session.exec(
        select(ShotRow).where(ShotRow.scene_id == scene_id).order_by(col(ShotRow.shot_number))
    )
    return list(result.all())


async def scene_for_write(
    session: AsyncSession, actor: Actor, scene_id: int
) -> tuple[SceneRow, ProjectRow]:
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
    """A scene (appended, or inserted at `scene_number`), with its shots."""
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
    siblings = await _scenes_of(session, project_id)
    number = _slot(
        checks, scene_number, len(siblings), field=("sceneNumber",), label="scene number"
    )
    if len(siblings) >= MAX_SCENES_PER_PROJECT:
        checks.fail(
            "LIMIT_REACHED",
            f"A project holds at most {MAX_SCENES_PER_PROJECT} scenes.",
            ("projectId",),
        )
    checks.raise_if_any()

    await _renumber(session, siblings, "scene_number", skip=number)
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
    _apply(scene, changes)
    return scene


async def delete_scene(session: AsyncSession, actor: Actor, *, scene_id: int) -> SceneRow:
    """Delete a scene with its shots, images and selections; later scenes move up."""
    scene, project = await scene_for_write(session, actor, scene_id)
    await session.delete(scene)
    await session.flush()
    await _renumber(session, await _scenes_of(session, project.id or 0), "scene_number")
    project.updated_at = utcnow()
    return scene


async def reorder_scenes(
    session: AsyncSession, actor: Actor, *, project_id: int, scene_ids: Sequence[int]
) -> ProjectRow:
    project = await lock_project(session, actor, project_id)
    scenes = await _scenes_of(session, project_id)
    _check_order(scene_ids, [s.id for s in scenes if s.id is not None], "scene of the project")
    by_id = {s.id: s for s in scenes}
    await _renumber(session, [by_id[i] for i in scene_ids], "scene_number")
    project.updated_at = utcnow()
    return project


# --- shots ----------------------------------------------------------------------


async def shot_for_write(
    session: AsyncSession, actor: Actor, shot_id: int
) -> tuple[ShotRow, ProjectRow]:
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
    checks = checks if checks is not None else Checks()
    description = checks.optional_text(
        description, field=("description",), max_length=DESCRIPTION_MAX
    )
    initial_prompt = checks.optional_text(
        initial_prompt, field=("initialPrompt",), max_length=PROMPT_MAX, label="initial prompt"
    )
    checks.raise_if_unresolvable()
    scene, _ = await scene_for_write(session, actor, scene_id)
    siblings = await _shots_of(session, scene_id)
    number = _slot(checks, shot_number, len(siblings), field=("shotNumber",), label="shot number")
    if len(siblings) >= MAX_SHOTS_PER_SCENE:
        checks.fail(
            "LIMIT_REACHED", f"A scene holds at most {MAX_SHOTS_PER_SCENE} shots.", ("sceneId",)
        )
    checks.raise_if_any()
    await _renumber(session, siblings, "shot_number", skip=number)
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
    _apply(shot, changes)
    return shot


async def delete_shot(session: AsyncSession, actor: Actor, *, shot_id: int) -> ShotRow:
    """Delete a shot with its images and selection; later shots move up."""
    shot, project = await shot_for_write(session, actor, shot_id)
    await session.delete(shot)
    await session.flush()
    await _renumber(session, await _shots_of(session, shot.scene_id), "shot_number")
    await workflow.advance(session, project)
    return shot


async def reorder_shots(
    session: AsyncSession, actor: Actor, *, scene_id: int, shot_ids: Sequence[int]
) -> SceneRow:
    scene, _ = await scene_for_write(session, actor, scene_id)
    shots = await _shots_of(session, scene_id)
    _check_order(shot_ids, [s.id for s in shots if s.id is not None], "shot of the scene")
    by_id = {s.id: s for s in shots}
    await _renumber(session, [by_id[i] for i in shot_ids], "shot_number")
    scene.updated_at = utcnow()
    return scene


# --- reads ------------------------------------------------------------------------


async def count_projects(session: AsyncSession, team_ids: Sequence[int]) -> int:
    statement = (
        select(func.count()).select_from(ProjectRow).where(col(ProjectRow.team_id).in_(team_ids))
    )
    return (await session.exec(statement)).one()


async def page_of_projects(
    session: AsyncSession, team_ids: Sequence[int], *, first: int, before_id: int | None
) -> tuple[list[ProjectRow], bool]:
    """Newest first: up to `first` projects older than `before_id`, and whether more follow."""
    statement = select(ProjectRow).where(col(ProjectRow.team_id).in_(team_ids))
    if before_id is not None:
        statement = statement.where(col(ProjectRow.id) < before_id)
    rows = list(
        (await session.exec(statement.order_by(col(ProjectRow.id).desc()).limit(first + 1))).all()
    )
    return rows[:first], len(rows) > first
