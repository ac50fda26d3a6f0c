"""Who may see and change a collection, and the input rules its writes share.

A collection follows the shape of the asset rule (`services.library.access`), without
shares. An actor's permission on a collection is the highest of:

- its creator, while still in its team: ADMIN, whatever its level;
- their team role, when it is TEAM or PUBLIC and they are in its team: VIEWER reads it
  (VIEW), EDITOR edits it and its items (EDIT), OWNER and ADMIN also delete it and
  change its share level (ADMIN);
- any signed-in user on a PUBLIC collection: VIEW.

PRIVATE collections are their creator's alone. `permission` evaluates that for one
row, `visible` is the same rule as an SQL condition on `collections`. What an actor
may not see is NotFound. Which of its items they see is the asset rule's business:
a collection shows only the assets its viewer may see.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, false, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.accounts.access import MANAGERS, WRITERS, Actor
from services.errors import NotFound, PermissionDenied
from services.library.tables import CollectionRow, ShareLevel, SharePermission

VIEW, EDIT, ADMIN = SharePermission.VIEW, SharePermission.EDIT, SharePermission.ADMIN
_SHARED_LEVELS = (ShareLevel.TEAM.value, ShareLevel.PUBLIC.value)

DEFAULT_NAME = "Untitled Collection"
CATEGORY_MAX = 100
# Bounds the work of one write (every item is renumbered under the lock) and a reorder list.
MAX_ITEMS = 1000


def permission(actor: Actor, collection: CollectionRow) -> SharePermission | None:
    """The actor's right on the collection (None: they may not see it): see the module."""
    role = actor.role_in(collection.team_id)
    if role is not None:
        if collection.creator_id == actor.user_id:
            return ADMIN
        if collection.share_level in _SHARED_LEVELS:
            if role in MANAGERS:
                return ADMIN
            return EDIT if role in WRITERS else VIEW
    if collection.share_level == ShareLevel.PUBLIC:
        return VIEW
    return None


def allows(held: SharePermission | None, needed: SharePermission) -> bool:
    """Whether `held` is at least `needed`."""
    return held is not None and held.rank >= needed.rank


def visible(actor: Actor) -> ColumnElement[bool]:
    """SQL condition on `collections`: the rows the actor may see (the same rule as
    `permission`, evaluated by the database)."""
    teams = actor.team_ids
    conditions: list[ColumnElement[bool]] = [
        col(CollectionRow.share_level) == ShareLevel.PUBLIC.value
    ]
    if teams:
        conditions.append(
            and_(
                col(CollectionRow.team_id).in_(teams),
                or_(
                    col(CollectionRow.creator_id) == actor.user_id,
                    col(CollectionRow.share_level).in_(_SHARED_LEVELS),
                ),
            )
        )
    return or_(*conditions) if conditions else false()


DENIED = {
    VIEW: "You cannot see this collection.",
    EDIT: "You may view this collection but not change it: that needs the EDITOR role in "
    "its team, or being its creator.",
    ADMIN: "Only the collection's creator or its team's owners and admins may delete it or "
    "change its share level.",
}


async def require_collection(
    session: AsyncSession,
    actor: Actor,
    collection_id: int,
    needed: SharePermission = VIEW,
    *,
    lock: bool = False,
    field: Sequence[str] = ("collectionId",),
) -> tuple[CollectionRow, SharePermission]:
    """The collection and the actor's permission on it, if it is at least `needed`.

    With `lock` the row is read again under a lock held to the end of the transaction
    (FOR UPDATE on PostgreSQL; SQLite writers hold the file's lock anyway), so every
    write to one collection's items queues behind the others and positions never race.
    Raises NotFound (at `field`) for no such collection or one the actor may not see,
    PermissionDenied (FORBIDDEN) if they see it but hold less than `needed`.
    """
    query = select(CollectionRow).where(col(CollectionRow.id) == collection_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    row = (await session.exec(query)).first()
    held = permission(actor, row) if row is not None else None
    if row is None or held is None:
        raise NotFound("collection", field=field)
    if not allows(held, needed):
        raise PermissionDenied(DENIED[needed])
    return row, held
