"""The API's enums: the domain's own, described for clients."""

from __future__ import annotations

import strawberry

from services import tables

WorkflowStatus = strawberry.enum(
    tables.WorkflowStatus,
    description="Where a project stands; it moves forward by itself as the work reaches each stage.",
)
WorkflowVersion = strawberry.enum(
    tables.WorkflowVersion, description="Which editor workflow a project was made with."
)
GenerationStatus = strawberry.enum(
    tables.GenerationStatus, description="The state of an image or video generation."
)
TeamRole = strawberry.enum(
    tables.TeamRole,
    description=(
        "A member's role: OWNER and ADMIN manage members, EDITOR changes projects, "
        "VIEWER only reads."
    ),
)
