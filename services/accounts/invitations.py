"""Invitations: the only way into a team.

A team's owner or admin makes an invitation for a role and gets a single-use
code (`sbi_...`) to hand to the person they mean, by whatever channel they
trust. Whoever accepts the code while it is valid joins the team in that role.
No email address is looked up or stored, so inviting reveals nothing about who
has an account, no one is added without accepting, and no one can claim an
invitation by signing up with someone else's address.

Only the SHA-256 of a code is stored (like access tokens): the codes are 256
random bits, so a fast hash is enough, and a database leak gives no usable code.
Accepting or revoking deletes the invitation; an expired one can no longer be
accepted and housekeeping removes it. A code that is unknown, used, revoked or
expired gets one and the same answer, `INVALID_INVITATION`, which says nothing
about any team.

Who may invite follows the member rules (`services.accounts.access`): OWNER and ADMIN
manage members, and only an OWNER may hand out (or revoke) the OWNER role.
An invitation is only as good as its inviter's right to make it *now*: it is
checked again, against the database, when the code is accepted, so the code of
an inviter who was removed from the team (or lost the role that let them invite
that role, or whose account is gone) gets `INVALID_INVITATION`. Removing a
member also deletes the invitations they made for that team.

Like `services.accounts`, the writes here run in the caller's transaction and
take effect when it commits.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import timedelta

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.accounts.access import MANAGERS, Actor
from services.accounts.accounts import hash_token, lock_team
from services.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from services.tables import TeamInvitationRow, TeamMemberRow, TeamRole, TeamRow, utcnow
from services.validation import storable

CODE_PREFIX = "sbi_"  # a marker that makes leaked codes easy to scan for
CODE_MAX = 100


def _invalid_code() -> InvalidInput:
    return InvalidInput(
        "That invitation code is not valid: it may be mistyped, already used, revoked or "
        "expired. Ask the team for a new one.",
        code="INVALID_INVITATION",
        field=("code",),
    )


def _require_may_grant(actor: Actor, team_id: int, role: TeamRole, *, field: str) -> None:
    actor.require_manage(team_id)
    if role is TeamRole.OWNER and actor.role_in(team_id) is not TeamRole.OWNER:
        raise PermissionDenied("Only an owner can invite someone as an owner.", field=(field,))


def may_grant(inviter_role: TeamRole | None, role: TeamRole) -> bool:
    """Whether a member with `inviter_role` (None: not a member) may hand out `role`."""
    if inviter_role not in MANAGERS:
        return False
    return role is not TeamRole.OWNER or inviter_role is TeamRole.OWNER


async def _role_now(session: AsyncSession, team_id: int, user_id: int | None) -> TeamRole | None:
    """The user's role in the team as stored now (None: not a member, or no such user).

    Call with the team locked (`lock_team`), so no removal can slip in between
    this read and the write that depends on it.
    """
    if user_id is None:
        return None
    member = await session.get(TeamMemberRow, (team_id, user_id))
    return TeamRole(member.role) if member is not None else None


async def invite(
    session: AsyncSession,
    actor: Actor,
    *,
    team_id: int,
    role: TeamRole,
    lifetime: timedelta,
    max_pending: int,
) -> tuple[TeamInvitationRow, str]:
    """A new invitation to the team for `role`, and its code (returned only this once).

    The code is `sbi_` and 43 URL-safe base64 characters; the invitation expires
    `lifetime` from now. The team's row is locked until the transaction ends.

    Raises NotFound (not in the team), PermissionDenied (not a manager, or an
    ADMIN inviting an OWNER), InvalidInput PERSONAL_TEAM, Conflict
    TOO_MANY_INVITATIONS (the team already has `max_pending` unexpired ones).
    """
    _require_may_grant(actor, team_id, role, field="role")
    team = await lock_team(session, team_id)  # also orders concurrent invites' counting
    # The actor's roles were read when the request began; a removal that committed
    # since then must win (the team lock orders the two).
    now_role = await _role_now(session, team_id, actor.user_id)
    if now_role is None:
        raise NotFound("team", field=("teamId",))
    if not may_grant(now_role, role):
        raise PermissionDenied(
            "Only a team's owners and admins can invite, and only owners can invite owners.",
            field=("role",),
        )
    if team.is_personal:
        raise InvalidInput(
            "A personal team has one member; create a team to work with others.",
            code="PERSONAL_TEAM",
            field=("teamId",),
        )
    now = utcnow()
    pending = (
        await session.exec(
            select(func.count())
            .select_from(TeamInvitationRow)
            .where(TeamInvitationRow.team_id == team_id, TeamInvitationRow.expires_at > now)
        )
    ).one()
    if pending >= max_pending:
        raise Conflict(
            f"This team already has {max_pending} pending invitations; revoke some first.",
            code="TOO_MANY_INVITATIONS",
            field=("teamId",),
        )
    code = CODE_PREFIX + secrets.token_urlsafe(32)
    invitation = TeamInvitationRow(
        team_id=team_id,
        role=role,
        code_hash=hash_token(code),
        invited_by_id=actor.user_id,
        created_at=now,
        expires_at=now + lifetime,
    )
    session.add(invitation)
    await session.flush()
    return invitation, code


async def accept(session: AsyncSession, actor: Actor, *, code: str) -> TeamRow:
    """Join the invitation's team in its role, using the invitation up; returns the team.

    `code` is trimmed first. The actor's `roles` do not include the team until it
    is loaded again (`services.accounts.accounts.load_actor`).

    Raises InvalidInput INVALID_INVITATION (unknown, used, revoked, expired or
    malformed code, or one whose inviter may no longer hand out its role: no
    longer a member, demoted, or their account deleted; one answer for all) and
    Conflict ALREADY_MEMBER.
    """
    code = code.strip()
    if not code.startswith(CODE_PREFIX) or len(code) > CODE_MAX or not storable(code):
        raise _invalid_code()
    invitation = (
        await session.exec(
            select(TeamInvitationRow)
            .where(
                TeamInvitationRow.code_hash == hash_token(code),
                TeamInvitationRow.expires_at > utcnow(),
            )
            .with_for_update()
        )
    ).first()
    if invitation is None:
        raise _invalid_code()
    team = await lock_team(session, invitation.team_id)
    inviter_role = await _role_now(session, invitation.team_id, invitation.invited_by_id)
    if not may_grant(inviter_role, TeamRole(invitation.role)):
        raise _invalid_code()
    if await session.get(TeamMemberRow, (team.id, actor.user_id)) is not None:
        raise Conflict(
            "You are already a member of this team; the invitation is still unused.",
            code="ALREADY_MEMBER",
            field=("code",),
        )
    session.add(
        TeamMemberRow(team_id=invitation.team_id, user_id=actor.user_id, role=invitation.role)
    )
    await session.delete(invitation)
    team.updated_at = utcnow()
    return team


async def revoke(session: AsyncSession, actor: Actor, *, invitation_id: int) -> int:
    """Delete a pending invitation so its code no longer works; returns `invitation_id`.

    Raises NotFound (no such invitation, or not one of the actor's teams) and
    PermissionDenied (not a manager, or an ADMIN revoking an OWNER invitation).
    """
    invitation = (
        await session.exec(
            select(TeamInvitationRow).where(TeamInvitationRow.id == invitation_id).with_for_update()
        )
    ).first()
    if invitation is None or not actor.can_read(invitation.team_id):
        raise NotFound("invitation", field=("id",))
    _require_may_grant(actor, invitation.team_id, TeamRole(invitation.role), field="id")
    await session.delete(invitation)
    return invitation_id


async def pending_by_id(
    session: AsyncSession, ids: Sequence[int]
) -> dict[int, TeamInvitationRow | None]:
    """The unexpired invitations among `ids`, by id; expired and unknown ids are left out."""
    statement = select(TeamInvitationRow).where(
        col(TeamInvitationRow.id).in_(ids), col(TeamInvitationRow.expires_at) > utcnow()
    )
    return {row.id or 0: row for row in await session.exec(statement)}


async def pending_for_teams(
    session: AsyncSession, ids: Sequence[int]
) -> dict[int, list[TeamInvitationRow]]:
    """Each team's unexpired invitations, oldest first: every id in `ids` is a key
    (an empty list for a team without any). No access check: the caller's."""
    statement = (
        select(TeamInvitationRow)
        .where(
            col(TeamInvitationRow.team_id).in_(ids), col(TeamInvitationRow.expires_at) > utcnow()
        )
        .order_by(col(TeamInvitationRow.created_at), col(TeamInvitationRow.id))
    )
    grouped: dict[int, list[TeamInvitationRow]] = {team_id: [] for team_id in ids}
    for row in await session.exec(statement):
        grouped[row.team_id].append(row)
    return grouped


async def purge_expired(session: AsyncSession) -> int:
    """Delete invitations past their expiry (no one can accept them any more); how many went."""
    expired = list(
        await session.exec(
            select(TeamInvitationRow).where(col(TeamInvitationRow.expires_at) <= utcnow())
        )
    )
    for row in expired:
        await session.delete(row)
    return len(expired)
