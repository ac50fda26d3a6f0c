"""Mutations and queries of asset sharing (`services.library.sharing`)."""

from typing import Annotated

import strawberry

from resolvers.writing import returns_user_errors, write
from schema import ids
from schema.connections import After, First, check_first, decode_after, page_info
from schema.context import Info
from schema.library import Asset
from schema.payloads import DeletePayload
from schema.sharing import (
    AssetShare,
    RevokeShareInput,
    SetShareLevelInput,
    SetShareLevelPayload,
    ShareAssetInput,
    ShareAssetPayload,
    SharedAssetConnection,
    SharedAssetEdge,
)
from services import cursors
from services.library import sharing
from services.library.access import permission
from services.tables import utcnow
from services.validation import Checks

_CURSOR = "shared"


@returns_user_errors(ShareAssetPayload)
async def share_asset(
    info: Info,
    input: Annotated[
        ShareAssetInput, strawberry.argument(description="The asset, the recipient and the terms.")
    ],
) -> ShareAssetPayload:
    """Share an asset with one user (`sharing.share_asset`); bad IDs join the other errors."""
    checks = Checks()
    asset_id = ids.decode_into(checks, input.asset_id, "Asset", field=("assetId",))
    user_id = ids.decode_optional_into(checks, input.user_id, "User", field=("userId",))
    async with write(info) as (session, actor):
        share = await sharing.share_asset(
            session,
            actor,
            asset_id=asset_id,
            user_id=user_id,
            email=input.email,
            permission=input.permission,
            message=input.message,
            expires_at=input.expires_at,
            checks=checks,
        )
    return ShareAssetPayload(share=AssetShare.from_row(share))


@returns_user_errors(DeletePayload)
async def revoke_share(
    info: Info,
    input: Annotated[RevokeShareInput, strawberry.argument(description="The share to revoke.")],
) -> DeletePayload:
    """Revoke a share (`sharing.revoke_share`); `deletedId` is the share's ID."""
    share_id = ids.decode(input.id, "AssetShare", field=("id",))
    async with write(info) as (session, actor):
        await sharing.revoke_share(session, actor, share_id=share_id)
    return DeletePayload(deleted_id=input.id)


@returns_user_errors(SetShareLevelPayload)
async def set_share_level(
    info: Info,
    input: Annotated[
        SetShareLevelInput, strawberry.argument(description="The asset and its new level.")
    ],
) -> SetShareLevelPayload:
    """Change an asset's level (`sharing.set_share_level`); `asset` null if it is now hidden."""
    asset_id = ids.decode(input.asset_id, "Asset", field=("assetId",))
    async with write(info) as (session, actor):
        row, granted = await sharing.set_share_level(
            session, actor, asset_id=asset_id, level=input.share_level
        )
    asset = Asset.from_row(row, granted) if granted.permission is not None else None
    return SetShareLevelPayload(asset=asset)


def _cursor(share_id: int | None) -> str:
    return cursors.encode_numbers(_CURSOR, share_id or 0)


async def shared_with_me(
    info: Info,
    first: First = 20,
    after: After = None,
) -> SharedAssetConnection:
    """The assets shared with you by shares in force, newest share first."""
    actor = info.context.require_actor()
    check_first(first)
    before = decode_after(after, _CURSOR)
    now = utcnow()  # one instant for the list and each asset's access: they agree
    async with info.context.db.session() as session:
        page = await sharing.page_shared_with(
            session, actor.user_id, first=first, before_share_id=before, now=now
        )
    edges = [
        SharedAssetEdge(
            cursor=_cursor(share.id),
            node=Asset.from_row(asset, permission(actor, asset, share, now=now)),
            share=AssetShare.from_row(share),
        )
        for share, asset in page.rows
    ]
    return SharedAssetConnection(
        edges=edges,
        total_count=page.total_count,
        page_info=page_info(edges, has_next=page.has_next, has_previous=before is not None),
    )
