"""Shares of library assets as GraphQL types: `AssetShare`, the sharing inputs and payloads,
and the `sharedWithMe` connection.

A share is shown only to those `services.library.sharing.may_see_share` allows: the
ADMINs of its asset, and its recipient while it is in force. Its people (`user`,
`sharedBy`) are shown as `node(id)` would show them: to themselves and to those who
share a team with them; a share by user ID to a stranger reveals nothing more of them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Self

import strawberry

from schema import ids
from schema.accounts import User, visible_user
from schema.connections import PageInfo
from schema.context import Info
from schema.errors import UserError
from schema.library import Asset, load_asset
from schema.node import Node
from services.library.access import permission, share_in_force
from services.library.sharing import MESSAGE_MAX, may_see_share
from services.library.tables import AssetShareRow, ShareLevel, SharePermission

_ERRORS = "Why the mutation failed, if it did; when not empty, nothing was changed."


@strawberry.type(
    description="An asset shared with one user: what it allows them and until when. Seen by "
    "those who hold ADMIN on the asset, and by its recipient while it is in force."
)
class AssetShare(Node):
    permission: SharePermission = strawberry.field(description="What it allows its recipient.")
    message: str | None = strawberry.field(description="The sharer's note to the recipient.")
    expires_at: datetime | None = strawberry.field(
        description="When it stops working (UTC); null: until it is revoked."
    )
    created_at: datetime = strawberry.field(description="When it was first made.")
    updated_at: datetime = strawberry.field(description="When it was last made or changed.")
    row: strawberry.Private[AssetShareRow]

    @classmethod
    def from_row(cls, row: AssetShareRow) -> Self:
        """The share as one who may see it sees it (the caller checked that)."""
        return cls(
            id=ids.encode("AssetShare", row.id),
            row=row,
            permission=SharePermission(row.permission),
            message=row.message,
            expires_at=row.expires_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    @strawberry.field(description="Whether it grants its permission now (it has not expired).")
    def active(self) -> bool:
        return share_in_force(self.row)

    @strawberry.field(description="The asset shared; null if you may no longer see it.")
    async def asset(self, info: Info) -> Asset | None:
        return await load_asset(info, self.row.asset_id)

    @strawberry.field(description="The recipient's ID, always shown to those who see the share.")
    def user_id(self) -> strawberry.ID:
        return ids.encode("User", self.row.user_id)

    @strawberry.field(
        description="The recipient; null when you share no team with them (see `userId`)."
    )
    async def user(self, info: Info) -> User | None:
        return await visible_user(info, self.row.user_id)

    @strawberry.field(
        description="Who made or last changed the share; null once their account is gone or "
        "when you share no team with them."
    )
    async def shared_by(self, info: Info) -> User | None:
        return await visible_user(info, self.row.shared_by_id)


async def visible_share(info: Info, row: AssetShareRow | None) -> AssetShare | None:
    """The share, if the viewer may see it (`may_see_share`); else None."""
    if row is None:
        return None
    actor = info.context.require_actor()
    loaders = info.context.loaders
    asset = await loaders.asset.load(row.asset_id)
    if asset is None:
        return None
    own = await loaders.asset_share.load((row.asset_id, actor.user_id))
    if not may_see_share(actor, permission(actor, asset, own), row):
        return None
    return AssetShare.from_row(row)


async def load_share(info: Info, share_id: int) -> AssetShare | None:
    """The share by id, as `node(id)` shows it: None if there is none or it is hidden."""
    return await visible_share(info, await info.context.loaders.share.load(share_id))


async def shares_of(info: Info, asset: Asset) -> list[AssetShare]:
    """The asset's shares the viewer may see: all for its ADMINs, else only their own."""
    actor = info.context.require_actor()
    rows = await info.context.loaders.shares_of_asset.load(int(asset.row.id or 0))
    return [AssetShare.from_row(row) for row in rows if may_see_share(actor, asset.access, row)]


@strawberry.input(
    description="Share an asset with one user: give exactly one of `userId` and `email`. "
    "Sharing again with the same user replaces the permission, message and expiry."
)
class ShareAssetInput:
    asset_id: strawberry.ID = strawberry.field(description="The asset (you need ADMIN on it).")
    user_id: strawberry.ID | None = strawberry.field(
        default=None, description="The recipient, any user, by ID."
    )
    email: str | None = strawberry.field(
        default=None,
        description="The recipient by email: only someone who shares a team with you.",
    )
    permission: SharePermission = strawberry.field(
        default=SharePermission.VIEW, description="What the share allows; at most your own."
    )
    message: str | None = strawberry.field(
        default=None, description=f"A note to the recipient, at most {MESSAGE_MAX} characters."
    )
    expires_at: datetime | None = strawberry.field(
        default=None,
        description="When the share stops working: in the future, within a year (an offset-less "
        "time is UTC); null: until revoked.",
    )


@strawberry.input(description="A share to revoke.")
class RevokeShareInput:
    id: strawberry.ID = strawberry.field(
        description="The share's ID (an ADMIN of its asset, or its recipient, may revoke it)."
    )


@strawberry.input(description="Who sees an asset besides those it is shared with.")
class SetShareLevelInput:
    asset_id: strawberry.ID = strawberry.field(description="The asset (you need ADMIN on it).")
    share_level: ShareLevel = strawberry.field(description="The new level.")


@strawberry.type(description="The result of shareAsset.")
class ShareAssetPayload:
    share: AssetShare | None = strawberry.field(
        default=None, description="The share made or updated."
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list, description=_ERRORS)


@strawberry.type(description="The result of setShareLevel.")
class SetShareLevelPayload:
    asset: Asset | None = strawberry.field(
        default=None,
        description="The asset; null if the new level leaves you without access to it.",
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list, description=_ERRORS)


@strawberry.type(description="An asset shared with you, its share, and its place in the list.")
class SharedAssetEdge:
    cursor: str = strawberry.field(description="Pass as `after` for the assets after this one.")
    node: Asset = strawberry.field(description="The asset.")
    share: AssetShare = strawberry.field(description="The share that gives it to you.")


@strawberry.type(description="A page of the assets shared with you, newest share first.")
class SharedAssetConnection:
    edges: list[SharedAssetEdge] = strawberry.field(description="The assets of this page.")
    page_info: PageInfo = strawberry.field(description="Where this page sits.")
    total_count: int = strawberry.field(
        description="How many assets are shared with you now, on every page."
    )

    @strawberry.field(description="The assets of this page, without cursors.")
    def nodes(self) -> list[Asset]:
        return [edge.node for edge in self.edges]
