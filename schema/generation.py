"""Generation on Replicate: the models on offer, and the inputs and payloads of its mutations."""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from schema.errors import UserError
from schema.storyboard import ShotImage, StoryboardSelection
from services.generation import catalog
from services.generation.catalog import ModelKind

strawberry.enum(ModelKind, description="What a generation model makes from what.")

_ERRORS = "Why the mutation failed, if it did; when not empty, nothing was changed or started."


@strawberry.type(description="A parameter a client may pass in `params` for a model.")
class GenerationParameter:
    name: str = strawberry.field(description="The parameter's name in `params`.")
    type: str = strawberry.field(description="int, float, str or bool.")
    default: JSON | None = strawberry.field(description="The value used when it is not given.")
    description: str = strawberry.field(description="What it does.")
    minimum: float | None = strawberry.field(description="The smallest value allowed, if any.")
    maximum: float | None = strawberry.field(description="The largest value allowed, if any.")
    choices: list[JSON] | None = strawberry.field(description="The only values allowed, if listed.")


@strawberry.type(description="A model that generateShotImages or animateShot can use.")
class GenerationModel:
    key: str = strawberry.field(description="What to pass as `model`.")
    replicate_model: str = strawberry.field(description="The model on Replicate (owner/name).")
    kinds: list[ModelKind] = strawberry.field(description="What it makes from what.")
    default_for: list[ModelKind] = strawberry.field(description="The kinds it is the default for.")
    description: str = strawberry.field(description="What it is good for.")
    parameters: list[GenerationParameter] = strawberry.field(description="What `params` may hold.")

    @classmethod
    def from_model(cls, model: catalog.GenerationModel) -> GenerationModel:
        return cls(
            key=model.key,
            replicate_model=model.replicate_model,
            kinds=list(model.kinds),
            default_for=[kind for kind, key in catalog.DEFAULTS.items() if key == model.key],
            description=model.description,
            parameters=[
                GenerationParameter(
                    name=p.name,
                    type=p.type.__name__,
                    default=p.default,
                    description=p.description,
                    minimum=p.minimum,
                    maximum=p.maximum,
                    choices=list(p.choices) or None,
                )
                for p in model.params
            ],
        )


@strawberry.input(description="Start a shot's next iteration of images on Replicate.")
class GenerateShotImagesInput:
    shot_id: strawberry.ID = strawberry.field(description="The shot.")
    prompt: str | None = strawberry.field(
        default=None, description="The prompt; the shot's initial prompt if omitted."
    )
    parent_image_id: strawberry.ID | None = strawberry.field(
        default=None, description="A COMPLETE image of the shot to refine (image-to-image)."
    )
    variant_count: int = strawberry.field(default=6, description="How many variants, 1..12.")
    model: str | None = strawberry.field(
        default=None,
        description="A model key from generationModels; flux-schnell, or flux-dev to refine.",
    )
    params: JSON | None = strawberry.field(
        default=None, description="Model parameters (see generationModels), e.g. aspect_ratio."
    )


@strawberry.input(description="Animate a storyboard selection's master image into a clip.")
class AnimateShotInput:
    selection_id: strawberry.ID = strawberry.field(description="The storyboard selection.")
    model: str | None = strawberry.field(
        default=None, description="An image-to-video model key; kling-v2.1 if omitted."
    )
    params: JSON | None = strawberry.field(default=None, description="Model parameters.")


@strawberry.input(description="Animate every selection of a project.")
class AnimateStoryboardInput:
    project_id: strawberry.ID = strawberry.field(description="The project.")
    model: str | None = strawberry.field(
        default=None, description="An image-to-video model key; kling-v2.1 if omitted."
    )
    params: JSON | None = strawberry.field(default=None, description="Model parameters.")
    only_missing: bool = strawberry.field(
        default=True, description="Skip selections whose clip is already COMPLETE."
    )


@strawberry.input(description="A generation: the ID of a ShotImage or a StoryboardSelection.")
class GenerationRefInput:
    id: strawberry.ID = strawberry.field(description="A ShotImage or StoryboardSelection ID.")


@strawberry.type(description="The result of animating a storyboard.")
class AnimateStoryboardPayload:
    selections: list[StoryboardSelection] | None = strawberry.field(
        default=None, description="The selections now being animated."
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list, description=_ERRORS)


@strawberry.type(description="The result of cancelling or retrying a generation.")
class GenerationPayload:
    image: ShotImage | None = strawberry.field(
        default=None, description="The image, if it was one."
    )
    selection: StoryboardSelection | None = strawberry.field(
        default=None, description="The selection, if it was an animation."
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list, description=_ERRORS)
