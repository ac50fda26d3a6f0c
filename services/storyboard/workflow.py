"""Progress through a project's workflow, and the status that follows from it.

The status moves forward by itself as the work reaches each stage and never
backwards by itself (a person may set it either way with `updateProject`):

    PROMPT_PLANNING -> SCENES_SETUP        the first scene exists
                    -> SHOT_ITERATION      the first image exists
                    -> STORYBOARD_FINAL    every scene is complete: it has shots,
                                           and every one has a master image
                    -> ANIMATION_COMPLETE  every scene is complete: it has shots,
                                           and every master image is animated

One rule of completeness at every level, `Progress.selection_complete` and
`Progress.animation_complete`: a scene without shots is not complete, and a
project is complete only when it has scenes and every one of them is. The
percentages stay counts over shots.
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
    """How far the work of a project, or of one scene, has come: counts, and what follows.

    A scene's progress counts that one scene (`total_scenes` 1); a project's counts
    all of its scenes. Every count is a number of rows, never negative.
    """

    total_scenes: int = 0
    scenes_without_shots: int = 0
    total_shots: int = 0
    shots_with_selections: int = 0
    shots_with_animations: int = 0
    has_images: bool = False

    @classmethod
    def of_scene(cls, selections: Sequence[StoryboardSelectionRow | None]) -> Progress:
        """One scene's progress from the selection of each of its shots (None: no master yet).

        Only its completeness and percentages mean anything: a scene has no stage of its own.
        """
        return cls(
            total_scenes=1,
            total_shots=len(selections),
            shots_with_selections=sum(s is not None for s in selections),
            shots_with_animations=sum(
                s is not None and s.animation_status == GenerationStatus.COMPLETE
                for s in selections
            ),
            scenes_without_shots=0 if selections else 1,
        )

    @property
    def selection_percent(self) -> float:
        """Shots with a master image, as a percentage of all shots (0.0 to 100.0,
        two decimals; 0.0 when there are no shots)."""
        return _percent(self.shots_with_selections, self.total_shots)

    @property
    def animation_percent(self) -> float:
        """Shots with a COMPLETE animation, as a percentage of all shots (as above)."""
        return _percent(self.shots_with_animations, self.total_shots)

    @property
    def selection_complete(self) -> bool:
        """Every scene has shots, and every shot has a master image."""
        return self._every_scene_complete(self.shots_with_selections)

    @property
    def animation_complete(self) -> bool:
        """Every scene has shots, and every shot's master image is animated."""
        return self._every_scene_complete(self.shots_with_animations)

    def _every_scene_complete(self, shots_done: int) -> bool:
        # The one rule: a scene is complete when it has shots and every one is done;
        # the whole is complete when it has scenes and every one of them is.
        return (
            self.total_scenes > 0
            and self.scenes_without_shots == 0
            and shots_done == self.total_shots
        )

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
    """The progress of each project, in one statement: {project id: Progress}.

    Ids with no project are absent; no access check (the caller's).
    """
    if not project_ids:
        return {}
    pid = col(ProjectRow.id)
    selection_project = col(StoryboardSelectionRow.project_id)
    statement = select(
        pid,
        _count(SceneRow, col(SceneRow.project_id) == pid),
        _count(
            SceneRow,
            col(SceneRow.project_id) == pid,
            ~exists().where(col(ShotRow.scene_id) == col(SceneRow.id)).correlate(SceneRow),
        ),
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
            scenes_without_shots=row[2],
            total_shots=row[3],
            shots_with_selections=row[4],
            shots_with_animations=row[5],
            has_images=bool(row[6]),
        )
        for row in rows
    }


async def advance(session: AsyncSession, project: ProjectRow) -> None:
    """Move the project's status forward to the stage its work has reached.

    The caller holds the project's lock (`services.storyboard.projects.lock_project`,
    or `lock_project_row` for the engine), so a concurrent change of the status is
    read here, never overwritten. Flushes the session first, so pending changes
    count; never moves the status back. Changes `project` in the session (status
    and `updated_at`) for the caller's transaction to commit.
    """
    assert project.id is not None
    await session.flush()
    progress = (await progress_for_projects(session, [project.id]))[project.id]
    current = WorkflowStatus(project.status)
    if progress.stage.rank > current.rank:
        project.status = progress.stage
        project.updated_at = utcnow()
