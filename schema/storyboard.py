"""Projects, scenes, shots, image iterations, images and storyboard selections."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Self, cast

import strawberry
from strawberry.scalars import JSON

from schema import ids
from schema.accounts import Team, User
from schema.context import Info
from schema.enums import GenerationStatus, WorkflowStatus, WorkflowVersion
from schema.node import Node
from schema.scalars import stored_json
from services.storyboard import shot_images
from services.storyboard.workflow import Progress
from services.tables import ProjectRow, SceneRow, ShotImageRow, ShotRow, StoryboardSelectionRow

if TYPE_CHECKING:
    from schema.library import Asset


@strawberry.type(description="How far a project's storyboard and animation have come.")
class ProjectProgress:
    total_scenes: int = strawberry.field(description="Scenes in the project.")
    total_shots: int = strawberry.field(description="Shots in the project.")
    shots_with_selections: int = strawberry.field(description="Shots with a master image.")
    shots_with_animations: int = strawberry.field(description="Shots whose master is animated.")
    selection_progress: float = strawberry.field(
        description="Percent of shots with a master, 0..100."
    )
    animation_progress: float = strawberry.field(description="Percent of shots animated, 0..100.")
    is_selection_complete: bool = strawberry.field(
        description="Every scene is complete: the project has scenes, every scene has shots, "
        "and every shot has a master image."
    )
    is_animation_complete: bool = strawberry.field(
        description="Every scene is complete: the project has scenes, every scene has shots, "
        "and every shot's master is animated."
    )

    @classmethod
    def from_progress(cls, p: Progress) -> Self:
        return cls(
            total_scenes=p.total_scenes,
            total_shots=p.total_shots,
            shots_with_selections=p.shots_with_selections,
            shots_with_animations=p.shots_with_animations,
            selection_progress=p.selection_percent,
            animation_progress=p.animation_percent,
            is_selection_complete=p.selection_complete,
            is_animation_complete=p.animation_complete,
        )


@strawberry.type(description="A video project: a brain dump split into scenes and shots.")
class Project(Node):
    title: str = strawberry.field(description="The project's title.")
    prompt: str | None = strawberry.field(description="The brain dump the project starts from.")
    prompt_planner_data: str | None = strawberry.field(
        description="The prompt planner's working state, as the editor stores it."
    )
    workflow_version: WorkflowVersion = strawberry.field(description="The editor workflow it uses.")
    status: WorkflowStatus = strawberry.field(description="The stage the project has reached.")
    created_at: datetime = strawberry.field(description="When it was made.")
    updated_at: datetime = strawberry.field(description="When it last changed.")
    row: strawberry.Private[ProjectRow]

    @classmethod
    def from_row(cls, row: ProjectRow) -> Self:
        return cls(
            id=ids.encode("Project", row.id),
            row=row,
            title=row.title,
            prompt=row.prompt,
            prompt_planner_data=row.prompt_planner_data,
            workflow_version=WorkflowVersion(row.workflow_version),
            status=WorkflowStatus(row.status),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    @strawberry.field(description="The team the project belongs to.")
    async def team(self, info: Info) -> Team:
        row = await info.context.loaders.team.load(self.row.team_id)
        assert row is not None
        return Team.from_row(row)

    @strawberry.field(description="Who made the project.")
    async def owner(self, info: Info) -> User:
        row = await info.context.loaders.user.load(self.row.owner_id)
        assert row is not None
        return User.from_row(row)

    @strawberry.field(description="The project's scenes, ordered by scene number.")
    async def scenes(self, info: Info) -> list[Scene]:
        rows = await info.context.loaders.scenes_of_project.load(self.row.id or 0)
        return [Scene.from_row(row) for row in rows]

    @strawberry.field(
        description="The master image of every selected shot, ordered by scene, then shot."
    )
    async def storyboard(self, info: Info) -> list[StoryboardSelection]:
        rows = await info.context.loaders.storyboard_of_project.load(self.row.id or 0)
        return [StoryboardSelection.from_row(row) for row in rows]

    @strawberry.field(description="How far the storyboard and animation have come.")
    async def progress(self, info: Info) -> ProjectProgress:
        return ProjectProgress.from_progress(
            await info.context.loaders.progress_of_project.load(self.row.id or 0)
        )


@strawberry.type(description="A scene of a project: a run of shots.")
class Scene(Node):
    scene_number: int = strawberry.field(description="Its place in the project, 1..n, dense.")
    title: str = strawberry.field(description="The scene's title.")
    description: str | None = strawberry.field(description="What happens in the scene.")
    created_at: datetime = strawberry.field(description="When it was made.")
    updated_at: datetime = strawberry.field(description="When it last changed.")
    row: strawberry.Private[SceneRow]

    @classmethod
    def from_row(cls, row: SceneRow) -> Self:
        return cls(
            id=ids.encode("Scene", row.id),
            row=row,
            scene_number=row.scene_number,
            title=row.title,
            description=row.description,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    @strawberry.field(description="The project the scene belongs to.")
    async def project(self, info: Info) -> Project:
        row = await info.context.loaders.project.load(self.row.project_id)
        assert row is not None
        return Project.from_row(row)

    @strawberry.field(description="The scene's shots, ordered by shot number.")
    async def shots(self, info: Info) -> list[Shot]:
        rows = await info.context.loaders.shots_of_scene.load(self.row.id or 0)
        return [Shot.from_row(row) for row in rows]

    @strawberry.field(
        description="Whether the scene has shots and every one has a master image; "
        "a scene without shots is not complete."
    )
    async def storyboard_complete(self, info: Info) -> bool:
        loaders = info.context.loaders
        shots = await loaders.shots_of_scene.load(self.row.id or 0)
        selections = await loaders.selection_of_shot.load_many([s.id or 0 for s in shots])
        return Progress.of_scene(selections).selection_complete


@strawberry.type(description="A shot of a scene: the unit that gets images and a clip.")
class Shot(Node):
    shot_number: int = strawberry.field(description="Its place in the scene, 1..n, dense.")
    description: str | None = strawberry.field(description="What the shot shows.")
    initial_prompt: str | None = strawberry.field(
        description="The prompt of its first image iteration, and the default for later ones."
    )
    created_at: datetime = strawberry.field(description="When it was made.")
    updated_at: datetime = strawberry.field(description="When it last changed.")
    row: strawberry.Private[ShotRow]

    @classmethod
    def from_row(cls, row: ShotRow) -> Self:
        return cls(
            id=ids.encode("Shot", row.id),
            row=row,
            shot_number=row.shot_number,
            description=row.description,
            initial_prompt=row.initial_prompt,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    async def _images(self, info: Info) -> list[ShotImageRow]:
        return await info.context.loaders.images_of_shot.load(self.row.id or 0)

    @strawberry.field(description="The scene the shot belongs to.")
    async def scene(self, info: Info) -> Scene:
        row = await info.context.loaders.scene.load(self.row.scene_id)
        assert row is not None
        return Scene.from_row(row)

    @strawberry.field(description="The project the shot belongs to.")
    async def project(self, info: Info) -> Project:
        row = await info.context.loaders.project.load(self.row.project_id)
        assert row is not None
        return Project.from_row(row)

    @strawberry.field(description="The shot's master image, if one is selected.")
    async def selected_image(self, info: Info) -> ShotImage | None:
        selection = await info.context.loaders.selection_of_shot.load(self.row.id or 0)
        if selection is None:
            return None
        image = await info.context.loaders.image.load(selection.selected_image_id)
        return ShotImage.from_row(image) if image else None

    @strawberry.field(description="The number of the latest iteration; null before the first.")
    async def latest_iteration_number(self, info: Info) -> int | None:
        images = await self._images(info)
        return max((image.iteration_number for image in images), default=None)

    @strawberry.field(description="The shot's image iterations, ordered by iteration number.")
    async def iterations(self, info: Info) -> list[ImageIteration]:
        return await ImageIteration.of_shot(info, self.row.id or 0)

    @strawberry.field(description="The shot's images, ordered by iteration, then variant.")
    async def images(
        self,
        info: Info,
        iteration_number: Annotated[
            int | None, strawberry.argument(description="Only the images of this iteration.")
        ] = None,
        favorites_only: Annotated[
            bool, strawberry.argument(description="Only the images marked as favourites.")
        ] = False,
    ) -> list[ShotImage]:
        return [
            ShotImage.from_row(image)
            for image in await self._images(info)
            if (iteration_number is None or image.iteration_number == iteration_number)
            and (image.is_favorite or not favorites_only)
        ]

    @strawberry.field(description="The shot's storyboard selection, if a master image is chosen.")
    async def storyboard_selection(self, info: Info) -> StoryboardSelection | None:
        row = await info.context.loaders.selection_of_shot.load(self.row.id or 0)
        return StoryboardSelection.from_row(row) if row else None


@strawberry.type(description="A batch of image variants of a shot made from one prompt.")
class ImageIteration:
    iteration_number: int = strawberry.field(
        description="0 for the first batch, 1 and up for refinements."
    )
    prompt: str = strawberry.field(description="The prompt the batch was made from.")
    status: GenerationStatus = strawberry.field(
        description="A summary: in progress while any image is, else COMPLETE if any image is."
    )
    images: list[ShotImage] = strawberry.field(
        description="The variants, ordered by variant number."
    )
    parent_image_id: strawberry.Private[int | None]

    @classmethod
    async def of_shot(cls, info: Info, shot_id: int) -> list[Self]:
        """A shot's iterations, ordered by iteration number."""
        images = await info.context.loaders.images_of_shot.load(shot_id)
        return [cls.from_iteration(it) for it in shot_images.group_iterations(images)]

    @classmethod
    def from_iteration(cls, iteration: shot_images.Iteration) -> Self:
        return cls(
            iteration_number=iteration.number,
            prompt=iteration.prompt,
            status=iteration.status,
            images=[ShotImage.from_row(row) for row in iteration.images],
            parent_image_id=iteration.parent_image_id,
        )

    @strawberry.field(description="The image this iteration refines (image-to-image), if any.")
    async def parent_image(self, info: Info) -> ShotImage | None:
        return await ShotImage.load(info, self.parent_image_id)


