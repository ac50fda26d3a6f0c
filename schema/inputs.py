"""Inputs of the storyboard mutations. An omitted optional field leaves a value unchanged."""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from schema.enums import GenerationStatus, WorkflowStatus, WorkflowVersion


@strawberry.input(description="A new project.")
class CreateProjectInput:
    title: str = strawberry.field(description="1 to 200 characters.")
    team_id: strawberry.ID | None = strawberry.field(
        default=None, description="The team to make it in; your personal team if omitted."
    )
    prompt: str | None = strawberry.field(default=None, description="The brain dump to start from.")
    prompt_planner_data: str | None = strawberry.field(
        default=None, description="The prompt planner's working state."
    )
    workflow_version: WorkflowVersion = strawberry.field(
        default=WorkflowVersion.V2_REDESIGN, description="The editor workflow to use."
    )


@strawberry.input(description="Changes to a project; omitted fields stay as they are.")
class UpdateProjectInput:
    id: strawberry.ID = strawberry.field(description="The project.")
    title: str | None = strawberry.field(
        default=strawberry.UNSET, description="A new title (null leaves it unchanged)."
    )
    prompt: str | None = strawberry.field(
        default=strawberry.UNSET, description="A new prompt; null clears it."
    )
    prompt_planner_data: str | None = strawberry.field(
        default=strawberry.UNSET, description="New planner data; null clears it."
    )
    status: WorkflowStatus | None = strawberry.field(
        default=strawberry.UNSET,
        description="Set the workflow status, forwards or backwards (null leaves it unchanged).",
    )


@strawberry.input(description="The object to delete.")
class DeleteInput:
    id: strawberry.ID = strawberry.field(description="The ID of the object to delete.")


@strawberry.input(description="A new order for the children of a project or scene.")
class ReorderInput:
    parent_id: strawberry.ID = strawberry.field(
        description="The project (for scenes) or scene (for shots)."
    )
    ids: list[strawberry.ID] = strawberry.field(
        description="Every child's ID, each once, in the new order: at most 500 scenes or "
        "200 shots (longer lists are refused with TOO_LONG before any ID is read)."
    )


@strawberry.input(description="A shot to create along with its scene.")
class ShotDraftInput:
    shot_number: int | None = strawberry.field(
        default=None, description="Its place in the scene; after the numbered ones if omitted."
    )
    description: str | None = strawberry.field(default=None, description="What the shot shows.")
    initial_prompt: str | None = strawberry.field(
        default=None, description="The prompt of its first image iteration."
    )


@strawberry.input(description="A new scene, with its shots.")
class CreateSceneInput:
    project_id: strawberry.ID = strawberry.field(description="The project.")
    title: str = strawberry.field(description="1 to 200 characters.")
    scene_number: int | None = strawberry.field(
        default=None, description="Where to insert it (1..n+1); appended if omitted."
    )
    description: str | None = strawberry.field(default=None, description="What happens in it.")
    shots: list[ShotDraftInput] = strawberry.field(
        default_factory=list,
        description="Shots to create in it, at most 200 (more: TOO_LONG, nothing created).",
    )


@strawberry.input(description="Changes to a scene; omitted fields stay as they are.")
class UpdateSceneInput:
    id: strawberry.ID = strawberry.field(description="The scene.")
    title: str | None = strawberry.field(
        default=strawberry.UNSET, description="A new title (null leaves it unchanged)."
    )
    description: str | None = strawberry.field(
        default=strawberry.UNSET, description="A new description; null clears it."
    )


@strawberry.input(description="A new shot.")
class CreateShotInput:
    scene_id: strawberry.ID = strawberry.field(description="The scene.")
    shot_number: int | None = strawberry.field(
        default=None, description="Where to insert it (1..n+1); appended if omitted."
    )
    description: str | None = strawberry.field(default=None, description="What the shot shows.")
    initial_prompt: str | None = strawberry.field(
        default=None, description="The prompt of its first image iteration."
    )


@strawberry.input(description="Changes to a shot; omitted fields stay as they are.")
class UpdateShotInput:
    id: strawberry.ID = strawberry.field(description="The shot.")
    description: str | None = strawberry.field(
        default=strawberry.UNSET, description="A new description; null clears it."
    )
    initial_prompt: str | None = strawberry.field(
        default=strawberry.UNSET, description="A new initial prompt; null clears it."
    )


@strawberry.input(description="An image made elsewhere.")
class ShotImageDraftInput:
    variant_number: int = strawberry.field(
        description="Its place in the iteration, 0..11, unique: six variants are 0..5."
    )
    status: GenerationStatus = strawberry.field(
        description="COMPLETE (needs an imageUrl) or FAILED; an import records finished work "
        "and never starts a generation (use generateShotImages for that)."
    )
    image_url: str | None = strawberry.field(
        default=None,
        description="An absolute, public http(s) URL. It is shown at once and copied into the "
        "studio's storage in the background; only then can the image be refined or animated. "
        "Or give assetId instead.",
    )
    metadata: JSON | None = strawberry.field(
        default=None,
        description="Generation parameters, a JSON object of at most 16 KiB; kept for clients, "
        "never sent to a provider.",
    )
    asset_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="Instead of an imageUrl: a READY IMAGE asset of the library that you may "
        "see. The image shares the asset's stored file (status COMPLETE), so it can be refined "
        "and animated at once. Give exactly one of imageUrl and assetId for a COMPLETE image.",
    )


@strawberry.input(
    description="A batch of images made elsewhere, recorded as the shot's next iteration."
)
class AddShotImagesInput:
    shot_id: strawberry.ID = strawberry.field(description="The shot.")
    iteration_prompt: str = strawberry.field(description="The prompt the images were made from.")
    images: list[ShotImageDraftInput] = strawberry.field(
        description="1 to 12 images (more: TOO_LONG, nothing recorded)."
    )
    parent_image_id: strawberry.ID | None = strawberry.field(
        default=None, description="The image of the same shot these refine, if any."
    )


@strawberry.input(description="Mark or unmark an image as a favourite.")
class SetImageFavoriteInput:
    image_id: strawberry.ID = strawberry.field(description="The image.")
    is_favorite: bool = strawberry.field(description="Whether it is a favourite.")


@strawberry.input(description="Choose a shot's master image.")
class SelectMasterShotInput:
    shot_id: strawberry.ID = strawberry.field(description="The shot.")
    image_id: strawberry.ID = strawberry.field(description="A COMPLETE image of that shot.")
