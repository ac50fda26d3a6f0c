"""Who may do what: a signed-in user's roles, team by team.

Every member of a team reads its projects; OWNER, ADMIN and EDITOR change them;
OWNER and ADMIN manage members. Objects of teams the actor is not in are
reported as not found, so their existence never leaks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from services.errors import NotFound, PermissionDenied
from services.tables import TeamRole

WRITERS = frozenset({TeamRole.OWNER, TeamRole.ADMIN, TeamRole.EDITOR})
MANAGERS = frozenset({TeamRole.OWNER, TeamRole.ADMIN})


@dataclass(frozen=True)
class Actor:
    """A signed-in user and their role in each of their teams.

    `signed_in_until` is when the bearer token they signed in with expires (an aware
    UTC datetime), or None when they were not signed in by a token.
    """

    user_id: int
    roles: Mapping[int, TeamRole] = field(default_factory=dict)
    signed_in_until: datetime | None = None

    @property
    def team_ids(self) -> list[int]:
        """The ids of the actor's teams, ascending; [] for a user in no team."""
        return sorted(self.roles)

    def role_in(self, team_id: int) -> TeamRole | None:
        """The actor's role in team `team_id`; None if they are not a member."""
        return self.roles.get(team_id)

    def can_read(self, team_id: int) -> bool:
        """Whether the actor is a member of team `team_id` (any role reads)."""
        return team_id in self.roles

    def require_read(self, team_id: int, what: str) -> None:
        """Raise NotFound unless the actor is in the team."""
        if not self.can_read(team_id):
            raise NotFound(what)

    def require_write(self, team_id: int, what: str) -> None:
        """Raise NotFound outside the team, PermissionDenied for a VIEWER."""
        self.require_read(team_id, what)
        if self.roles[team_id] not in WRITERS:
            raise PermissionDenied(
                f"You have read-only access to this team, so you cannot change this {what}."
            )

    def require_manage(self, team_id: int) -> None:
        """Raise NotFound outside the team, PermissionDenied unless OWNER or ADMIN."""
        self.require_read(team_id, "team")
        if self.roles[team_id] not in MANAGERS:
            raise PermissionDenied("Only a team's owners and admins can manage its members.")
