"""Per-request DataLoaders: each relation of the graph costs one statement per request level.

Made fresh for every operation (and every subscription event), never kept on a
connection, so they never serve stale rows. Each batch opens its own short
session, so loaders that fire together do not share one connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession
from strawberry.dataloader import DataLoader

from services import lookups, shot_images, workflow
from services.database import Database
from services.tables import (
    ProjectRow,
    SceneRow,
    ShotImageRow,
    ShotRow,
    StoryboardSelectionRow,
    TeamRow,
    UserRow,
)
from services.workflow import Progress

K = TypeVar("K")
V = TypeVar("V")
Row = TypeVar("Row", bound=SQLModel)


class Loaders:
    """Every DataLoader of one operation."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.user = self._rows(UserRow)
        self.team = self._rows(TeamRow)
        self.project = self._rows(ProjectRow)
        self.scene = self._rows(SceneRow)
        self.shot = self._rows(ShotRow)
        self.image = self._rows(ShotImageRow)
        self.selection = self._rows(StoryboardSelectionRow)
        self.scenes_of_project = self._grouped(lookups.scenes_for_projects, list)
        self.shots_of_scene = self._grouped(lookups.shots_for_scenes, list)
        self.images_of_shot = self._grouped(shot_images.images_for_shots, list)
        self.selection_of_shot = self._grouped(lookups.selections_for_shots, lambda: None)
        self.storyboard_of_project = self._grouped(lookups.selections_for_projects, list)
        self.members_of_team = self._grouped(lookups.members_for_teams, list)
        self.memberships_of_user = self._grouped(lookups.memberships_for_users, list)
        self.progress_of_project = self._grouped(workflow.progress_for_projects, Progress)

    def _batch(
        self,
        fetch: Callable[[AsyncSession, Sequence[K]], Awaitable[dict[K, V]]],
        missing: Callable[[], V],
    ) -> DataLoader[K, V]:
        db = self._db  # not `self`: a closure over self would make every Loaders a cycle

        async def load(keys: list[K]) -> list[V]:
            async with db.session() as session:
                found = await fetch(session, keys)
            return [found[key] if key in found else missing() for key in keys]

        return DataLoader(load_fn=load)

    def _rows(self, table: type[Row]) -> DataLoader[int, Row | None]:
        async def fetch(session: AsyncSession, keys: Sequence[int]) -> dict[Any, Row | None]:
            return dict(await lookups.by_ids(session, table, keys))

        return self._batch(fetch, lambda: None)

    def _grouped(
        self,
        fetch: Callable[[AsyncSession, Sequence[int]], Awaitable[dict[int, V]]],
        missing: Callable[[], V],
    ) -> DataLoader[int, V]:
        return self._batch(fetch, missing)
