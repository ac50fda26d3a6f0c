"""Inputs and payloads of the library's asset mutations, for every branch of it to reuse."""

from __future__ import annotations

import strawberry

from schema.errors import UserError
from schema.library import Asset
from services.library.tables import SceneType

_ERRORS = "Why the mutation failed, if it did; when not empty, nothing was changed."


@strawberry.type(description="The result of a mutation of one asset.")
class AssetPayload:
    asset: Asset | None = strawberry.field(default=None, description="The asset acted on.")
    user_errors: list[UserError] = strawberry.field(default_factory=list, description=_ERRORS)


@strawberry.input(
    description="Changes to an asset's metadata; omitted fields stay as they are. Needs EDIT "
    "permission on it. Every problem of the input is reported at once, and then nothing changes."
)
class UpdateAssetInput:
    id: strawberry.ID = strawberry.field(description="The asset.")
    name: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="A new name, 1 to 200 characters after trimming (null: unchanged).",
    )
    description: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="A new description, at most 10,000 characters; null or blank clears it.",
    )
    tags: list[str] | None = strawberry.field(
        default=strawberry.UNSET,
        description="The new tags, replacing the old: at most 30, each 1 to 50 characters "
        "after trimming, stored lower-case without repeats (the first kept, in order); null or "
        "[] clears them.",
    )
    category: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="A new category, at most 100 characters; null or blank clears it.",
    )
    mood: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="A new mood, at most 100 characters; null or blank clears it.",
    )
    scene_type: SceneType | None = strawberry.field(
        default=strawberry.UNSET, description="The kind of shot it shows; null clears it."
    )
    can_duplicate: bool | None = strawberry.field(
        default=strawberry.UNSET,
        description="Whether it may be duplicated (null: unchanged). Needs ADMIN on it.",
    )
    can_remix: bool | None = strawberry.field(
        default=strawberry.UNSET,
        description="Whether it may be remixed (null: unchanged). Needs ADMIN on it.",
    )
