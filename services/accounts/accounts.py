"""Accounts: users, passwords, bearer tokens, teams and their members.

People join a team only by accepting an invitation (`services.accounts.invitations`);
nothing here looks an account up by anything but its own credentials.

Bearer tokens are `sbs_` and 43 URL-safe base64 characters (256 random bits),
valid for 30 days; only their SHA-256 is stored. Every function that writes
works inside the caller's transaction (`Database.transaction()`): it adds,
changes and deletes rows (flushing when it needs an id), and the caller's commit
makes it so.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, timedelta

from sqlalchemy import bindparam
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.accounts.access import MANAGERS, Actor
from services.accounts.passwords import Passwords
from services.errors import AuthenticationFailed, Conflict, NotFound, PermissionDenied
from services.tables import (
    AccessTokenRow,
    TeamInvitationRow,
    TeamMemberRow,
    TeamRole,
    TeamRow,
    UserRow,
    utcnow,
)
from services.validation import (
    EMAIL_MAX,
    NAME_MAX,
    PASSWORD_MAX,
    PASSWORD_MIN,
    Checks,
    storable,
)

TOKEN_PREFIX = "sbs_"  # noqa: S105 (a marker that makes leaked tokens easy to scan for)
TOKEN_LIFETIME = timedelta(days=30)


@dataclass(frozen=True)
class AccountSettings:
    """What accounts and invitations need from the configuration, as plain values.

    passwords: how passwords are hashed and checked.
    invitation_lifetime: how long an invitation code can be accepted.
    max_pending_invitations: how many unexpired invitations a team may have at once.
    """

    passwords: Passwords = field(default_factory=Passwords)
    invitation_lifetime: timedelta = timedelta(days=7)
    max_pending_invitations: int = 100


# What `secrets.token_urlsafe` makes, after the prefix (RFC 4648 section 5's alphabet).
_TOKEN_TEXT = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)


def hash_token(token: str) -> str:
    """The SHA-256 of a token (or invitation code), as 64 lower-case hex digits: what is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def _check_email(checks: Checks, email: str) -> str:
    cleaned = checks.text(email, field=("email",), max_length=EMAIL_MAX).lower()
    local, _, domain = cleaned.partition("@")
    if cleaned and (not local or "." not in domain or " " in cleaned):
        checks.fail("INVALID_EMAIL", "That does not look like an email address.", ("email",))
    return cleaned


async def _issue_token(session: AsyncSession, user_id: int) -> str:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        AccessTokenRow(
            user_id=user_id, token_hash=hash_token(token), expires_at=utcnow() + TOKEN_LIFETIME
        )
    )
    await session.flush()
    return token


async def sign_up(
    session: AsyncSession, passwords: Passwords, *, email: str, password: str, name: str
) -> tuple[UserRow, str]:
    """Create a user with a personal team they own, and a token for them.

    The email is stored trimmed and lower-cased (at most 254 characters); the
    name at most 100; the password 8 to 256 characters. Returns the new user and
    its bearer token (the only time the token is seen).

    Raises InvalidInput (INVALID_EMAIL, INVALID_PASSWORD, TOO_LONG, ...) and
    Conflict EMAIL_TAKEN. Without a verification email, saying "taken" is
    inherent to signing up; what is avoided is saying it faster: the password is
    hashed before the email is looked up, so a taken address costs the same
    Argon2id time as a new account. (The caller counts every attempt, taken
    ones too, against the per-address signUp rate.)
    """
    checks = Checks()
    email = _check_email(checks, email)
    name = checks.text(name, field=("name",), max_length=NAME_MAX)
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX or not storable(password):
        checks.fail(
            "INVALID_PASSWORD",
            f"The password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters long, "
            "without NUL characters.",
            ("password",),
        )
    checks.raise_if_any()
    taken = Conflict(
        "An account with that email already exists.", code="EMAIL_TAKEN", field=("email",)
    )
    password_hash = await passwords.hash(password)  # first: see the docstring
    if (await session.exec(select(UserRow.id).where(UserRow.email == email))).first() is not None:
        raise taken
    user = UserRow(email=email, name=name, password_hash=password_hash)
    team = TeamRow(name=f"{name}'s team", is_personal=True)
    session.add_all([user, team])
    try:
        await session.flush()
    except IntegrityError as error:  # a concurrent sign-up with the same email won the race
        raise taken from error
    assert user.id is not None
    assert team.id is not None
    session.add(TeamMemberRow(team_id=team.id, user_id=user.id, role=TeamRole.OWNER))
    return user, await _issue_token(session, user.id)


