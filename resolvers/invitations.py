"""Mutations on invitations: the way into a team."""

from typing import Annotated

import strawberry

from resolvers.writing import reload_actor, returns_user_errors, write
from schema import ids
from schema.accounts import (
    AcceptInvitationInput,
    Invitation,
    InvitationPayload,
    InviteTeamMemberInput,
    RevokeInvitationInput,
    Team,
    TeamPayload,
)
from schema.context import Info
from schema.payloads import DeletePayload
from services.accounts import invitations
from services.tables import TeamRole


@returns_user_errors(InvitationPayload)
async def invite_team_member(
    info: Info,
    input: Annotated[
        InviteTeamMemberInput,
        strawberry.argument(description="The team and the role to invite someone to."),
    ],
) -> InvitationPayload:
    team_id = ids.decode(input.team_id, "Team", field=("teamId",))
    settings = info.context.resources.accounts
    async with write(info) as (session, actor):
        invitation, code = await invitations.invite(
            session,
            actor,
            team_id=team_id,
            role=TeamRole(input.role),
            lifetime=settings.invitation_lifetime,
            max_pending=settings.max_pending_invitations,
        )
    return InvitationPayload(invitation=Invitation.from_row(invitation), code=code)


@returns_user_errors(TeamPayload)
async def accept_invitation(
    info: Info,
    input: Annotated[
        AcceptInvitationInput, strawberry.argument(description="The invitation code to accept.")
    ],
) -> TeamPayload:
    async with write(info) as (session, actor):
        team = await invitations.accept(session, actor, code=input.code)
    await reload_actor(info)
    return TeamPayload(team=Team.from_row(team))


@returns_user_errors(DeletePayload)
async def revoke_invitation(
    info: Info,
    input: Annotated[
        RevokeInvitationInput, strawberry.argument(description="The invitation to revoke.")
    ],
) -> DeletePayload:
    invitation_id = ids.decode(input.id, "Invitation", field=("id",))
    async with write(info) as (session, actor):
        await invitations.revoke(session, actor, invitation_id=invitation_id)
    return DeletePayload(deleted_id=input.id)
