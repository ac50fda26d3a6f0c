"""Projects: created, edited and deleted; the project lock every structural write takes first.

Every structural write to a project (its scenes, shots, images) locks the project
row first, so concurrent writers to one project queue instead of racing for
numbers (SQLite serializes writers anyway).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.accounts.access import Actor
from services.errors import NotFound, PermissionDenied
from services.keyset_pages import Page, newest_first
from services.storyboard.numbering import apply_field_changes
from services.tables import (
    ProjectRow,
    SceneRow,
    ShotRow,
    TeamMemberRow,
    TeamRole,
    TeamRow,
    WorkflowStatus,
    WorkflowVersion,
)
from services.validation import (
    PLANNER_DATA_MAX,
    PROMPT_MAX,
    TITLE_MAX,
    UNCHANGED,
    Checks,
    Maybe,
)


async def lock_project_row(session: AsyncSession, project_id: int) -> ProjectRow | None:
    """The project, locked for this transaction (FOR UPDATE on PostgreSQL), or None if it
    does not exist; no access check.

    For work done for no user (the generation engine); everything a user asks for
    goes through `lock_project`. The row is read again under the lock, so a change
    another transaction committed while this one waited is seen, never overwritten.
    """
    statement = select(ProjectRow).where(ProjectRow.id == project_id).with_for_update()
    return (await session.exec(statement.execution_options(populate_existing=True))).first()


async def lock_project(
    session: AsyncSession, actor: Actor, project_id: int, *, what: str = "project"
) -> ProjectRow:
    """The project, locked for this transaction, if the actor may change (the `what` in) it."""
    project = await lock_project_row(session, project_id)
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
    """The id of the actor's personal team (made with their account), where projects go
    when no team is named. Raises NotFound (field `teamId`) if they have none."""
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
    apply_field_changes(project, changes)
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


# --- reads ------------------------------------------------------------------------


async def page_of_projects(
    session: AsyncSession, team_ids: Sequence[int], *, first: int, before_id: int | None
) -> Page[ProjectRow]:
    """Up to `first` of the teams' projects older than `before_id` (a project id), newest first.

    `first` is not checked here: the API bounds it before it gets this far.
    """
    condition = col(ProjectRow.team_id).in_(team_ids)
    return await newest_first(
        session,
        select(ProjectRow).where(condition),
        ProjectRow.id,
        first=first,
        before=before_id,
        counted=select(func.count()).select_from(ProjectRow).where(condition),
    )
