"""Who may see and do what with a library asset: the one rule, in Python and in SQL.

An actor's permission on an asset is the highest of:

- their team role, when the asset is TEAM or PUBLIC and they are in its team:
  VIEWER reads it (VIEW), EDITOR also edits its metadata, duplicates and remixes it
  (EDIT), OWNER and ADMIN also share it, change its level and delete it (ADMIN);
- its creator, while still in its team: ADMIN, whatever its level (PRIVATE assets
  are seen by their creator and those they are shared with only); EDIT only on a
  copy, remix or new version an EDITOR or VIEWER made of another asset (`authorship`);
- a share to them that has not expired (`expires_at` in the future): its permission;
- any signed-in user on a PUBLIC asset: VIEW.

`permission` evaluates that for one asset; `visible` is the same rule as an SQL
condition on `assets`, so searches, counts, facets, collections, lineage and the
constellation filter in the database and never disagree with `asset(id)`.
Duplicating, remixing and regenerating also need membership of the asset's team
(`require_derivable`): what is made lives in that team, so a share never lets an
outsider make copies there. An expired
share stops counting at its expiry because both compare with the current time; no
job has to run. What an actor may not see is NotFound, never PermissionDenied.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, false, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.accounts.access import MANAGERS, WRITERS, Actor
from services.errors import NotFound, PermissionDenied
from services.library.tables import (
    AssetRow,
    AssetShareRow,
    EvolutionType,
    ShareLevel,
    SharePermission,
)
from services.tables import TeamRole, utcnow

VIEW, EDIT, ADMIN = SharePermission.VIEW, SharePermission.EDIT, SharePermission.ADMIN
_SHARED_LEVELS = (ShareLevel.TEAM.value, ShareLevel.PUBLIC.value)
DERIVED = frozenset(
    {EvolutionType.DUPLICATE.value, EvolutionType.REMIX.value, EvolutionType.REGENERATE.value}
)
"""Evolution types of assets made from another by someone: see `authorship`."""


@dataclass(frozen=True)
class Access:
    """What an actor may do with one asset, and how they came by it.

    `permission`: the highest right (None: they may not see it). `through_team`: it
    comes from their membership of the asset's team (role or authorship), so media
    links may be the long, cacheable ones; otherwise (a share, or PUBLIC) links must
    be short-lived, so that revoking ends access within minutes (and an expiring
    share's links end with it: `ends_at`).
    """

    permission: SharePermission | None
    through_team: bool
    # When this access ends by itself: the expiry of the share it rests on alone (no
    # team right, not PUBLIC); None when nothing known in advance ends it.
    ends_at: datetime | None = None

    def allows(self, needed: SharePermission) -> bool:
        """Whether the permission is at least `needed`."""
        return self.permission is not None and self.permission.rank >= needed.rank


def _highest(permissions: Iterable[SharePermission | None]) -> SharePermission | None:
    found = [p for p in permissions if p is not None]
    return max(found, key=lambda p: p.rank) if found else None


def team_permission(actor: Actor, asset: AssetRow) -> SharePermission | None:
    """The right the actor holds on the asset through its team (role or authorship)."""
    role = actor.role_in(asset.team_id)
    if role is None:
        return None
    authored = authorship(asset, role) if asset.creator_id == actor.user_id else None
    if asset.share_level not in _SHARED_LEVELS:
        return authored
    by_role = ADMIN if role in MANAGERS else EDIT if role in WRITERS else VIEW
    return _highest((authored, by_role))


def authorship(asset: AssetRow, role: TeamRole) -> SharePermission:
    """What its creator, whose role in its team is `role`, may do: ADMIN, except on a
    copy, remix or new version of another asset (DUPLICATE, REMIX, REGENERATE) made by
    a member below ADMIN, where it is EDIT: a copy must not let an EDITOR share or
    publish what the original keeps to the team (that is for the team's owners and
    admins, or an ADMIN share). Its maker may still delete it (`services.library.edits`).
    """
    if asset.evolution_type in DERIVED and role not in MANAGERS:
        return EDIT
    return ADMIN


def share_in_force(share: AssetShareRow | None, now: datetime | None = None) -> bool:
    """Whether a share still grants its permission at `now` (default: the clock)."""
    if share is None:
        return False
    return share.expires_at is None or share.expires_at > (now or utcnow())


def permission(
    actor: Actor, asset: AssetRow, share: AssetShareRow | None, *, now: datetime | None = None
) -> Access:
    """The actor's access to `asset`, given their share of it (None if none): see the module."""
    through_team = team_permission(actor, asset)
    shared = SharePermission(share.permission) if share_in_force(share, now) and share else None
    public = VIEW if asset.share_level == ShareLevel.PUBLIC else None
    ends_at = share.expires_at if share and shared and not (through_team or public) else None
    return Access(_highest((through_team, shared, public)), through_team is not None, ends_at)


def share_in_force_condition(user_id: int, now: datetime) -> ColumnElement[bool]:
    """SQL: an unexpired share of the row's asset (`assets.id`) to `user_id` exists."""
    return exists(
        select(AssetShareRow.id).where(
            col(AssetShareRow.asset_id) == col(AssetRow.id),
            col(AssetShareRow.user_id) == user_id,
            or_(col(AssetShareRow.expires_at).is_(None), col(AssetShareRow.expires_at) > now),
        )
    )


def visible(
    actor: Actor,
    *,
    now: datetime | None = None,
    teams: Iterable[int] | None = None,
    public_of_other_teams: bool = True,
    needed: SharePermission = VIEW,
) -> ColumnElement[bool]:
    """SQL condition on `assets`: the rows the actor holds at least `needed` on.

    teams: only these teams' assets (None: any team); public_of_other_teams: whether
    PUBLIC assets of teams the actor is not in count (a search shows them only when
    asked). The same rule as `permission`, evaluated by the database.
    """
    moment = now or utcnow()
    wanted = None if teams is None else set(teams)
    member_of = [t for t in actor.team_ids if wanted is None or t in wanted]
    by_rank = {
        VIEW: list(actor.team_ids),
        EDIT: [t for t in actor.team_ids if actor.role_in(t) in WRITERS],
        ADMIN: [t for t in actor.team_ids if actor.role_in(t) in MANAGERS],
    }
    role_teams = [t for t in by_rank[needed] if t in member_of]
    conditions: list[ColumnElement[bool]] = []
    if member_of:
        authored = and_(
            col(AssetRow.team_id).in_(member_of), col(AssetRow.creator_id) == actor.user_id
        )
        if needed is ADMIN:  # see `authorship`
            managed = [t for t in member_of if actor.role_in(t) in MANAGERS]
            authored = and_(
                authored,
                or_(
                    col(AssetRow.evolution_type).not_in(DERIVED),
                    col(AssetRow.team_id).in_(managed),
                ),
            )
        conditions.append(authored)
    if role_teams:
        conditions.append(
            and_(
                col(AssetRow.team_id).in_(role_teams),
                col(AssetRow.share_level).in_(_SHARED_LEVELS),
            )
        )
    share_ranks = [p.value for p in SharePermission if p.rank >= needed.rank]
    share = exists(
        select(AssetShareRow.id).where(
            col(AssetShareRow.asset_id) == col(AssetRow.id),
            col(AssetShareRow.user_id) == actor.user_id,
            col(AssetShareRow.permission).in_(share_ranks),
            or_(col(AssetShareRow.expires_at).is_(None), col(AssetShareRow.expires_at) > moment),
        )
    )
    conditions.append(share if wanted is None else and_(col(AssetRow.team_id).in_(wanted), share))
    if needed is VIEW:
        # (PUBLIC assets of the actor's own teams are covered by the role rule above.)
        public = col(AssetRow.share_level) == ShareLevel.PUBLIC.value
        if public_of_other_teams:
            if wanted is not None:
                public = and_(col(AssetRow.team_id).in_(wanted), public)
            conditions.append(public)
    return or_(*conditions) if conditions else false()


async def share_of(session: AsyncSession, asset_id: int, user_id: int) -> AssetShareRow | None:
    """The share of `asset_id` to `user_id`, expired or not; None if there is none."""
    found = await session.exec(
        select(AssetShareRow).where(
            col(AssetShareRow.asset_id) == asset_id, col(AssetShareRow.user_id) == user_id
        )
    )
    return found.first()


async def access_to(session: AsyncSession, actor: Actor, asset: AssetRow) -> Access:
    """The actor's access to a loaded asset, reading their share of it."""
    assert asset.id is not None
    return permission(actor, asset, await share_of(session, asset.id, actor.user_id))


async def require_asset(
    session: AsyncSession,
    actor: Actor,
    asset_id: int,
    needed: SharePermission = VIEW,
    *,
    lock: bool = False,
    field: tuple[str, ...] = ("assetId",),
) -> tuple[AssetRow, Access]:
    """The asset and the actor's access to it, if they hold at least `needed`.

    Raises NotFound (`field`) if there is no such asset or the actor cannot see it,
    PermissionDenied if they see it but hold less than `needed`. With `lock` the
    row is locked (FOR UPDATE on PostgreSQL) until the transaction ends.
    """
    query = select(AssetRow).where(col(AssetRow.id) == asset_id)
    if lock:
        query = query.with_for_update()
    row = (await session.exec(query)).first()
    if row is None:
        raise NotFound("asset", field=field)
    access = await access_to(session, actor, row)
    if access.permission is None:
        raise NotFound("asset", field=field)
    if not access.allows(needed):
        raise PermissionDenied(DENIED[needed])
    return row, access


DENIED = {
    VIEW: "You cannot see this asset.",
    EDIT: "You may view this asset but not change it: that needs EDIT permission.",
    ADMIN: "Only its team's owners and admins, its creator (of a copy, remix or new version "
    "only if an owner or admin), or those it is shared with as ADMIN may share it or change "
    "its level; its creator may also delete it.",
}


async def shares_for(
    session: AsyncSession, keys: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], AssetShareRow | None]:
    """The share of each (asset id, user id) pair, expired or not, in one statement; pairs
    with no share are left out (a DataLoader's batch: `schema.loaders`)."""
    if not keys:
        return {}
    wanted = set(keys)
    found = await session.exec(
        select(AssetShareRow).where(
            col(AssetShareRow.asset_id).in_({asset for asset, _ in wanted}),
            col(AssetShareRow.user_id).in_({user for _, user in wanted}),
        )
    )
    return {
        (row.asset_id, row.user_id): row for row in found if (row.asset_id, row.user_id) in wanted
    }


def require_team_member(actor: Actor, asset: AssetRow, reason: str) -> None:
    """Raise PermissionDenied (TEAM_MEMBERS_ONLY, field `assetId`, message `reason`)
    unless the actor is a member of the asset's team: what only the team may do (make
    assets in it, arrange its map) a share, which may expire or be revoked, never allows.
    Call after `require_asset`."""
    if actor.role_in(asset.team_id) is None:
        raise PermissionDenied(reason, code="TEAM_MEMBERS_ONLY", field=("assetId",))


def require_derivable(actor: Actor, asset: AssetRow) -> None:
    """`require_team_member` for copies, remixes and new versions, which are made in the
    asset's team, so a share never turns into assets of one's own."""
    require_team_member(
        actor,
        asset,
        "Copies, remixes and new versions are made in the asset's own team; only its "
        "members can make them.",
    )


def may_delete(actor: Actor, asset: AssetRow, granted: Access) -> bool:
    """Whether the actor may delete the asset: ADMIN on it, or being its maker in its team
    (the maker of a copy holds EDIT only: `authorship`, yet may remove what they made)."""
    made_it = asset.creator_id == actor.user_id and actor.role_in(asset.team_id) is not None
    return granted.allows(ADMIN) or made_it
