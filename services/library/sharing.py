"""Sharing library assets: with one user (by ID, or by the email of a teammate), and by level.

A share gives one user VIEW, EDIT or ADMIN on one asset until it expires (or for as
long as it exists); `services.library.access` is the rule that reads it. Who may do
what here:

- `share_asset`, `set_share_level`: ADMIN on the asset (its creator, its team's
  owners and admins on a TEAM or PUBLIC asset, or an ADMIN share);
- `revoke_share`: ADMIN on the asset, or the share's recipient (leaving it);
- a share is seen (`may_see_share`) by those holding ADMIN on its asset, and by its
  recipient while it is in force.

A share by email goes only to someone who shares a team with the sharer. Any other
address, whether or not an account has it, is refused with the same code and message
after the same single query, so the answer tells nothing about other accounts.

Losing access is announced: revoking or changing a share (a flush hook,
`services.realtime.recording`) and lowering a level (here) send the users concerned an
access notice after the commit, so their open subscriptions check again. A share's
expiry is announced by no one: it is known in advance (`next_share_expiry`), and both
halves of the rule compare it with the clock, so no job has to run.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.accounts.access import Actor
from services.errors import Conflict, NotFound, PermissionDenied
from services.keyset_pages import Page, newest_first
from services.library.access import (
    ADMIN,
    Access,
    access_to,
    require_asset,
    share_in_force,
)
from services.library.tables import AssetRow, AssetShareRow, ShareLevel, SharePermission
from services.realtime.events import access_channel
from services.realtime.recording import send
from services.tables import (
    ShotImageRow,
    StoryboardSelectionRow,
    TeamMemberRow,
    UserRow,
    utcnow,
)
from services.validation import EMAIL_MAX, Checks

MESSAGE_MAX = 2000
"""The longest message a share may carry, in characters."""

LONGEST_SHARE = timedelta(days=366)
"""How far ahead a share's expiry may be; without one it lasts until revoked."""

NO_SUCH_RECIPIENT = (
    "You can share by email only with someone who is in one of your teams; "
    "to share with anyone else, use their user ID."
)
"""The one answer for every email that names no teammate: an unknown address, or the
address of an account that shares no team with the sharer, alike."""


