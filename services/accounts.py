"""Accounts: users, passwords, bearer tokens, teams and their members."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.access import Actor
from services.errors import AuthenticationFailed, Conflict, InvalidInput, NotFound, PermissionDenied
from services.tables import AccessTokenRow, TeamMemberRow, TeamRole, TeamRow, UserRow, utcnow
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

# scrypt at 16 MiB of memory: about 50 ms a hash on one core.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


async def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = await asyncio.to_thread(_scrypt, password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return "$".join(
        ["scrypt", str(_SCRYPT_N), str(_SCRYPT_R), str(_SCRYPT_P), _b64(salt), _b64(digest)]
    )


async def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, n, r, p, salt, expected = encoded.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = await asyncio.to_thread(_scrypt, password, _unb64(salt), int(n), int(r), int(p))
    return hmac.compare_digest(digest, _unb64(expected))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_token(token: str) -> str:
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
    session: AsyncSession, *, email: str, password: str, name: str
) -> tuple[UserRow, str]:
    """Create a user with a personal team they own, and a token for them."""
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
    if (await session.exec(select(UserRow.id).where(UserRow.email == email))).first() is not None:
        raise taken
    user = UserRow(email=email, name=name, password_hash=await hash_password(password))
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


# A real hash of nothing, so that an unknown email costs as much as a wrong password.
_DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


async def log_in(session: AsyncSession, *, email: str, password: str) -> tuple[UserRow, str]:
    user = await _user_by_email(session, email)
    acceptable = storable(password) and len(password) <= PASSWORD_MAX
    valid = await verify_password(
        password if acceptable else "", user.password_hash if user else _DUMMY_HASH
    )
    valid = valid and acceptable
    if user is None or not valid:
        raise AuthenticationFailed("That email and password do not match an account.")
    assert user.id is not None
    return user, await _issue_token(session, user.id)


async def log_out(session: AsyncSession, *, token: str) -> None:
    row = (
        await session.exec(
            select(AccessTokenRow).where(AccessTokenRow.token_hash == hash_token(token))
        )
    ).first()
    if row is not None:
        await session.delete(row)


async def purge_expired_tokens(session: AsyncSession) -> int:
    """Delete tokens past their expiry (they already authenticate no one); how many."""
    expired = await session.exec(
        select(AccessTokenRow).where(col(AccessTokenRow.expires_at) <= utcnow())
    )
    rows = list(expired)
    for row in rows:
        await session.delete(row)  # one by one: each tells its user's subscriptions
    return len(rows)


async def authenticate(session: AsyncSession, token: str) -> Actor | None:
    """The actor a bearer token stands for, or None for an unknown or expired one."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None
    user_id = (
        await session.exec(
            select(AccessTokenRow.user_id).where(
                AccessTokenRow.token_hash == hash_token(token),
                AccessTokenRow.expires_at > utcnow(),
            )
        )
    ).first()
    if user_id is None:
        return None
    return await load_actor(session, user_id)


async def load_actor(session: AsyncSession, user_id: int) -> Actor:
    memberships = await session.exec(
        select(TeamMemberRow.team_id, TeamMemberRow.role).where(TeamMemberRow.user_id == user_id)
    )
    return Actor(user_id=user_id, roles={team: TeamRole(role) for team, role in memberships})


async def create_team(session: AsyncSession, actor: Actor, *, name: str) -> TeamRow:
    """A new team, owned by the actor."""
    checks = Checks()
    name = checks.text(name, field=("name",), max_length=NAME_MAX)
    checks.raise_if_any()
    team = TeamRow(name=name)
    session.add(team)
    await session.flush()
    assert team.id is not None
    session.add(TeamMemberRow(team_id=team.id, user_id=actor.user_id, role=TeamRole.OWNER))
    return team


async def _team_for_update(session: AsyncSession, team_id: int) -> TeamRow:
    team = (
        await session.exec(select(TeamRow).where(TeamRow.id == team_id).with_for_update())
    ).first()
    if team is None:
        raise NotFound("team")
    return team


async def add_team_member(
    session: AsyncSession, actor: Actor, *, team_id: int, email: str, role: TeamRole
) -> TeamRow:
    actor.require_manage(team_id)
    if role is TeamRole.OWNER and actor.role_in(team_id) is not TeamRole.OWNER:
        raise PermissionDenied("Only an owner can make someone else an owner.", field=("role",))
    team = await _team_for_update(session, team_id)
    if team.is_personal:
        raise InvalidInput(
            "A personal team has one member; create a team to work with others.",
            code="PERSONAL_TEAM",
            field=("teamId",),
        )
    user = await _user_by_email(session, email)
    if user is None or user.id is None:
        raise NotFound("user", field=("email",)) from None
    existing = await session.get(TeamMemberRow, (team_id, user.id))
    if existing is not None:
        raise Conflict(
            f"{user.email} is already a member of this team.",
            code="ALREADY_MEMBER",
            field=("email",),
        )
    session.add(TeamMemberRow(team_id=team_id, user_id=user.id, role=role))
    team.updated_at = utcnow()
    return team


async def remove_team_member(
    session: AsyncSession, actor: Actor, *, team_id: int, user_id: int
) -> TeamRow:
    """Remove a member; anyone may leave, managers may remove others; a team keeps an owner."""
    if user_id != actor.user_id:
        actor.require_manage(team_id)
    else:
        actor.require_read(team_id, "team")
    team = await _team_for_update(session, team_id)
    member = await session.get(TeamMemberRow, (team_id, user_id))
    if member is None:
        raise NotFound("team member", field=("userId",))
    if member.role == TeamRole.OWNER:
        if actor.role_in(team_id) is not TeamRole.OWNER:
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
    await session.delete(member)
    team.updated_at = utcnow()
    return team
