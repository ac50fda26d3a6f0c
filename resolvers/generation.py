"""Mutations that start, cancel and retry generations on Replicate."""

from typing import Annotated

import strawberry

from resolvers.writing import model_params, returns_user_errors, write
from schema import ids
from schema.context import Info
from schema.generation import (
    AnimateShotInput,
    AnimateStoryboardInput,
    AnimateStoryboardPayload,
    GenerateShotImagesInput,
    GenerationPayload,
    GenerationRefInput,
)
from schema.payloads import GenerateShotImagesPayload, StoryboardSelectionPayload
from schema.storyboard import ImageIteration, ShotImage, StoryboardSelection
from services.errors import InvalidInput
from services.generation import requests, statuses
from services.tables import ShotImageRow, StoryboardSelectionRow
from services.validation import Checks


@returns_user_errors(GenerateShotImagesPayload)
async def generate_shot_images(
    info: Info,
    input: Annotated[
        GenerateShotImagesInput,
        strawberry.argument(description="Start a shot's next iteration of images on Replicate."),
    ],
) -> GenerateShotImagesPayload:
    generation_engine = info.context.require_generation_engine()
    checks = Checks()
    shot_id = ids.decode_into(checks, input.shot_id, "Shot", field=("shotId",))
    parent_id = ids.decode_optional_into(
        checks, input.parent_image_id, "ShotImage", field=("parentImageId",)
    )
    params = model_params(checks, input.params)
    async with write(info) as (session, actor):
        iteration = await requests.start_iteration(
            session,
            actor,
            generation_engine,
            checks=checks,
            shot_id=shot_id,
            prompt=input.prompt,
            parent_image_id=parent_id,
            variant_count=input.variant_count,
            model=input.model,
            params=params,
        )
    result = ImageIteration.from_iteration(iteration)
    return GenerateShotImagesPayload(iteration=result, images=result.images)


@returns_user_errors(StoryboardSelectionPayload)
async def animate_shot(
    info: Info,
    input: Annotated[
        AnimateShotInput,
        strawberry.argument(
            description="Animate a storyboard selection's master image into a clip."
        ),
    ],
) -> StoryboardSelectionPayload:
    generation_engine = info.context.require_generation_engine()
    checks = Checks()
    selection_id = ids.decode_into(
        checks, input.selection_id, "StoryboardSelection", field=("selectionId",)
    )
    params = model_params(checks, input.params)
    async with write(info) as (session, actor):
        selection = await requests.animate_shot(
            session,
            actor,
            generation_engine,
            checks=checks,
            selection_id=selection_id,
            model=input.model,
            params=params,
        )
    return StoryboardSelectionPayload(selection=StoryboardSelection.from_row(selection))


@returns_user_errors(AnimateStoryboardPayload)
async def animate_storyboard(
    info: Info,
    input: Annotated[
        AnimateStoryboardInput,
        strawberry.argument(description="Animate every selection of a project."),
    ],
) -> AnimateStoryboardPayload:
    generation_engine = info.context.require_generation_engine()
    checks = Checks()
    project_id = ids.decode_into(checks, input.project_id, "Project", field=("projectId",))
    params = model_params(checks, input.params)
    async with write(info) as (session, actor):
        selections = await requests.animate_storyboard(
            session,
            actor,
            generation_engine,
            checks=checks,
            project_id=project_id,
            model=input.model,
            params=params,
            only_missing=input.only_missing,
        )
    return AnimateStoryboardPayload(
        selections=[StoryboardSelection.from_row(row) for row in selections]
    )


def _generation_ref(global_id: str) -> tuple[statuses.Kind, int]:
    parsed = ids.parse(global_id)
    if parsed is not None and parsed[0] == "ShotImage":
        return "image", parsed[1]
    if parsed is not None and parsed[0] == "StoryboardSelection":
        return "animation", parsed[1]
    raise InvalidInput(
        "Expected the ID of a ShotImage or a StoryboardSelection.", code="INVALID_ID", field=("id",)
    )


def _generation_payload(row: statuses.Row) -> GenerationPayload:
    if isinstance(row, ShotImageRow):
        return GenerationPayload(image=ShotImage.from_row(row))
    assert isinstance(row, StoryboardSelectionRow)  # cancel and retry take no asset
    return GenerationPayload(selection=StoryboardSelection.from_row(row))


@returns_user_errors(GenerationPayload)
async def cancel_generation(
    info: Info,
    input: Annotated[
        GenerationRefInput,
        strawberry.argument(description="The PENDING or PROCESSING generation to cancel."),
    ],
) -> GenerationPayload:
    generation_engine = info.context.require_generation_engine()
    kind, row_id = _generation_ref(input.id)
    async with write(info) as (session, actor):
        row = await requests.cancel(session, actor, generation_engine, kind=kind, row_id=row_id)
    return _generation_payload(row)


@returns_user_errors(GenerationPayload)
async def retry_generation(
    info: Info,
    input: Annotated[
        GenerationRefInput,
        strawberry.argument(description="The FAILED or CANCELED generation to start again."),
    ],
) -> GenerationPayload:
    generation_engine = info.context.require_generation_engine()
    kind, row_id = _generation_ref(input.id)
    async with write(info) as (session, actor):
        row = await requests.retry(session, actor, generation_engine, kind=kind, row_id=row_id)
    return _generation_payload(row)