def as_utc(moment: datetime) -> datetime:
    """`moment` as an aware UTC datetime; a naive one (a client's offset-less time) is UTC.
    Raises OverflowError when the instant has no UTC time (year 1 east of Greenwich)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


_LEVEL_RANK = {ShareLevel.PRIVATE: 0, ShareLevel.TEAM: 1, ShareLevel.PUBLIC: 2}


def _check_expiry(checks: Checks, expires_at: datetime | None, now: datetime) -> datetime | None:
    """The expiry as an aware UTC datetime (a naive one is taken as UTC), or None.

    Records EXPIRY_IN_PAST unless strictly after `now`, OUT_OF_RANGE beyond LONGEST_SHARE.
    """
    if expires_at is None:
        return None
    field = ("expiresAt",)
    try:
        until = as_utc(expires_at)
    except OverflowError:  # 0001-01-01T00:00+14:00 has no UTC time
        checks.fail("OUT_OF_RANGE", "That expiry is out of range.", field)
        return None
    if until <= now:
        checks.fail("EXPIRY_IN_PAST", "A share's expiry must be in the future.", field)
    elif until > now + LONGEST_SHARE:
        checks.fail(
            "OUT_OF_RANGE",
            f"A share may last at most {LONGEST_SHARE.days} days; leave the expiry out for "
            "one that lasts until it is revoked.",
            field,
        )
    return until


async def _teammate_by_email(session: AsyncSession, actor: Actor, email: str) -> int | None:
    """The id of the user with `email` who is in one of the actor's teams, else None.

    One indexed query whatever the answer, so an unknown address and an outsider's
    cost the same (no password hashing or second lookup on either path)."""
    if not actor.team_ids:
        return None
    found = await session.exec(
        select(UserRow.id)
        .join(TeamMemberRow, col(TeamMemberRow.user_id) == col(UserRow.id))
        .where(col(UserRow.email) == email, col(TeamMemberRow.team_id).in_(actor.team_ids))
        .limit(1)
    )
    user_id = found.first()
    return None if user_id is None else int(user_id)


async def share_asset(
    session: AsyncSession,
    actor: Actor,
    *,
    asset_id: int,
    user_id: int | None,
    email: str | None,
    permission: SharePermission,
    message: str | None,
    expires_at: datetime | None,
    checks: Checks | None = None,
    now: datetime | None = None,
) -> AssetShareRow:
    """Share the asset with one user (exactly one of `user_id`, `email`); sharing again
    with the same user updates the share's permission, message, expiry and sharer.

    `checks` may hold the caller's ID-decoding problems (reported with the rest).
    Raises ValidationFailed/InvalidInput: ONE_RECIPIENT, BLANK/TOO_LONG/INVALID_CHARACTERS
    (email, message), EXPIRY_IN_PAST, OUT_OF_RANGE (expiresAt), RECIPIENT_NOT_FOUND (an
    email of no teammate), SHARE_WITH_SELF, PERMISSION_TOO_HIGH; NotFound (the asset,
    or `user_id`); PermissionDenied without ADMIN on the asset.
    """
    checks = checks or Checks()
    moment = as_utc(now or utcnow())
    recipient_field = ("userId",) if user_id is not None else ("email",)
    if (user_id is None) == (email is None):
        checks.fail("ONE_RECIPIENT", "Give exactly one of userId and email.", ())
    email_ok = False
    if email is not None:
        before = len(checks.errors)
        email = checks.text(email, field=("email",), max_length=EMAIL_MAX).lower()
        email_ok = len(checks.errors) == before
    message = checks.optional_text(message, field=("message",), max_length=MESSAGE_MAX)
    until = _check_expiry(checks, expires_at, moment)
    checks.raise_if_unresolvable()
    _, granted = await require_asset(session, actor, asset_id, ADMIN, lock=True)
    if not granted.allows(permission):  # unreachable while sharing needs ADMIN; kept as the rule
        checks.fail(
            "PERMISSION_TOO_HIGH",
            "You cannot give more than you hold: your permission on this asset is "
            f"{granted.permission}.",
            ("permission",),
        )
    recipient: int | None = None
    if user_id is not None and email is None:
        if await session.get(UserRow, user_id) is None:
            checks.add(NotFound("user", field=("userId",)))
        else:
            recipient = user_id
    elif email is not None and user_id is None and email_ok:
        recipient = await _teammate_by_email(session, actor, email)
        if recipient is None:
            checks.fail("RECIPIENT_NOT_FOUND", NO_SUCH_RECIPIENT, ("email",))
    if recipient is not None and recipient == actor.user_id:
        checks.fail("SHARE_WITH_SELF", "You cannot share an asset with yourself.", recipient_field)
    checks.raise_if_any()
    assert recipient is not None
    share = (await _locked_shares(session, asset_id=asset_id, user_id=recipient)) or AssetShareRow(
        asset_id=asset_id, user_id=recipient, permission=permission.value, created_at=moment
    )
    share.permission = permission.value
    share.message = message
    share.expires_at = until
    share.shared_by_id = actor.user_id
    share.updated_at = moment
    session.add(share)
    await session.flush()
    return share


async def _locked_shares(
    session: AsyncSession, *, share_id: int | None = None, asset_id: int = 0, user_id: int = 0
) -> AssetShareRow | None:
    """The share by id, or of (asset, user), read again and locked (FOR UPDATE on
    PostgreSQL) until the transaction ends; None if there is none (any more).

    Locks are taken asset first, then share, by every writer here, so a share and a
    revoke of the same share cannot deadlock; a share revoked meanwhile is simply gone."""
    query = select(AssetShareRow)
    if share_id is not None:
        query = query.where(col(AssetShareRow.id) == share_id)
    else:
        query = query.where(
            col(AssetShareRow.asset_id) == asset_id, col(AssetShareRow.user_id) == user_id
        )
    found = await session.exec(query.with_for_update().execution_options(populate_existing=True))
    return found.first()


async def revoke_share(session: AsyncSession, actor: Actor, *, share_id: int) -> AssetShareRow:
    """Delete a share: ADMIN on its asset, or its recipient (expired or not) may.

    The recipient is sent an access notice after the commit (the flush hook). Raises
    NotFound (`id`) for no such share or one the actor may not see or revoke.
    """
    found = await session.get(AssetShareRow, share_id)
    if found is None:
        raise NotFound("share", field=("id",))
    if found.user_id != actor.user_id:
        try:
            await require_asset(session, actor, found.asset_id, ADMIN, lock=True)
        except (NotFound, PermissionDenied):
            raise NotFound("share", field=("id",)) from None
    share = await _locked_shares(session, share_id=share_id)
    if share is None:  # revoked by someone else meanwhile
        raise NotFound("share", field=("id",))
    await session.delete(share)
    await session.flush()
    return share


async def set_share_level(
    session: AsyncSession, actor: Actor, *, asset_id: int, level: ShareLevel
) -> tuple[AssetRow, Access]:
    """Set who sees the asset besides its shares; ADMIN on it needed. The asset and the
    actor's access to it afterwards (None permission: the new level left them without it,
    as a team admin making a teammate's asset PRIVATE is).

    Lowering it to PRIVATE sends every member of its team an access notice after the
    commit. Raises NotFound (`assetId`), PermissionDenied without ADMIN, Conflict
    IN_A_PROJECT for PRIVATE while a project shows its file to the team (`in_a_project`).
    """
    row, _ = await require_asset(session, actor, asset_id, ADMIN, lock=True)
    before = ShareLevel(row.share_level)
    if before == level:
        return row, await access_to(session, actor, row)
    if level == ShareLevel.PRIVATE and await in_a_project(session, row):
        raise Conflict(
            "Its image is in a project, where its whole team sees it; it cannot be PRIVATE "
            "while a storyboard holds it. Duplicate it and make the copy PRIVATE instead.",
            code="IN_A_PROJECT",
            field=("shareLevel",),
        )
    row.share_level = level.value
    row.updated_at = utcnow()
    session.add(row)
    await session.flush()
    if _LEVEL_RANK[level] < _LEVEL_RANK[before]:
        await _tell_losers(session, row, before)
    return row, await access_to(session, actor, row)


async def in_a_project(session: AsyncSession, asset: AssetRow) -> bool:
    """Whether a project shows the asset's file to its team: the shot image or clip it was
    made from still exists, or a shot image was added from it (`addShotImages`)."""
    if asset.shot_image_id is not None:
        return True
    if asset.selection_id is not None:
        clip = await session.get(StoryboardSelectionRow, asset.selection_id)
        if clip is not None and clip.video_storage_key == asset.storage_key:
            return True  # (an earlier clip of that shot, replaced since, is not shown)
    used = await session.exec(
        select(ShotImageRow.id).where(col(ShotImageRow.source_asset_id) == asset.id).limit(1)
    )
    return used.first() is not None


async def _tell_losers(session: AsyncSession, asset: AssetRow, before: ShareLevel) -> None:
    """Send an access notice to the team members a lowered level may have cut off.

    From PUBLIC, outsiders who saw it as PUBLIC cannot be listed: a feed showing other
    teams' PUBLIC assets learns of the change from the asset's own change event."""
    if asset.share_level != ShareLevel.PRIVATE or before == ShareLevel.PRIVATE:
        return
    members = await session.exec(
        select(TeamMemberRow.user_id).where(col(TeamMemberRow.team_id) == asset.team_id)
    )
    for user_id in members:
        if user_id != asset.creator_id:
            send(session, access_channel(int(user_id)), {"access": "changed"})


def may_see_share(
    actor: Actor, granted: Access, share: AssetShareRow, *, now: datetime | None = None
) -> bool:
    """Whether the actor, holding `granted` on the share's asset, sees the share: all of
    an asset's shares for its ADMINs, otherwise only their own while it is in force."""
    if granted.allows(ADMIN):
        return True
    return share.user_id == actor.user_id and share_in_force(share, now)


