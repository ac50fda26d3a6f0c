"""Users, teams and their members."""

from __future__ import annotations

from datetime import datetime
from typing import Self

import strawberry

from resolvers.context import Info
from schema import ids
from schema.enums import TeamRole
from schema.errors import UserError
from schema.node import Node
from services.tables import TeamRow, UserRow


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


@strawberry.input(description="Someone to add to a team.")
class AddTeamMemberInput:
    team_id: strawberry.ID = strawberry.field(description="The team.")
    email: str = strawberry.field(description="The email address of an existing account.")
    role: TeamRole = strawberry.field(
        default=TeamRole.EDITOR, description="Their role; only an owner can add an owner."
    )


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


@strawberry.type(description="The result of logOut.")
class LogOutPayload:
    success: bool = strawberry.field(description="Whether the token was revoked.")
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why it failed, if it did."
    )