@strawberry.type(description="One image variant of a shot.")
class ShotImage(Node):
    iteration_number: int = strawberry.field(
        description="The iteration it belongs to: 0 for the first batch, 1 and up for refinements."
    )
    variant_number: int = strawberry.field(
        description="Its place in the iteration, from 0: six variants are 0..5 (at most 0..11)."
    )
    status: GenerationStatus = strawberry.field(description="Where its generation stands.")
    iteration_prompt: str = strawberry.field(description="The prompt of its iteration.")
    is_favorite: bool = strawberry.field(description="Whether it is marked as a favourite.")
    prediction_id: str | None = strawberry.field(description="The provider's prediction ID.")
    model: str | None = strawberry.field(description="The model that made it.")
    metadata: JSON | None = strawberry.field(
        description="Generation parameters: model, seed, strength, ..."
    )
    error: str | None = strawberry.field(description="Why its generation failed, if it did.")
    created_at: datetime = strawberry.field(description="When it was made.")
    updated_at: datetime = strawberry.field(description="When it last changed.")
    row: strawberry.Private[ShotImageRow]

    @classmethod
    def from_row(cls, row: ShotImageRow) -> Self:
        return cls(
            id=ids.encode("ShotImage", row.id),
            row=row,
            iteration_number=row.iteration_number,
            variant_number=row.variant_number,
            status=GenerationStatus(row.status),
            iteration_prompt=row.iteration_prompt,
            is_favorite=row.is_favorite,
            prediction_id=row.prediction_id,
            model=row.model,
            metadata=cast(JSON, stored_json(row.generation_metadata)),
            error=row.error,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    @classmethod
    async def load(cls, info: Info, image_id: int | None) -> Self | None:
        if image_id is None:
            return None
        row = await info.context.loaders.image.load(image_id)
        return cls.from_row(row) if row else None

    @strawberry.field(
        description="Where to fetch the image once it exists: our stored copy, by a signed URL "
        "that expires (ask again for a fresh one), or the URL it was recorded with."
    )
    def image_url(self, info: Info) -> str | None:
        if self.row.storage_key:
            return info.context.media.url_for(self.row.storage_key)
        return self.row.image_url

    @strawberry.field(
        description="A small preview of the image (WebP), by a signed URL that expires, as "
        "`Asset.thumbnailUrl`; null until the image is COMPLETE and stored, or if none could "
        "be made (then use `imageUrl`)."
    )
    async def thumbnail_url(self, info: Info) -> str | None:
        if self.row.id is None:
            return None
        key = await info.context.loaders.image_thumbnail.load(self.row.id)
        return info.context.media.url_for(key) if key else None

    @strawberry.field(description="The shot the image belongs to.")
    async def shot(self, info: Info) -> Shot:
        row = await info.context.loaders.shot.load(self.row.shot_id)
        assert row is not None
        return Shot.from_row(row)

    @strawberry.field(description="The image this one refines, if any.")
    async def parent_image(self, info: Info) -> ShotImage | None:
        return await ShotImage.load(info, self.row.parent_image_id)

    # --- edits ---
    @strawberry.field(
        description="The library asset it was added from (addShotImages with assetId), whose "
        "stored file it shares; null for other images, once that asset is deleted, or if you "
        "cannot see it."
    )
    async def source_asset(
        self, info: Info
    ) -> Annotated[Asset, strawberry.lazy("schema.library")] | None:
        from schema.library import load_asset  # it imports this module

        return await load_asset(info, self.row.source_asset_id)


@strawberry.type(description="The master image chosen for a shot, and its animation.")
class StoryboardSelection(Node):
    animation_status: GenerationStatus | None = strawberry.field(
        description="Where its animation stands; null until one is asked for."
    )
    model: str | None = strawberry.field(description="The model that animates it.")
    prediction_id: str | None = strawberry.field(description="The provider's prediction ID.")
    error: str | None = strawberry.field(description="Why the animation failed, if it did.")
    created_at: datetime = strawberry.field(description="When it was made.")
    updated_at: datetime = strawberry.field(description="When it last changed.")
    row: strawberry.Private[StoryboardSelectionRow]

    @classmethod
    def from_row(cls, row: StoryboardSelectionRow) -> Self:
        return cls(
            id=ids.encode("StoryboardSelection", row.id),
            row=row,
            animation_status=GenerationStatus(row.animation_status)
            if row.animation_status
            else None,
            model=row.model,
            prediction_id=row.prediction_id,
            error=row.error,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    @strawberry.field(
        description="Where to fetch the clip once it exists: an MP4 at a signed URL that expires "
        "(ask again for a fresh one); it plays in a browser and supports Range requests."
    )
    def animated_video_url(self, info: Info) -> str | None:
        if self.row.video_storage_key:
            return info.context.media.url_for(self.row.video_storage_key)
        return self.row.animated_video_url

    @strawberry.field(description="The project of the selection.")
    async def project(self, info: Info) -> Project:
        row = await info.context.loaders.project.load(self.row.project_id)
        assert row is not None
        return Project.from_row(row)

    @strawberry.field(description="The scene of the selected shot.")
    async def scene(self, info: Info) -> Scene:
        shot = await info.context.loaders.shot.load(self.row.shot_id)
        assert shot is not None
        row = await info.context.loaders.scene.load(shot.scene_id)
        assert row is not None
        return Scene.from_row(row)

    @strawberry.field(description="The shot the master image is chosen for.")
    async def shot(self, info: Info) -> Shot:
        row = await info.context.loaders.shot.load(self.row.shot_id)
        assert row is not None
        return Shot.from_row(row)

    @strawberry.field(description="The master image.")
    async def selected_image(self, info: Info) -> ShotImage:
        image = await ShotImage.load(info, self.row.selected_image_id)
        assert image is not None
        return image
