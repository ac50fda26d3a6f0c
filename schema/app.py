"""The `Schema`: root types, guard rails, and error masking."""

from __future__ import annotations

import logging

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter

from resolvers.mutation import Mutation
from resolvers.query import Query
from schema.accounts import Team, User
from schema.storyboard import Project, Scene, Shot, ShotImage, StoryboardSelection

MAX_DEPTH = 12
MAX_ALIASES = 30
MAX_TOKENS = 4000

logger = logging.getLogger("studio.graphql")


def _is_unexpected(error: GraphQLError) -> bool:
    """Errors we raise on purpose are GraphQLErrors; anything else is a fault to mask."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        types=[User, Team, Project, Scene, Shot, ShotImage, StoryboardSelection],
        extensions=[
            lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
            lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: MaskErrors(
                should_mask_error=_is_unexpected,
                error_message="Something went wrong on our side; it has been logged.",
            ),
        ],
    )


schema = build_schema()
