"""The API's enums: the domain's own enums, registered with descriptions for clients."""

from __future__ import annotations

from enum import Enum

import strawberry

from services.tables import GenerationStatus, TeamRole, WorkflowStatus, WorkflowVersion

strawberry.enum(
    WorkflowStatus,
    description="Where a project stands; it moves forward by itself as the work reaches each stage."
    " A person may set it either way.",
)
strawberry.enum(WorkflowVersion, description="Which editor workflow a project was made with.")
strawberry.enum(GenerationStatus, description="The state of an image or video generation.")
strawberry.enum(
    TeamRole,
    description=(
        "A member's role: OWNER and ADMIN manage members, EDITOR changes projects, "
        "VIEWER only reads."
    ),
)


# The names `services.realtime.events` records (`kind_of` of each tracked type and change);
# tests/test_events.py checks that the two lists stay the same.
@strawberry.enum(
    description="What happened in a project: the node's type and what happened to it "
    "(CREATED, UPDATED or DELETED), or SNAPSHOT, where a feed starts."
)
class ProjectEventKind(Enum):
    SNAPSHOT = strawberry.enum_value(
        "SNAPSHOT",
        description="Not a change: the first event of a feed subscribed to without `after`; "
        "its cursor marks where the feed starts.",
    )
    PROJECT_CREATED = "PROJECT_CREATED"
    PROJECT_UPDATED = "PROJECT_UPDATED"
    PROJECT_DELETED = strawberry.enum_value(
        "PROJECT_DELETED", description="The project is gone: the last event of its feed."
    )
    SCENE_CREATED = "SCENE_CREATED"
    SCENE_UPDATED = "SCENE_UPDATED"
    SCENE_DELETED = "SCENE_DELETED"
    SHOT_CREATED = "SHOT_CREATED"
    SHOT_UPDATED = "SHOT_UPDATED"
    SHOT_DELETED = "SHOT_DELETED"
    SHOT_IMAGE_CREATED = "SHOT_IMAGE_CREATED"
    SHOT_IMAGE_UPDATED = "SHOT_IMAGE_UPDATED"
    SHOT_IMAGE_DELETED = "SHOT_IMAGE_DELETED"
    STORYBOARD_SELECTION_CREATED = "STORYBOARD_SELECTION_CREATED"
    STORYBOARD_SELECTION_UPDATED = "STORYBOARD_SELECTION_UPDATED"
    STORYBOARD_SELECTION_DELETED = "STORYBOARD_SELECTION_DELETED"


__all__ = ["GenerationStatus", "ProjectEventKind", "TeamRole", "WorkflowStatus", "WorkflowVersion"]
