"""Mutations on projects, scenes, shots, images and storyboard selections."""

from typing import Annotated, Any, cast

import strawberry

from resolvers.writing import given, given_required, returns_user_errors, write
from schema import ids
from schema.context import Info
from schema.inputs import (
    AddShotImagesInput,
    CreateProjectInput,
    CreateSceneInput,
    CreateShotInput,
    DeleteInput,
    ReorderInput,
    SelectMasterShotInput,
    SetImageFavoriteInput,
    UpdateProjectInput,
    UpdateSceneInput,
    UpdateShotInput,
)
from schema.payloads import (
    DeletePayload,
    GenerateShotImagesPayload,
    ProjectPayload,
    ScenePayload,
    ShotImagePayload,
    ShotPayload,
    StoryboardSelectionPayload,
)
from schema.storyboard import ImageIteration, Project, Scene, Shot, ShotImage, StoryboardSelection
from services.generation import discards, requests
from services.storyboard import projects, scenes, shot_images, shots
from services.storyboard.scenes import ShotDraft
from services.storyboard.shot_images import ImageDraft
from services.tables import GenerationStatus, WorkflowVersion
from services.validation import (
    MAX_SCENES_PER_PROJECT,
    MAX_SHOTS_PER_SCENE,
    MAX_VARIANTS,
    Checks,
    within,
)


def _decode_all(checks: Checks, global_ids: list[strawberry.ID], type_name: str) -> list[int]:
    return [
        ids.decode_into(checks, global_id, type_name, field=("ids", str(index)))
        for index, global_id in enumerate(global_ids)
    ]


# --- projects ---------------------------------------------------------------------


@returns_user_errors(ProjectPayload)
async def create_project(
    info: Info,
    input: Annotated[CreateProjectInput, strawberry.argument(description="A new project.")],
) -> ProjectPayload:
    checks = Checks()
    team_id = ids.decode_optional_into(checks, input.team_id, "Team", field=("teamId",))
    async with write(info) as (session, actor):
        project = await projects.create_project(
            session,
            actor,
            checks=checks,
            team_id=team_id,
            title=input.title,
            prompt=input.prompt,
            prompt_planner_data=input.prompt_planner_data,
            workflow_version=WorkflowVersion(input.workflow_version),
        )
    return ProjectPayload(project=Project.from_row(project))


@returns_user_errors(ProjectPayload)
async def update_project(
    info: Info,
    input: Annotated[
        UpdateProjectInput,
        strawberry.argument(description="Changes to a project; omitted fields stay as they are."),
    ],
) -> ProjectPayload:
    checks = Checks()
    project_id = ids.decode_into(checks, input.id, "Project", field=("id",))
    async with write(info) as (session, actor):
        project = await projects.update_project(
            session,
            actor,
            checks=checks,
            project_id=project_id,
            title=given_required(input.title),
            prompt=given(input.prompt),
            prompt_planner_data=given(input.prompt_planner_data),
            status=given_required(input.status),
        )
    return ProjectPayload(project=Project.from_row(project))


@returns_user_errors(DeletePayload)
async def delete_project(
    info: Info,
    input: Annotated[DeleteInput, strawberry.argument(description="The object to delete.")],
) -> DeletePayload:
    project_id = ids.decode(input.id, "Project")
    async with write(info) as (session, actor):
        await discards.delete_project(
            session, actor, info.context.resources.generation_engine, project_id=project_id
        )
    return DeletePayload(deleted_id=input.id)


# --- scenes -----------------------------------------------------------------------


@returns_user_errors(ScenePayload)
async def create_scene(
    info: Info,
    input: Annotated[
        CreateSceneInput, strawberry.argument(description="A new scene, with its shots.")
    ],
) -> ScenePayload:
    within(input.shots, field=("shots",), most=MAX_SHOTS_PER_SCENE, label="shots")
    checks = Checks()
    project_id = ids.decode_into(checks, input.project_id, "Project", field=("projectId",))
    drafts = [
        ShotDraft(
            shot_number=s.shot_number, description=s.description, initial_prompt=s.initial_prompt
        )
        for s in input.shots
    ]
    async with write(info) as (session, actor):
        scene = await scenes.create_scene(
            session,
            actor,
            checks=checks,
            project_id=project_id,
            title=input.title,
            description=input.description,
            scene_number=input.scene_number,
            shots=drafts,
        )
    return ScenePayload(scene=Scene.from_row(scene))