async def _user_by_email(session: AsyncSession, email: str) -> UserRow | None:
    email = email.strip().lower()
    if not storable(email):  # no account can have it, and PostgreSQL would refuse the query
        return None
    return (await session.exec(select(UserRow).where(UserRow.email == email))).first()


async def log_in(
    session: AsyncSession, passwords: Passwords, *, email: str, password: str
) -> tuple[UserRow, str]:
    """The account with these credentials and a new bearer token for it;
    AuthenticationFailed otherwise.

    An unknown email, a wrong password and a malformed one fail alike and cost
    the same time (see `services.accounts.passwords`). A hash made with older parameters
    or with scrypt is replaced by a current Argon2id one on success.
    """
    user = await _user_by_email(session, email)
    acceptable = storable(password) and len(password) <= PASSWORD_MAX
    verdict = await passwords.verify(
        password if acceptable else "", user.password_hash if user else None
    )
    if user is None or not (verdict.valid and acceptable):
        raise AuthenticationFailed("That email and password do not match an account.")
    assert user.id is not None
    if verdict.needs_rehash:
        user.password_hash = await passwords.hash(password)
        session.add(user)
    return user, await _issue_token(session, user.id)


async def log_out(session: AsyncSession, *, token: str) -> None:
    """Delete the stored token, so it authenticates no one; an unknown token is no error."""
    row = (
        await session.exec(
            select(AccessTokenRow).where(AccessTokenRow.token_hash == hash_token(token))
        )
    ).first()
    if row is not None:
        await session.delete(row)


async def purge_expired_tokens(session: AsyncSession) -> int:
    """Delete tokens past their expiry (they already authenticate no one); how many went.

    One DELETE per row, so each user's open subscriptions hear that a token went.
    """
    expired = await session.exec(
        select(AccessTokenRow).where(col(AccessTokenRow.expires_at) <= utcnow())
    )
    rows = list(expired)
    for row in rows:
        await session.delete(row)  # one by one: each tells its user's subscriptions
    return len(rows)


# The token's user and their teams: a row per membership, or one row with no team for a
# user in none. Built once: a statement made per call costs more to build and compile
# than the database takes to run it, on every authenticated request.
_TOKEN_ACTOR = (
    select(
        AccessTokenRow.user_id,
        AccessTokenRow.expires_at,
        TeamMemberRow.team_id,
        TeamMemberRow.role,
    )
    .outerjoin(TeamMemberRow, col(TeamMemberRow.user_id) == col(AccessTokenRow.user_id))
    .where(
        col(AccessTokenRow.token_hash) == bindparam("token_hash"),
        col(AccessTokenRow.expires_at) > bindparam("now"),
    )
)


async def authenticate(session: AsyncSession, token: str) -> Actor | None:
    """The actor a bearer token stands for, or None for an unknown or expired one.

    `token` is the bare token, without "Bearer ". Text that cannot be one of ours
    (no `sbs_` prefix, over 100 characters, outside the base64url alphabet) is None
    without a query. Never raises for any text. The actor's `signed_in_until` is
    the token's expiry: from that instant on, this returns None for it.
    """
    if not token.startswith(TOKEN_PREFIX) or len(token) > 100 or not _TOKEN_TEXT.fullmatch(token):
        return None  # never hashed: only ours can match, and a lone surrogate cannot be encoded
    # One statement (one round trip, one snapshot), built once (`_TOKEN_ACTOR`). Run on
    # the connection, it skips the session's autoflush: flushed first, so a write
    # transaction that logged the token out or made a team sees it, as its other reads do.
    if session.autoflush:
        await session.flush()
    connection = await session.connection()
    rows = (
        await connection.execute(_TOKEN_ACTOR, {"token_hash": hash_token(token), "now": utcnow()})
    ).all()
    if not rows:
        return None
    user_id, expires_at = rows[0][0], rows[0][1]
    if expires_at.tzinfo is None:  # SQLite keeps no offset; every stored time is UTC
        expires_at = expires_at.replace(tzinfo=UTC)
    roles = {team: TeamRole(role) for _, _, team, role in rows if team is not None}
    return Actor(user_id=user_id, roles=roles, signed_in_until=expires_at)