async def next_share_expiry(
    session: AsyncSession, user_id: int, *, team_id: int | None = None, now: datetime | None = None
) -> datetime | None:
    """The earliest expiry after `now` among the user's shares (of assets of `team_id`,
    if given), as an aware UTC datetime; None if none will expire.

    Their access changes then with no notice sent: a feed re-checks at that instant
    (`services.realtime.feed.Allowed`)."""
    moment = as_utc(now or utcnow())
    query = select(func.min(AssetShareRow.expires_at)).where(
        col(AssetShareRow.user_id) == user_id, col(AssetShareRow.expires_at) > moment
    )
    if team_id is not None:
        query = query.join(AssetRow, col(AssetRow.id) == col(AssetShareRow.asset_id)).where(
            col(AssetRow.team_id) == team_id
        )
    found = (await session.exec(query)).one()
    return None if found is None else as_utc(found)


async def shares_of_assets(
    session: AsyncSession, asset_ids: Sequence[int]
) -> dict[int, list[AssetShareRow]]:
    """Every share (expired or not) of each asset, oldest first, in one statement; an
    asset without shares is left out (a DataLoader's batch: `schema.loaders`)."""
    if not asset_ids:
        return {}
    found = await session.exec(
        select(AssetShareRow)
        .where(col(AssetShareRow.asset_id).in_(set(asset_ids)))
        .order_by(col(AssetShareRow.id))
    )
    grouped: dict[int, list[AssetShareRow]] = {}
    for share in found:
        grouped.setdefault(share.asset_id, []).append(share)
    return grouped


async def page_shared_with(
    session: AsyncSession,
    user_id: int,
    *,
    first: int,
    before_share_id: int | None,
    now: datetime | None = None,
) -> Page[tuple[AssetShareRow, AssetRow]]:
    """Up to `first` assets shared with the user by shares in force at `now`, with
    their shares, as (share, asset) rows, after the share `before_share_id` (keyset:
    newest share first); `total_count` counts the shares in force on every page.

    `first` is not checked here: the API bounds it before it gets this far.
    """
    moment = as_utc(now or utcnow())
    in_force = (
        col(AssetShareRow.user_id) == user_id,
        or_(col(AssetShareRow.expires_at).is_(None), col(AssetShareRow.expires_at) > moment),
    )
    return await newest_first(
        session,
        select(AssetShareRow, AssetRow)
        .join(AssetRow, col(AssetRow.id) == col(AssetShareRow.asset_id))
        .where(*in_force),
        AssetShareRow.id,
        first=first,
        before=before_share_id,
        counted=select(func.count()).select_from(AssetShareRow).where(*in_force),
    )
