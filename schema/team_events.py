"""What the `teamEvents` subscription sends: one change a team's projects list or page shows."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Self

import strawberry

from schema import ids, nodes
from schema.context import Info
from schema.events import MAX_CURSOR_LENGTH, field_names
from schema.node import Node
from services import cursors
from services.realtime import team_events

_CURSOR = "TeamEvent"


# The kinds `services.realtime.team_events` records; tests/test_team_events.py checks
# that the two lists stay the same.
@strawberry.enum(
    description="What happened in a team: a project created, updated or deleted, a member "
    "joined, left or changed role, an invitation made, accepted, revoked or expired, or "
    "SNAPSHOT, where a feed starts."
)
class TeamEventKind(Enum):
    SNAPSHOT = strawberry.enum_value(
        "SNAPSHOT",
        description="Not a change: the first event of a feed subscribed to without `after`; "
        "its cursor marks where the feed starts, and its node is the team.",
    )
    PROJECT_CREATED = strawberry.enum_value("PROJECT_CREATED", description="A new project.")
    PROJECT_UPDATED = strawberry.enum_value(
        "PROJECT_UPDATED",
        description="Something a projects list shows changed: `changes` names the project's "
        "fields (title, status, workflowVersion, owner) and `progress` when its counts of "
        "scenes, shots, masters or clips changed. One event per project per write.",
    )
    PROJECT_DELETED = strawberry.enum_value(
        "PROJECT_DELETED", description="A project was deleted; `node` is null."
    )
    MEMBER_JOINED = strawberry.enum_value(
        "MEMBER_JOINED", description="Someone joined the team; `node` is the user."
    )
    MEMBER_LEFT = strawberry.enum_value(
        "MEMBER_LEFT", description="A member left the team or was removed from it."
    )
    MEMBER_ROLE_CHANGED = strawberry.enum_value(
        "MEMBER_ROLE_CHANGED", description="A member's role changed; `changes` is [role]."
    )
    INVITATION_CREATED = strawberry.enum_value(
        "INVITATION_CREATED", description="A new invitation (sent to owners and admins only)."
    )
    INVITATION_ACCEPTED = strawberry.enum_value(
        "INVITATION_ACCEPTED",
        description="An invitation was used up: its MEMBER_JOINED is in the same write.",
    )
    INVITATION_REVOKED = strawberry.enum_value(
        "INVITATION_REVOKED",
        description="An invitation was revoked, or went with its maker's membership.",
    )
    INVITATION_EXPIRED = strawberry.enum_value(
        "INVITATION_EXPIRED", description="An expired invitation was cleared away."
    )


def encode_cursor(team_id: int, sequence: int) -> str:
    """The cursor of the team's event numbered `sequence`."""
    return cursors.encode_numbers(_CURSOR, team_id, sequence)


def decode_cursor(cursor: str, team_id: int) -> int | None:
    """The sequence number in a cursor of this team's events; None if it is not one
    (another team's, a project or library event's, garbage). Never raises."""
    decoded = cursors.decode_numbers(
        cursor, _CURSOR, 2, max_length=MAX_CURSOR_LENGTH, high=ids.MAX_PK
    )
    if decoded is None or decoded[0] != team_id:
        return None
    return decoded[1]


@strawberry.type(
    description="One change in a team, for its projects list and team page: projects, "
    "members and invitations, in order, each with a cursor. Invitation events reach the "
    "team's owners and admins only."
)
class TeamEvent:
    cursor: str = strawberry.field(
        description="Pass as `after` to resume right after this event, missing nothing."
    )
    sequence: int = strawberry.field(
        description="The event's number in its team: increasing, each once. Numbers of "
        "events the viewer may not see (invitations, unless an owner or admin) are skipped."
    )
    kind: TeamEventKind = strawberry.field(description="What happened.")
    node_id: strawberry.ID = strawberry.field(
        description="The ID of the Project, User (of a member event) or Invitation it happened "
        "to, even once deleted; the Team for SNAPSHOT."
    )
    changes: list[str] = strawberry.field(
        description="For PROJECT_UPDATED the fields that changed (title, status, "
        "workflowVersion, owner, progress); for MEMBER_ROLE_CHANGED [role]; else empty."
    )
    at: datetime = strawberry.field(description="When the change was committed.")
    team_id: strawberry.ID = strawberry.field(description="The team it happened in.")
    event: strawberry.Private[team_events.TeamEvent]

    @classmethod
    def from_event(cls, event: team_events.TeamEvent) -> Self:
        """The message for a recorded (or SNAPSHOT) event."""
        return cls(
            cursor=encode_cursor(event.team_id, event.sequence),
            sequence=event.sequence,
            kind=TeamEventKind(event.kind),
            node_id=ids.encode(event.node_type, event.node_id),
            changes=field_names(event.changes),
            at=event.at,
            team_id=ids.encode("Team", event.team_id),
            event=event,
        )

    @strawberry.field(
        description="The object as it is now, read when the event is sent; null once deleted "
        "(a project, a used or revoked invitation), or when the viewer may no longer see it."
    )
    async def node(self, info: Info) -> Node | None:
        if self.event.kind in team_events.GONE:
            return None
        return await nodes.resolve(info, self.event.node_type, self.event.node_id)
