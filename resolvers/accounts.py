"""Mutations on accounts and teams."""

from typing import Annotated

import strawberry

from resolvers.limits import count_sign_up, login_throttle
from resolvers.writing import reload_actor, returns_user_errors, sign_in_as, write
from schema import ids
from schema.accounts import (
    AuthPayload,
    CreateTeamInput,
    LogInInput,
    LogOutPayload,
    RemoveTeamMemberInput,
    SignUpInput,
    Team,
    TeamPayload,
    User,
)
from schema.context import Info
from services.accounts import accounts
from services.validation import Checks


@returns_user_errors(AuthPayload)
async def sign_up(
    info: Info, input: Annotated[SignUpInput, strawberry.argument(description="A new account.")]
) -> AuthPayload:
    await count_sign_up(info)
    async with info.context.db.transaction() as session:
        user, token = await accounts.sign_up(
            session,
            info.context.resources.accounts.passwords,
            email=input.email,
            password=input.password,
            name=input.name,
        )
    await sign_in_as(info, user.id or 0, token)
    return AuthPayload(token=token, user=User.from_row(user))


@returns_user_errors(AuthPayload)
async def log_in(
    info: Info,
    input: Annotated[LogInInput, strawberry.argument(description="The credentials of an account.")],
) -> AuthPayload:
    async with login_throttle(info, input.email), info.context.db.transaction() as session:
        user, token = await accounts.log_in(
            session,
            info.context.resources.accounts.passwords,
            email=input.email,
            password=input.password,
        )
    await sign_in_as(info, user.id or 0, token)
    return AuthPayload(token=token, user=User.from_row(user))


@returns_user_errors(LogOutPayload)
async def log_out(info: Info) -> LogOutPayload:
    async with write(info) as (session, _):
        await accounts.log_out(session, token=info.context.token or "")
    return LogOutPayload(success=True)


@returns_user_errors(TeamPayload)
async def create_team(
    info: Info,
    input: Annotated[CreateTeamInput, strawberry.argument(description="A new team, owned by you.")],
) -> TeamPayload:
    async with write(info) as (session, actor):
        team = await accounts.create_team(session, actor, name=input.name)
    await reload_actor(info)
    return TeamPayload(team=Team.from_row(team))


@returns_user_errors(TeamPayload)
async def remove_team_member(
    info: Info,
    input: Annotated[
        RemoveTeamMemberInput,
        strawberry.argument(description="A member to remove from a team (yourself, to leave it)."),
    ],
) -> TeamPayload:
    checks = Checks()
    team_id = ids.decode_into(checks, input.team_id, "Team", field=("teamId",))
    user_id = ids.decode_into(checks, input.user_id, "User", field=("userId",))
    checks.raise_if_any()
    async with write(info) as (session, actor):
        team = await accounts.remove_team_member(session, actor, team_id=team_id, user_id=user_id)
    await reload_actor(info)
    return TeamPayload(team=Team.from_row(team))