@returns_user_errors(ScenePayload)
async def update_scene(
    info: Info,
    input: Annotated[
        UpdateSceneInput,
        strawberry.argument(description="Changes to a scene; omitted fields stay as they are."),
    ],
) -> ScenePayload:
    checks = Checks()
    scene_id = ids.decode_into(checks, input.id, "Scene", field=("id",))
    async with write(info) as (session, actor):
        scene = await scenes.update_scene(
            session,
            actor,
            checks=checks,
            scene_id=scene_id,
            title=given_required(input.title),
            description=given(input.description),
        )
    return ScenePayload(scene=Scene.from_row(scene))


@returns_user_errors(DeletePayload)
async def delete_scene(
    info: Info,
    input: Annotated[DeleteInput, strawberry.argument(description="The object to delete.")],
) -> DeletePayload:
    scene_id = ids.decode(input.id, "Scene")
    async with write(info) as (session, actor):
        await discards.delete_scene(
            session, actor, info.context.resources.generation_engine, scene_id=scene_id
        )
    return DeletePayload(deleted_id=input.id)


@returns_user_errors(ProjectPayload)
async def reorder_scenes(
    info: Info,
    input: Annotated[
        ReorderInput,
        strawberry.argument(description="A new order for the children of a project or scene."),
    ],
) -> ProjectPayload:
    within(input.ids, field=("ids",), most=MAX_SCENES_PER_PROJECT, label="scene IDs")
    checks = Checks()
    project_id = ids.decode_into(checks, input.parent_id, "Project", field=("parentId",))
    scene_ids = _decode_all(checks, input.ids, "Scene")
    checks.raise_if_any()
    async with write(info) as (session, actor):
        project = await scenes.reorder_scenes(
            session, actor, project_id=project_id, scene_ids=scene_ids
        )
    return ProjectPayload(project=Project.from_row(project))


# --- shots ------------------------------------------------------------------------


@returns_user_errors(ShotPayload)
async def create_shot(
    info: Info, input: Annotated[CreateShotInput, strawberry.argument(description="A new shot.")]
) -> ShotPayload:
    checks = Checks()
    scene_id = ids.decode_into(checks, input.scene_id, "Scene", field=("sceneId",))
    async with write(info) as (session, actor):
        shot = await shots.create_shot(
            session,
            actor,
            checks=checks,
            scene_id=scene_id,
            shot_number=input.shot_number,
            description=input.description,
            initial_prompt=input.initial_prompt,
        )
    return ShotPayload(shot=Shot.from_row(shot))


@returns_user_errors(ShotPayload)
async def update_shot(
    info: Info,
    input: Annotated[
        UpdateShotInput,
        strawberry.argument(description="Changes to a shot; omitted fields stay as they are."),
    ],
) -> ShotPayload:
    checks = Checks()
    shot_id = ids.decode_into(checks, input.id, "Shot", field=("id",))
    async with write(info) as (session, actor):
        shot = await shots.update_shot(
            session,
            actor,
            checks=checks,
            shot_id=shot_id,
            description=given(input.description),
            initial_prompt=given(input.initial_prompt),
        )
    return ShotPayload(shot=Shot.from_row(shot))


@returns_user_errors(DeletePayload)
async def delete_shot(
    info: Info,
    input: Annotated[DeleteInput, strawberry.argument(description="The object to delete.")],
) -> DeletePayload:
    shot_id = ids.decode(input.id, "Shot")
    async with write(info) as (session, actor):
        await discards.delete_shot(
            session, actor, info.context.resources.generation_engine, shot_id=shot_id
        )
    return DeletePayload(deleted_id=input.id)


