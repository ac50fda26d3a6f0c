"""Progress through a project's workflow, and the status that follows from it.

The status moves forward by itself as the work reaches each stage and never
backwards by itself (a person may set it either way with `updateProject`):

    PROMPT_PLANNING -> SCENES_SETUP        the first scene exists
                    -> SHOT_ITERATION      the first image exists
                    -> STORYBOARD_FINAL    every shot has a master image
                    -> ANIMATION_COMPLETE  every master image is animated
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import exists, func, select
from sqlalchemy.sql import ColumnElement
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from services.tables import (
    GenerationStatus,
    ProjectRow,
    SceneRow,
    ShotImageRow,
    ShotRow,
    StoryboardSelectionRow,
    WorkflowStatus,
    utcnow,
)


@dataclass(frozen=True)
class Progress:
    total_scenes: int = 0
    total_shots: int = 0
    shots_with_selections: int = 0
    shots_with_animations: int = 0
    has_images: bool = False

    @property
    def selection_percent(self) -> float:
        return _percent(self.shots_with_selections, self.total_shots)

    @property
    def animation_percent(self) -> float:
        return _percent(self.shots_with_animations, self.total_shots)

    @property
    def selection_complete(self) -> bool:
        return self.total_shots > 0 and self.shots_with_selections == self.total_shots

    @property
    def animation_complete(self) -> bool:
        return self.total_shots > 0 and self.shots_with_animations == self.total_shots

    @property
    def stage(self) -> WorkflowStatus:
        """The furthest stage the work has reached."""
        if self.animation_complete:
            return WorkflowStatus.ANIMATION_COMPLETE
        if self.selection_complete:
            return WorkflowStatus.STORYBOARD_FINAL
        if self.has_images:
            return WorkflowStatus.SHOT_ITERATION
        if self.total_scenes > 0:
            return WorkflowStatus.SCENES_SETUP
        return WorkflowStatus.PROMPT_PLANNING


def _percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def _count(table: type, *where: ColumnElement[bool]) -> ColumnElement[int]:
    return select(func.count()).select_from(table).where(*where).scalar_subquery()


async def progress_for_projects(
    session: AsyncSession, project_ids: Sequence[int]
) -> dict[int, Progress]:
    """The progress of each project, in one statement."""
    if not project_ids:
        return {}
    pid = col(ProjectRow.id)
    selection_project = col(StoryboardSelectionRow.project_id)
    statement = select(
        pid,
        _count(SceneRow, col(SceneRow.project_id) == pid),
        _count(ShotRow, col(ShotRow.project_id) == pid),
        _count(StoryboardSelectionRow, selection_project == pid),
        _count(
            StoryboardSelectionRow,
            selection_project == pid,
            col(StoryboardSelectionRow.animation_status) == GenerationStatus.COMPLETE,
        ),
        exists()
        .where(col(ShotImageRow.shot_id) == col(ShotRow.id), col(ShotRow.project_id) == pid)
        .correlate(ProjectRow),
    ).where(pid.in_(project_ids))
    # sqlmodel's `exec` is typed for its own `select`, which stops at four columns.
    rows = (await session.exec(statement)).all()  # type: ignore[call-overload]
    return {
        row[0]: Progress(
            total_scenes=row[1],
            total_shots=row[2],
            shots_with_selections=row[3],
            shots_with_animations=row[4],
            has_images=bool(row[5]),
        )
        for row in rows
    }


async def advance(session: AsyncSession, project: ProjectRow) -> None:
    """Move the project's status forward to the stage its work has reached."""
    assert project.id is not None
    await session.flush()
    progress = (await progress_for_projects(session, [project.id]))[project.id]
    current = WorkflowStatus(project.status)
    if progress.stage.rank > current.rank:
        project.status = progress.stage
        project.updated_at = utcnow()
