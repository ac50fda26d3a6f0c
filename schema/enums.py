"""The API's enums: the domain's own enums, registered with descriptions for clients."""

from __future__ import annotations

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

__all__ = ["GenerationStatus", "TeamRole", "WorkflowStatus", "WorkflowVersion"]
