"""Generation on Replicate: the models on offer, and the inputs and payloads of its mutations."""

from __future__ import annotations

from typing import cast

import strawberry
from strawberry.scalars import JSON

from schema.errors import UserError
from schema.storyboard import ShotImage, StoryboardSelection
from services.generation import catalog
from services.generation.catalog import ModelKind, ModelParameterType

strawberry.enum(ModelKind, description="What a generation model makes from what.")
strawberry.enum(
    ModelParameterType,
    description=(
        'What a model parameter takes, as a JSON value: INT a whole number (4, not 4.5 or "4"), '
        "FLOAT any finite number, STRING a string, BOOLEAN true or false, ENUM one of the "
        "parameter's `choices`."
    ),
)

_ERRORS = "Why the mutation failed, if it did; when not empty, nothing was changed or started."


@strawberry.type(
    description=(
        "A parameter a client may pass in `params` for a model: its type, limits and default. "
        "`default`, `minimum`, `maximum` and `choices` are JSON values of the parameter's type "
        "(an integer for INT, a float for FLOAT), exactly as `params` takes them. Example: "
        '`{ name: "output_quality", type: INT, default: 90, minimum: 0, maximum: 100 }`.'
    )
)
class GenerationParameter:
    name: str = strawberry.field(description="The parameter's name in `params`.")
    type: ModelParameterType = strawberry.field(
        description="What it takes: INT, FLOAT, STRING, BOOLEAN, or ENUM (one of `choices`)."
    )
    default: JSON = strawberry.field(
        description="The value used when `params` leaves it out, in the parameter's type."
    )
    description: str = strawberry.field(description="What it does.")
    minimum: JSON | None = strawberry.field(
        description="INT and FLOAT: the smallest value allowed (inclusive), in the parameter's "
        "type; null when there is no lower limit."
    )
    maximum: JSON | None = strawberry.field(
        description="INT and FLOAT: the largest value allowed (inclusive), in the parameter's "
        "type; null when there is no upper limit."
    )
    choices: list[JSON] | None = strawberry.field(
        description="ENUM: the only values allowed, each to be sent as listed (a number stays a "
        'number: kling-v2.1\'s `duration` takes 10, not "10"); null for other types.'
    )
    max_length: int | None = strawberry.field(
        description="STRING: the most characters allowed; null for other types."
    )

    @classmethod
    def from_param(cls, param: catalog.Param) -> GenerationParameter:
        return cls(
            name=param.name,
            type=param.type,
            default=cast(JSON, param.default),
            description=param.description,
            minimum=cast(JSON | None, param.minimum),
            maximum=cast(JSON | None, param.maximum),
            choices=[cast(JSON, choice) for choice in param.choices] or None,
            max_length=param.max_length,
        )


@strawberry.type(description="A model that generateShotImages or animateShot can use.")
class GenerationModel:
    key: str = strawberry.field(description="What to pass as `model`.")
    replicate_model: str = strawberry.field(description="The model on Replicate (owner/name).")
    kinds: list[ModelKind] = strawberry.field(description="What it makes from what.")
    default_for: list[ModelKind] = strawberry.field(description="The kinds it is the default for.")
    description: str = strawberry.field(description="What it is good for.")
    parameters: list[GenerationParameter] = strawberry.field(
        description="Every parameter `params` may hold for this model; anything else is refused."
    )

    @classmethod
    def from_model(cls, model: catalog.GenerationModel) -> GenerationModel:
        return cls(
            key=model.key,
            replicate_model=model.replicate_model,
            kinds=list(model.kinds),
            default_for=[kind for kind, key in catalog.DEFAULTS.items() if key == model.key],
            description=model.description,
            parameters=[GenerationParameter.from_param(param) for param in model.params],
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
    variant_count: int = strawberry.field(
        default=6, description="How many variants, 1..12; they are numbered from 0."
    )
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
