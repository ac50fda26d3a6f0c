"""Payloads of the storyboard mutations: what was acted on, and `userErrors`."""

from __future__ import annotations

import strawberry

from schema.errors import UserError
from schema.storyboard import ImageIteration, Project, Scene, Shot, ShotImage, StoryboardSelection

_ERRORS = "Why the mutation failed, if it did; when not empty, nothing was changed."


@strawberry.type(description="The result of a project mutation.")
class ProjectPayload:
    project: Project | None = strawberry.field(default=None, description="The project acted on.")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description=_ERRORS)


@strawberry.type(description="The result of a scene mutation.")
class ScenePayload:
    scene: Scene | None = strawberry.field(default=None, description="The scene acted on.")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description=_ERRORS)


@strawberry.type(description="The result of a shot mutation.")
class ShotPayload:
    shot: Shot | None = strawberry.field(default=None, description="The shot acted on.")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description=_ERRORS)


@strawberry.type(description="The result of a delete.")
class DeletePayload:
    deleted_id: strawberry.ID | None = strawberry.field(
        default=None, description="The ID of what was deleted."
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list, description=_ERRORS)


@strawberry.type(description="The result of starting or recording an image iteration.")
class GenerateShotImagesPayload:
    iteration: ImageIteration | None = strawberry.field(
        default=None, description="The new iteration."
    )
    images: list[ShotImage] | None = strawberry.field(default=None, description="Its images.")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description=_ERRORS)


@strawberry.type(description="The result of an image mutation.")
class ShotImagePayload:
    image: ShotImage | None = strawberry.field(default=None, description="The image acted on.")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description=_ERRORS)


@strawberry.type(description="The result of a storyboard selection mutation.")
class StoryboardSelectionPayload:
    selection: StoryboardSelection | None = strawberry.field(
        default=None, description="The selection acted on."
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list, description=_ERRORS)