async def load_actor(session: AsyncSession, user_id: int) -> Actor:
    """The user as an Actor: their id and their role in each team, read now.

    Does not check that the user exists: an unknown id is an actor in no team.
    """
    memberships = await session.exec(
        select(TeamMemberRow.team_id, TeamMemberRow.role).where(TeamMemberRow.user_id == user_id)
    )
    return Actor(user_id=user_id, roles={team: TeamRole(role) for team, role in memberships})


async def create_team(session: AsyncSession, actor: Actor, *, name: str) -> TeamRow:
    """A new team, owned by the actor; its name 1 to 100 characters after trimming.

    Raises InvalidInput (BLANK, TOO_LONG, INVALID_CHARACTERS). The actor's
    `roles` do not include the new team until it is loaded again (`load_actor`).
    """
    checks = Checks()
    name = checks.text(name, field=("name",), max_length=NAME_MAX)
    checks.raise_if_any()
    team = TeamRow(name=name)
    session.add(team)
    await session.flush()
    assert team.id is not None
    session.add(TeamMemberRow(team_id=team.id, user_id=actor.user_id, role=TeamRole.OWNER))
    return team


async def lock_team(session: AsyncSession, team_id: int) -> TeamRow:
    """The team, its row locked until the transaction ends (FOR UPDATE on PostgreSQL;
    on SQLite a writer holds the file lock anyway); NotFound if there is none.

    Does not check the actor's access.
    """
    team = (
        await session.exec(select(TeamRow).where(TeamRow.id == team_id).with_for_update())
    ).first()
    if team is None:
        raise NotFound("team")
    return team


async def remove_team_member(
    session: AsyncSession, actor: Actor, *, team_id: int, user_id: int
) -> TeamRow:
    """Remove a member; anyone may leave, managers may remove others; a team keeps an owner.

    The invitations the member made for this team are deleted with them (an
    invitation is checked against its inviter's current role when accepted in
    any case, see `services.accounts.invitations`). The actor's own role is read again
    under the team's lock, so a manager removed a moment ago cannot remove
    anyone. Raises NotFound, PermissionDenied, Conflict LAST_OWNER.
    """
    if user_id != actor.user_id:
        actor.require_manage(team_id)
    else:
        actor.require_read(team_id, "team")
    team = await lock_team(session, team_id)
    mine = await session.get(TeamMemberRow, (team_id, actor.user_id))
    if mine is None:
        raise NotFound("team")
    actor_role = TeamRole(mine.role)
    if user_id != actor.user_id and actor_role not in MANAGERS:
        raise PermissionDenied("Only a team's owners and admins can manage its members.")
    member = await session.get(TeamMemberRow, (team_id, user_id))
    if member is None:
        raise NotFound("team member", field=("userId",))
    if member.role == TeamRole.OWNER:
        if actor_role is not TeamRole.OWNER:
            raise PermissionDenied("Only an owner can remove an owner.", field=("userId",))
        owners = await session.exec(
            select(TeamMemberRow.user_id).where(
                TeamMemberRow.team_id == team_id, TeamMemberRow.role == TeamRole.OWNER
            )
        )
        if len(owners.all()) == 1:
            raise Conflict(
                "A team needs at least one owner; make someone else an owner first.",
                code="LAST_OWNER",
                field=("userId",),
            )
    invitations = await session.exec(
        select(TeamInvitationRow).where(
            TeamInvitationRow.team_id == team_id, TeamInvitationRow.invited_by_id == user_id
        )
    )
    for invitation in invitations.all():
        await session.delete(invitation)
    await session.delete(member)
    team.updated_at = utcnow()
    return team
