"""`UserError`: an expected failure, reported in a payload rather than as a GraphQL error."""

from __future__ import annotations

import strawberry

from services.errors import StudioError


@strawberry.type(
    description="Something about the input that stopped a mutation; nothing was changed."
)
class UserError:
    code: str = strawberry.field(
        description="A stable, machine-readable code, such as NOT_FOUND, BLANK or TOO_LONG."
    )
    field: list[str] | None = strawberry.field(
        description="The path of the input field at fault, relative to `input`, if any."
    )
    message: str = strawberry.field(description="What went wrong, for a person to read.")


def user_errors(error: StudioError) -> list[UserError]:
    return [
        UserError(code=e.code, field=list(e.field) or None, message=e.message) for e in error.errors
    ]