@returns_user_errors(ScenePayload)
async def reorder_shots(
    info: Info,
    input: Annotated[
        ReorderInput,
        strawberry.argument(description="A new order for the children of a project or scene."),
    ],
) -> ScenePayload:
    within(input.ids, field=("ids",), most=MAX_SHOTS_PER_SCENE, label="shot IDs")
    checks = Checks()
    scene_id = ids.decode_into(checks, input.parent_id, "Scene", field=("parentId",))
    shot_ids = _decode_all(checks, input.ids, "Shot")
    checks.raise_if_any()
    async with write(info) as (session, actor):
        scene = await shots.reorder_shots(session, actor, scene_id=scene_id, shot_ids=shot_ids)
    return ScenePayload(scene=Scene.from_row(scene))


# --- images and selections ----------------------------------------------------------


@returns_user_errors(GenerateShotImagesPayload)
async def add_shot_images(
    info: Info,
    input: Annotated[
        AddShotImagesInput,
        strawberry.argument(
            description="A batch of images made elsewhere, recorded as the shot's next iteration."
        ),
    ],
) -> GenerateShotImagesPayload:
    within(input.images, field=("images",), most=MAX_VARIANTS, label="images")
    checks = Checks()
    shot_id = ids.decode_into(checks, input.shot_id, "Shot", field=("shotId",))
    parent_id = ids.decode_optional_into(
        checks, input.parent_image_id, "ShotImage", field=("parentImageId",)
    )
    drafts = [
        ImageDraft(
            variant_number=image.variant_number,
            status=GenerationStatus(image.status),
            image_url=image.image_url,
            metadata=cast(dict[str, Any] | None, image.metadata),
            asset_id=ids.decode_optional_into(
                checks, image.asset_id, "Asset", field=("images", str(index), "assetId")
            ),
        )
        for index, image in enumerate(input.images)
    ]
    async with write(info) as (session, actor):
        iteration = await requests.add_shot_images(
            session,
            actor,
            info.context.resources.generation_engine,
            checks=checks,
            shot_id=shot_id,
            iteration_prompt=input.iteration_prompt,
            images=drafts,
            parent_image_id=parent_id,
        )
    result = ImageIteration.from_iteration(iteration)
    return GenerateShotImagesPayload(iteration=result, images=result.images)


@returns_user_errors(ShotImagePayload)
async def set_image_favorite(
    info: Info,
    input: Annotated[
        SetImageFavoriteInput,
        strawberry.argument(description="Mark or unmark an image as a favourite."),
    ],
) -> ShotImagePayload:
    image_id = ids.decode(input.image_id, "ShotImage", field=("imageId",))
    async with write(info) as (session, actor):
        image = await shot_images.set_image_favorite(
            session, actor, image_id=image_id, is_favorite=input.is_favorite
        )
    return ShotImagePayload(image=ShotImage.from_row(image))


@returns_user_errors(DeletePayload)
async def delete_shot_image(
    info: Info,
    input: Annotated[DeleteInput, strawberry.argument(description="The object to delete.")],
) -> DeletePayload:
    image_id = ids.decode(input.id, "ShotImage")
    async with write(info) as (session, actor):
        await discards.delete_shot_image(
            session, actor, info.context.resources.generation_engine, image_id=image_id
        )
    return DeletePayload(deleted_id=input.id)


@returns_user_errors(StoryboardSelectionPayload)
async def select_master_shot(
    info: Info,
    input: Annotated[
        SelectMasterShotInput, strawberry.argument(description="Choose a shot's master image.")
    ],
) -> StoryboardSelectionPayload:
    checks = Checks()
    shot_id = ids.decode_into(checks, input.shot_id, "Shot", field=("shotId",))
    image_id = ids.decode_into(checks, input.image_id, "ShotImage", field=("imageId",))
    checks.raise_if_any()
    async with write(info) as (session, actor):
        selection = await discards.select_master_shot(
            session,
            actor,
            info.context.resources.generation_engine,
            shot_id=shot_id,
            image_id=image_id,
        )
    return StoryboardSelectionPayload(selection=StoryboardSelection.from_row(selection))
