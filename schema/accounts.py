"""Users, teams and their members."""

from __future__ import annotations

from datetime import datetime
from typing import Self

import strawberry

from schema import ids
from schema.context import Info
from schema.enums import TeamRole
from schema.errors import UserError
from schema.node import Node
from services.accounts.access import MANAGERS
from services.tables import TeamInvitationRow, TeamRow, UserRow


@strawberry.type(description="A person with an account.")
class User(Node):
    email: str = strawberry.field(description="The email address they sign in with.")
    name: str = strawberry.field(description="Their display name.")
    created_at: datetime = strawberry.field(description="When the account was made.")
    pk: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: UserRow) -> Self:
        return cls(
            id=ids.encode("User", row.id),
            pk=row.id or 0,
            email=row.email,
            name=row.name,
            created_at=row.created_at,
        )

    @strawberry.field(description="The teams of this user that you are in too.")
    async def teams(self, info: Info) -> list[Team]:
        actor = info.context.require_actor()
        memberships = await info.context.loaders.memberships_of_user.load(self.pk)
        visible = [m.team_id for m in memberships if actor.can_read(m.team_id)]
        rows = await info.context.loaders.team.load_many(visible)
        return [Team.from_row(row) for row in rows if row is not None]


async def member_team(info: Info, team_id: int) -> Team | None:
    """The team, if the viewer is a member of it (as `node(id)` shows a team); None for a
    team they are not in or one that is gone."""
    if not info.context.require_actor().can_read(team_id):
        return None
    row = await info.context.loaders.team.load(team_id)
    return Team.from_row(row) if row else None


async def visible_user(info: Info, user_id: int | None) -> User | None:
    """The user as `node(id)` shows them: to themselves and to those who share a team
    with them. None for no `user_id`, an account that is gone, or a stranger."""
    if user_id is None:
        return None
    actor = info.context.require_actor()
    memberships = await info.context.loaders.memberships_of_user.load(user_id)
    if user_id != actor.user_id and not any(actor.can_read(m.team_id) for m in memberships):
        return None
    row = await info.context.loaders.user.load(user_id)
    return User.from_row(row) if row else None


@strawberry.type(description="A group of people who share projects.")
class Team(Node):
    name: str = strawberry.field(description="The team's name.")
    is_personal: bool = strawberry.field(
        description="Whether this is a user's personal team, made at sign-up, with one member."
    )
    created_at: datetime = strawberry.field(description="When the team was made.")
    pk: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: TeamRow) -> Self:
        return cls(
            id=ids.encode("Team", row.id),
            pk=row.id or 0,
            name=row.name,
            is_personal=row.is_personal,
            created_at=row.created_at,
        )

    @strawberry.field(description="Your role in this team.")
    def viewer_role(self, info: Info) -> TeamRole | None:
        return info.context.require_actor().role_in(self.pk)

    @strawberry.field(description="The team's members, in the order they joined.")
    async def members(self, info: Info) -> list[TeamMember]:
        rows = await info.context.loaders.members_of_team.load(self.pk)
        users = await info.context.loaders.user.load_many([m.user_id for m in rows])
        return [
            TeamMember(user=User.from_row(user), role=TeamRole(member.role))
            for member, user in zip(rows, users, strict=True)
            if user is not None
        ]

    @strawberry.field(
        description="The team's pending (unused, unrevoked, unexpired) invitations, oldest "
        "first; null unless you are one of its owners or admins."
    )
    async def invitations(self, info: Info) -> list[Invitation] | None:
        if info.context.require_actor().role_in(self.pk) not in MANAGERS:
            return None
        rows = await info.context.loaders.invitations_of_team.load(self.pk)
        return [Invitation.from_row(row) for row in rows]


@strawberry.type(
    description="An invitation to join a team in a role. Its code is shown only once, to the "
    "person who made it (in InvitationPayload); whoever accepts the code joins."
)
class Invitation(Node):
    role: TeamRole = strawberry.field(description="The role the person who accepts it gets.")
    created_at: datetime = strawberry.field(description="When it was made.")
    expires_at: datetime = strawberry.field(description="When it stops working, if unused.")
    team_pk: strawberry.Private[int]
    invited_by_pk: strawberry.Private[int | None]

    @classmethod
    def from_row(cls, row: TeamInvitationRow) -> Self:
        return cls(
            id=ids.encode("Invitation", row.id),
            role=TeamRole(row.role),
            created_at=row.created_at,
            expires_at=row.expires_at,
            team_pk=row.team_id,
            invited_by_pk=row.invited_by_id,
        )

    @strawberry.field(description="The team it lets someone join.")
    async def team(self, info: Info) -> Team | None:
        row = await info.context.loaders.team.load(self.team_pk)
        return Team.from_row(row) if row else None

    @strawberry.field(
        description="Who made it; null if their account is gone or they share no team with you."
    )
    async def invited_by(self, info: Info) -> User | None:
        return await visible_user(info, self.invited_by_pk)


@strawberry.type(description="A member of a team and their role in it.")
class TeamMember:
    user: User = strawberry.field(description="The member.")
    role: TeamRole = strawberry.field(description="Their role in the team.")


@strawberry.input(description="A new account.")
class SignUpInput:
    email: str = strawberry.field(description="The email address to sign in with.")
    password: str = strawberry.field(description="At least 8 characters.")
    name: str = strawberry.field(description="A display name.")


@strawberry.input(description="The credentials of an account.")
class LogInInput:
    email: str = strawberry.field(description="The account's email address.")
    password: str = strawberry.field(description="The account's password.")


@strawberry.input(description="A new team, owned by you.")
class CreateTeamInput:
    name: str = strawberry.field(description="The team's name.")


@strawberry.input(description="An invitation to make for one of your teams.")
class InviteTeamMemberInput:
    team_id: strawberry.ID = strawberry.field(description="The team.")
    role: TeamRole = strawberry.field(
        default=TeamRole.EDITOR,
        description="The role whoever accepts it gets; only an owner can invite an owner.",
    )


@strawberry.input(description="An invitation code to accept.")
class AcceptInvitationInput:
    code: str = strawberry.field(description="The code (sbi_...) the team gave you.")


@strawberry.input(description="A pending invitation to revoke.")
class RevokeInvitationInput:
    id: strawberry.ID = strawberry.field(description="The invitation's ID.")


@strawberry.input(description="A member to remove from a team (yourself, to leave it).")
class RemoveTeamMemberInput:
    team_id: strawberry.ID = strawberry.field(description="The team.")
    user_id: strawberry.ID = strawberry.field(description="The member to remove.")


@strawberry.type(description="The result of signUp or logIn.")
class AuthPayload:
    token: str | None = strawberry.field(
        default=None, description="A bearer token for `Authorization: Bearer <token>`."
    )
    user: User | None = strawberry.field(default=None, description="The signed-in user.")
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why it failed, if it did."
    )


@strawberry.type(description="The result of a team mutation.")
class TeamPayload:
    team: Team | None = strawberry.field(default=None, description="The team acted on.")
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why it failed, if it did."
    )


@strawberry.type(description="The result of inviteTeamMember.")
class InvitationPayload:
    invitation: Invitation | None = strawberry.field(
        default=None, description="The new invitation."
    )
    code: str | None = strawberry.field(
        default=None,
        description="The single-use code to hand to the person you invite; shown only this "
        "once (only its hash is kept).",
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why it failed, if it did."
    )


@strawberry.type(description="The result of logOut.")
class LogOutPayload:
    success: bool = strawberry.field(description="Whether the token was revoked.")
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why it failed, if it did."
    )
