"""Sharing library assets, on both engines: the one access rule (Python and SQL agree over
every role, level, share and expiry), shareAsset / revokeShare / setShareLevel, what a
share shows and to whom, sharedWithMe, expiry mid-test, short media links, and the
access notices sent when access may have gone."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import col, select

from schema import ids
from services.accounts.access import Actor
from services.accounts.accounts import load_actor
from services.database import Database
from services.library import access, sharing
from services.library.access import ADMIN, EDIT, VIEW, permission, visible
from services.library.tables import AssetRow, AssetShareRow, ShareLevel, SharePermission
from services.realtime import events
from services.realtime.bus import EventBus
from services.tables import TeamRole, utcnow
from tests import factories
from tests.factories import (
    Account,
    account,
    gql,
    join,
    library_asset,
    mutate,
    mutate_ok,
    statements,
)
from tests.media_harness import media_server

SHARE = "share { id permission message expiresAt active userId user { id } sharedBy { id } }"
ASSET = "query($id: ID!) { asset(id: $id) { id viewerPermission fileUrl } node(id: $id) { id } }"
SHARED = """query($first: Int!, $after: String) {
  sharedWithMe(first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage endCursor }
    edges { cursor node { id viewerPermission fileUrl } share { id permission message } }
  }
}"""
SHARES = "query($id: ID!) { asset(id: $id) { shares { id userId active permission } } }"


def pk(global_id: str, type_name: str) -> int:
    return ids.decode(global_id, type_name)


def iso(moment: datetime) -> str:
    return moment.isoformat()


async def share(
    db: Database, sharer: Account, asset_id: str, *, token: str | None = None, **fields: Any
) -> dict[str, Any]:
    """shareAsset's payload (share and userErrors) for these input fields."""
    return await mutate(
        db, "shareAsset", {"assetId": asset_id, **fields}, SHARE, token=token or sharer.token
    )


async def share_rows(db: Database, asset_id: str) -> list[tuple[Any, ...]]:
    """Every share of the asset as stored, in id order: what a refused write must not change."""
    async with db.session() as session:
        rows = await session.exec(
            select(AssetShareRow)
            .where(col(AssetShareRow.asset_id) == pk(asset_id, "Asset"))
            .order_by(col(AssetShareRow.id))
        )
        return [
            (r.id, r.user_id, r.permission, r.message, r.expires_at, r.shared_by_id, r.updated_at)
            for r in rows
        ]


def link_lifetime(url: str) -> float:
    """Seconds from now until a signed media link expires."""
    expires = parse_qs(urlsplit(url).query)["expires"][0]
    return int(expires) - time.time()


def link_works(url: str) -> bool:
    """Whether the media route would serve this signed link now."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    key = unquote(parts.path.removeprefix("/media/"))
    return factories.MEDIA.verify(key, query["expires"][0], query["signature"][0])


# --- the rule: Python and SQL agree, and both say what the issue says ------------------


@dataclass(frozen=True)
class Case:
    """One asset of the matrix: who made it, its level, and its share (to `target`)."""

    creator: str
    level: ShareLevel
    target: str
    share: SharePermission | None
    expiry: str  # "none" (never), "future", "past" or "now" (exactly the instant checked)


ROLE_RIGHT = {
    TeamRole.VIEWER: VIEW,
    TeamRole.EDITOR: EDIT,
    TeamRole.ADMIN: ADMIN,
    TeamRole.OWNER: ADMIN,
}


def expected(case: Case, actor: str, roles: dict[str, TeamRole | None]) -> SharePermission | None:
    """The issue's rule, written out on its own: PRIVATE its creator (while in the team)
    and its shares; TEAM every member by role; PUBLIC also every signed-in user VIEW."""
    rights: list[SharePermission] = []
    role = roles[actor]
    if role is not None:
        if case.creator == actor:
            rights.append(ADMIN)
        elif case.level != ShareLevel.PRIVATE:
            rights.append(ROLE_RIGHT[role])
    if case.share is not None and case.target == actor and case.expiry in ("none", "future"):
        rights.append(case.share)
    if case.level == ShareLevel.PUBLIC:
        rights.append(VIEW)
    return max(rights, key=lambda p: p.rank) if rights else None


async def test_the_rule_agrees_in_python_and_sql_over_roles_levels_shares_and_expiry(
    db: Database,
) -> None:
    owner = await account(db, name="Owner")
    people = {
        name: await account(db, name=name)
        for name in ("admin", "editor", "viewer", "maker", "leaver", "outsider")
    }
    team_id = await factories.team_with(
        db,
        owner,
        {
            "ADMIN": people["admin"],
            "EDITOR": people["editor"],
            "VIEWER": people["viewer"],
            "VIEWER:maker": people["maker"],
            "EDITOR:leaver": people["leaver"],
        },
    )
    accounts = {"owner": owner, **people}
    user = {name: pk(a.user_id, "User") for name, a in accounts.items()}
    team = pk(team_id, "Team")
    now = utcnow()
    at = {"none": None, "future": now + timedelta(days=1), "past": now - timedelta(days=1)}
    at["now"] = now
    cases = [
        Case(creator, level, target, granted, expiry)
        for creator in ("maker", "leaver")
        for level in ShareLevel
        for target in accounts
        for granted, expiry in [(None, "none")]
        + [(p, e) for p in SharePermission for e in ("none", "future", "past", "now")]
    ]
    by_id: dict[int, Case] = {}
    async with db.transaction() as session:
        for case in cases:
            row = AssetRow(
                team_id=team,
                creator_id=user[case.creator],
                kind="IMAGE",
                name="matrix",
                share_level=case.level.value,
            )
            session.add(row)
            await session.flush()
            assert row.id is not None
            by_id[row.id] = case
            if case.share is not None:
                session.add(
                    AssetShareRow(
                        asset_id=row.id,
                        user_id=user[case.target],
                        permission=case.share.value,
                        expires_at=at[case.expiry],
                    )
                )
    leaver = accounts["leaver"]
    await mutate_ok(
        db,
        "removeTeamMember",
        {"teamId": team_id, "userId": leaver.user_id},
        "team { id }",
        token=leaver.token,
    )

    async with db.session() as session:
        assets = {
            int(row.id or 0): row
            for row in await session.exec(select(AssetRow).where(col(AssetRow.id).in_(by_id)))
        }
        shares = list(
            await session.exec(select(AssetShareRow).where(col(AssetShareRow.asset_id).in_(by_id)))
        )
        actors: dict[str, Actor] = {name: await load_actor(session, user[name]) for name in user}
        roles = {name: actors[name].role_in(team) for name in actors}
        assert roles["leaver"] is None
        assert roles["owner"] == TeamRole.OWNER
        mismatches: list[str] = []
        for name, actor in actors.items():
            own = {s.asset_id: s for s in shares if s.user_id == actor.user_id}
            python = {
                asset_id: permission(actor, row, own.get(asset_id), now=now).permission
                for asset_id, row in assets.items()
            }
            for asset_id, case in by_id.items():
                if python[asset_id] != expected(case, name, roles):
                    mismatches.append(f"python {name} {case}: {python[asset_id]}")
                # Access ends by itself only when it rests on an expiring share alone.
                ends = permission(actor, assets[asset_id], own.get(asset_id), now=now).ends_at
                alone = (
                    case.target == name
                    and case.expiry == "future"
                    and case.level != ShareLevel.PUBLIC
                    and not (roles[name] and (case.creator == name or case.level == "TEAM"))
                )
                if ends != (at["future"] if alone else None):
                    mismatches.append(f"ends_at {name} {case}: {ends}")
            for needed in SharePermission:
                for when in (now, None):
                    sql = set(
                        await session.exec(
                            select(AssetRow.id).where(
                                col(AssetRow.id).in_(by_id), visible(actor, now=when, needed=needed)
                            )
                        )
                    )
                    wanted = {
                        i
                        for i, p in python.items()
                        if p is not None and p.rank >= needed.rank
                        # without `now` the clock moved on: "now" expiries are simply past
                    }
                    if sql != wanted:
                        mismatches.append(f"sql {name} {needed} now={when}: {sql ^ wanted}")
            # Only the team's assets, without other teams' PUBLIC ones: shares still count.
            own_team_only = set(
                await session.exec(
                    select(AssetRow.id).where(
                        col(AssetRow.id).in_(by_id),
                        visible(actor, now=now, teams=[team], public_of_other_teams=False),
                    )
                )
            )
            no_public = {
                i
                for i, row in assets.items()
                if access.team_permission(actor, row) is not None
                or access.share_in_force(own.get(i), now)
            }
            if own_team_only != no_public:
                mismatches.append(f"teams-only {name}: {own_team_only ^ no_public}")
            elsewhere = list(
                await session.exec(
                    select(AssetRow.id).where(
                        col(AssetRow.id).in_(by_id), visible(actor, now=now, teams=[team + 10**9])
                    )
                )
            )
            assert elsewhere == [], name
    assert mismatches == []


async def test_a_stored_share_counts_until_just_before_its_expiry_and_not_at_it(
    db: Database,
) -> None:
    """The boundary, on a share read back from each engine: in force strictly before."""
    ann = await account(db)
    bob = await account(db, name="Bob")
    asset_id = await library_asset(db, ann, share_level="PRIVATE")
    later = utcnow() + timedelta(hours=1)
    await mutate_ok(
        db,
        "shareAsset",
        {"assetId": asset_id, "userId": bob.user_id, "expiresAt": iso(later)},
        "share { id }",
        token=ann.token,
    )
    async with db.session() as session:
        row = await access.share_of(session, pk(asset_id, "Asset"), pk(bob.user_id, "User"))
        assert row is not None
        assert row.expires_at is not None
        assert access.share_in_force(row)
        assert not access.share_in_force(row, later)
        assert access.share_in_force(row, later - timedelta(microseconds=1))


# --- shareAsset -----------------------------------------------------------------------


async def test_sharing_by_id_and_by_a_teammates_email_then_again_updates_the_share(
    db: Database,
) -> None:
    ann = await account(db, name="Ann")
    mate = await account(db, name="Mate")
    stranger = await account(db, name="Stranger")
    team_id = await factories.team_with(db, ann, {"VIEWER": mate})
    asset_id = await library_asset(db, ann, team_id=team_id, share_level="PRIVATE")
    assert (await gql(db, ASSET, {"id": asset_id}, token=stranger.token))["asset"] is None

    by_id = await share(
        db, ann, asset_id, userId=stranger.user_id, permission="EDIT", message="Have a look"
    )
    assert by_id["userErrors"] == []
    made = by_id["share"]
    assert made["permission"] == "EDIT"
    assert made["message"] == "Have a look"
    assert made["active"] is True
    assert made["expiresAt"] is None
    assert made["userId"] == stranger.user_id
    assert made["user"] is None  # Ann shares no team with them: the ID only
    assert made["sharedBy"] == {"id": ann.user_id}
    theirs = await gql(db, ASSET, {"id": asset_id}, token=stranger.token)
    assert theirs["asset"]["viewerPermission"] == "EDIT"
    assert theirs["node"] == {"id": asset_id}

    by_email = await share(db, ann, asset_id, email=f"  {mate.email.upper()} ")
    assert by_email["userErrors"] == []
    assert by_email["share"]["user"] == {"id": mate.user_id}
    assert by_email["share"]["permission"] == "VIEW"

    until = utcnow() + timedelta(days=3)
    again = await share(
        db, ann, asset_id, userId=stranger.user_id, permission="VIEW", expiresAt=iso(until)
    )
    assert again["userErrors"] == []
    assert again["share"]["id"] == made["id"]  # the same share, updated
    assert again["share"]["permission"] == "VIEW"
    assert again["share"]["message"] is None
    assert datetime.fromisoformat(again["share"]["expiresAt"]) == until
    assert len(await share_rows(db, asset_id)) == 2

    # Ann (ADMIN) sees every share; each recipient only their own; others none.
    listed = await gql(db, SHARES, {"id": asset_id}, token=ann.token)
    assert {s["userId"] for s in listed["asset"]["shares"]} == {stranger.user_id, mate.user_id}
    own = await gql(db, SHARES, {"id": asset_id}, token=stranger.token)
    assert [s["id"] for s in own["asset"]["shares"]] == [made["id"]]
    node = "query($id: ID!) { node(id: $id) { id ... on AssetShare { permission } } }"
    assert (await gql(db, node, {"id": made["id"]}, token=ann.token))["node"]["id"] == made["id"]
    assert (await gql(db, node, {"id": made["id"]}, token=stranger.token))["node"] is not None
    assert (await gql(db, node, {"id": made["id"]}, token=mate.token))["node"] is None


async def test_an_unknown_email_and_an_outsiders_email_are_refused_alike(db: Database) -> None:
    ann = await account(db, name="Ann")
    outsider = await account(db, name="Outsider")  # an account, in no team of Ann's
    asset_id = await library_asset(db, ann)
    with statements(db) as for_unknown:
        unknown = await share(db, ann, asset_id, email=factories.unique_email("nobody"))
    with statements(db) as for_known:
        known = await share(db, ann, asset_id, email=outsider.email)
    assert unknown == known
    assert for_unknown == for_known  # the same work, statement for statement
    assert known["share"] is None
    assert known["userErrors"] == [
        {"code": "RECIPIENT_NOT_FOUND", "field": ["email"], "message": sharing.NO_SUCH_RECIPIENT}
    ]
    assert await share_rows(db, asset_id) == []


@dataclass(frozen=True)
class Refusal:
    """A shareAsset that must fail with `code` at `field` (made by `who`)."""

    input: Callable[[dict[str, Any]], dict[str, Any]]
    code: str
    field: list[str] | None
    who: str = "ann"


def _later(**delta: float) -> str:
    return iso(utcnow() + timedelta(**delta))


REFUSALS = {
    "unknown asset": Refusal(
        lambda w: {"assetId": ids.encode("Asset", 10**12), "userId": w["bob"]},
        "NOT_FOUND",
        ["assetId"],
    ),
    "another team's asset": Refusal(
        lambda w: {"assetId": w["foreign"], "userId": w["bob"]}, "NOT_FOUND", ["assetId"]
    ),
    "a user ID as the asset": Refusal(
        lambda w: {"assetId": w["bob"], "userId": w["bob"]}, "WRONG_ID_TYPE", ["assetId"]
    ),
    "a malformed asset ID": Refusal(
        lambda w: {"assetId": "not an id", "userId": w["bob"]}, "INVALID_ID", ["assetId"]
    ),
    "unknown user": Refusal(
        lambda w: {"assetId": w["asset"], "userId": ids.encode("User", 10**12)},
        "NOT_FOUND",
        ["userId"],
    ),
    "an asset ID as the user": Refusal(
        lambda w: {"assetId": w["asset"], "userId": w["asset"]}, "WRONG_ID_TYPE", ["userId"]
    ),
    "both user and email": Refusal(
        lambda w: {"assetId": w["asset"], "userId": w["bob"], "email": w["mate_email"]},
        "ONE_RECIPIENT",
        None,
    ),
    "no recipient": Refusal(lambda w: {"assetId": w["asset"]}, "ONE_RECIPIENT", None),
    "a blank email": Refusal(lambda w: {"assetId": w["asset"], "email": "  "}, "BLANK", ["email"]),
    "yourself by ID": Refusal(
        lambda w: {"assetId": w["asset"], "userId": w["ann"]}, "SHARE_WITH_SELF", ["userId"]
    ),
    "yourself by email": Refusal(
        lambda w: {"assetId": w["asset"], "email": w["ann_email"]}, "SHARE_WITH_SELF", ["email"]
    ),
    "an expiry in the past": Refusal(
        lambda w: {"assetId": w["asset"], "userId": w["bob"], "expiresAt": _later(seconds=-1)},
        "EXPIRY_IN_PAST",
        ["expiresAt"],
    ),
    "an expiry absurdly far": Refusal(
        lambda w: {"assetId": w["asset"], "userId": w["bob"], "expiresAt": _later(days=400)},
        "OUT_OF_RANGE",
        ["expiresAt"],
    ),
    "an expiry of year 1 east of UTC": Refusal(
        lambda w: {
            "assetId": w["asset"],
            "userId": w["bob"],
            "expiresAt": "0001-01-01T00:00:00+14:00",
        },
        "OUT_OF_RANGE",
        ["expiresAt"],
    ),
    "a message over the bound": Refusal(
        lambda w: {
            "assetId": w["asset"],
            "userId": w["bob"],
            "message": "x" * (sharing.MESSAGE_MAX + 1),
        },
        "TOO_LONG",
        ["message"],
    ),
    "a VIEWER sharing": Refusal(
        lambda w: {"assetId": w["asset"], "userId": w["bob"]}, "FORBIDDEN", None, who="viewer"
    ),
    "an EDITOR sharing": Refusal(
        lambda w: {"assetId": w["asset"], "userId": w["bob"]}, "FORBIDDEN", None, who="editor"
    ),
    "an EDIT share's recipient sharing": Refusal(
        lambda w: {"assetId": w["asset"], "userId": w["ann"]}, "FORBIDDEN", None, who="bob"
    ),
    "an outsider sharing": Refusal(
        lambda w: {"assetId": w["asset"], "userId": w["bob"]}, "NOT_FOUND", ["assetId"], "other"
    ),
}


@pytest.mark.parametrize("case", REFUSALS.values(), ids=list(REFUSALS))
async def test_bad_input_to_share_asset_is_a_user_error_and_changes_nothing(
    db: Database, case: Refusal
) -> None:
    ann = await account(db, name="Ann")
    viewer = await account(db, name="Viewer")
    editor = await account(db, name="Editor")
    bob = await account(db, name="Bob")
    other = await account(db, name="Other")
    team_id = await factories.team_with(db, ann, {"VIEWER": viewer, "EDITOR": editor})
    asset_id = await library_asset(db, ann, team_id=team_id)
    foreign = await library_asset(db, other)
    await mutate_ok(
        db,
        "shareAsset",
        {"assetId": asset_id, "userId": bob.user_id, "permission": "EDIT"},
        "share { id }",
        token=ann.token,
    )
    who = {"ann": ann, "viewer": viewer, "editor": editor, "bob": bob, "other": other}
    world = {
        "asset": asset_id,
        "foreign": foreign,
        "ann": ann.user_id,
        "bob": bob.user_id,
        "ann_email": ann.email,
        "mate_email": viewer.email,
    }
    before = await share_rows(db, asset_id)
    foreign_before = await share_rows(db, foreign)
    payload = await mutate(db, "shareAsset", case.input(world), SHARE, token=who[case.who].token)
    assert payload["share"] is None
    assert [e["code"] for e in payload["userErrors"]] == [case.code]
    assert payload["userErrors"][0]["field"] == case.field
    assert await share_rows(db, asset_id) == before
    assert await share_rows(db, foreign) == foreign_before


async def test_several_input_problems_are_reported_together(db: Database) -> None:
    ann = await account(db)
    asset_id = await library_asset(db, ann)
    payload = await share(
        db,
        ann,
        asset_id,
        userId="broken",
        message="x" * (sharing.MESSAGE_MAX + 1),
        expiresAt=_later(seconds=-5),
    )
    assert sorted(e["code"] for e in payload["userErrors"]) == [
        "EXPIRY_IN_PAST",
        "INVALID_ID",
        "TOO_LONG",
    ]
    assert await share_rows(db, asset_id) == []


# --- expiry and revoking: asset, node, media URL, sharedWithMe ---------------------------


async def _sees(db: Database, who: Account, asset_id: str) -> dict[str, Any]:
    data = await gql(db, ASSET, {"id": asset_id}, token=who.token)
    listed = await gql(db, SHARED, {"first": 10}, token=who.token)
    return {
        "asset": data["asset"],
        "node": data["node"],
        "shared": [e["node"]["id"] for e in listed["sharedWithMe"]["edges"]],
        "total": listed["sharedWithMe"]["totalCount"],
    }


async def test_a_share_that_expires_mid_test_stops_working_at_its_expiry(db: Database) -> None:
    ann = await account(db, name="Ann")
    bob = await account(db, name="Bob")
    asset_id = await library_asset(
        db, ann, share_level="PRIVATE", storage_key="library/a.png", thumbnail_key="library/t.webp"
    )
    expiry = utcnow() + timedelta(seconds=3)
    made = await share(db, ann, asset_id, userId=bob.user_id, expiresAt=iso(expiry))
    assert made["userErrors"] == []
    share_id = made["share"]["id"]

    seen = await _sees(db, bob, asset_id)
    assert seen["asset"]["viewerPermission"] == "VIEW"
    assert seen["node"] == {"id": asset_id}
    assert seen["shared"] == [asset_id]
    assert seen["total"] == 1
    shared_link = seen["asset"]["fileUrl"]
    assert 0 < link_lifetime(shared_link) <= 4  # through a share: short, and ends with it
    assert link_works(shared_link)
    team_link = (await gql(db, ASSET, {"id": asset_id}, token=ann.token))["asset"]["fileUrl"]
    assert link_lifetime(team_link) > 3600  # her own team's access keeps the long link
    node = "query($id: ID!) { node(id: $id) { id } }"
    assert (await gql(db, node, {"id": share_id}, token=bob.token))["node"] == {"id": share_id}

    await asyncio.sleep(max(0.0, (expiry - utcnow()).total_seconds()) + 0.2)

    gone = await _sees(db, bob, asset_id)
    assert gone == {"asset": None, "node": None, "shared": [], "total": 0}  # no fileUrl at all
    assert not link_works(shared_link)  # and the link handed out before no longer opens
    assert link_works(team_link)
    assert (await gql(db, node, {"id": share_id}, token=bob.token))["node"] is None
    # Ann still sees the share, no longer active, and may renew or revoke it.
    listed = await gql(db, SHARES, {"id": asset_id}, token=ann.token)
    assert listed["asset"]["shares"] == [
        {"id": share_id, "userId": bob.user_id, "active": False, "permission": "VIEW"}
    ]
    async with db.session() as session:
        bob_actor = await load_actor(session, pk(bob.user_id, "User"))
        found = await session.exec(select(AssetRow.id).where(visible(bob_actor)))
        assert pk(asset_id, "Asset") not in set(found)
    # Its recipient may still clear the expired share away.
    await mutate_ok(db, "revokeShare", {"id": share_id}, "deletedId", token=bob.token)
    assert await share_rows(db, asset_id) == []


async def test_revoking_ends_access_at_once_for_admin_and_recipient_alike(db: Database) -> None:
    ann = await account(db, name="Ann")
    bob = await account(db, name="Bob")
    carl = await account(db, name="Carl")
    viewer = await account(db, name="Viewer")
    team_id = await factories.team_with(db, ann, {"VIEWER": viewer})
    asset_id = await library_asset(
        db, ann, team_id=team_id, share_level="PRIVATE", storage_key="library/b.png"
    )
    to_bob = (await share(db, ann, asset_id, userId=bob.user_id))["share"]["id"]
    to_carl = (await share(db, ann, asset_id, userId=carl.user_id))["share"]["id"]
    assert (await _sees(db, bob, asset_id))["total"] == 1

    # Neither a stranger to the share nor a teammate who cannot see it may revoke it.
    for who in (carl, viewer):
        refused = await mutate(db, "revokeShare", {"id": to_bob}, "deletedId", token=who.token)
        assert refused == {
            "deletedId": None,
            "userErrors": [
                {
                    "code": "NOT_FOUND",
                    "field": ["id"],
                    "message": "No share with that ID exists, or you cannot see it.",
                }
            ],
        }
    wrong = await mutate(db, "revokeShare", {"id": asset_id}, "deletedId", token=ann.token)
    assert [e["code"] for e in wrong["userErrors"]] == ["WRONG_ID_TYPE"]
    assert len(await share_rows(db, asset_id)) == 2

    done = await mutate_ok(db, "revokeShare", {"id": to_bob}, "deletedId", token=ann.token)
    assert done["deletedId"] == to_bob
    assert await _sees(db, bob, asset_id) == {"asset": None, "node": None, "shared": [], "total": 0}
    again = await mutate(db, "revokeShare", {"id": to_bob}, "deletedId", token=ann.token)
    assert [e["code"] for e in again["userErrors"]] == ["NOT_FOUND"]

    # The recipient may leave a share made to them.
    await mutate_ok(db, "revokeShare", {"id": to_carl}, "deletedId", token=carl.token)
    assert await _sees(db, carl, asset_id) == {
        "asset": None,
        "node": None,
        "shared": [],
        "total": 0,
    }
    assert await share_rows(db, asset_id) == []


async def test_shared_with_me_pages_by_keyset_with_a_total(db: Database) -> None:
    ann = await account(db, name="Ann")
    bob = await account(db, name="Bob")
    made = [await library_asset(db, ann, share_level="PRIVATE") for _ in range(3)]
    expired = await library_asset(db, ann, share_level="PRIVATE")
    for asset_id in [*made, expired]:
        await mutate_ok(
            db,
            "shareAsset",
            {"assetId": asset_id, "userId": bob.user_id},
            "share { id }",
            token=ann.token,
        )
    async with db.transaction() as session:
        row = await access.share_of(session, pk(expired, "Asset"), pk(bob.user_id, "User"))
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)
        session.add(row)

    first = (await gql(db, SHARED, {"first": 2}, token=bob.token))["sharedWithMe"]
    assert first["totalCount"] == 3
    assert [e["node"]["id"] for e in first["edges"]] == [made[2], made[1]]  # newest share first
    assert first["pageInfo"]["hasNextPage"] is True
    assert first["pageInfo"]["hasPreviousPage"] is False
    rest = (
        await gql(
            db, SHARED, {"first": 2, "after": first["pageInfo"]["endCursor"]}, token=bob.token
        )
    )["sharedWithMe"]
    assert [e["node"]["id"] for e in rest["edges"]] == [made[0]]
    assert rest["totalCount"] == 3
    assert rest["pageInfo"]["hasNextPage"] is False
    assert rest["pageInfo"]["hasPreviousPage"] is True
    assert all(e["share"]["permission"] == "VIEW" for e in first["edges"] + rest["edges"])
    assert (await gql(db, SHARED, {"first": 5}, token=ann.token))["sharedWithMe"]["totalCount"] == 0

    for bad in ({"first": 2, "after": "bm9wZQ"}, {"first": 101}, {"first": -1}):
        result = await factories.execute(db, SHARED, bad, token=bob.token)
        assert result.errors is not None
        assert result.errors[0].extensions == {"code": "BAD_USER_INPUT"}


# --- levels ---------------------------------------------------------------------------


async def test_share_levels_decide_who_sees_it_and_only_admins_set_them(db: Database) -> None:
    ann = await account(db, name="Ann")
    admin = await account(db, name="Admin")
    editor = await account(db, name="Editor")
    outsider = await account(db, name="Outsider")
    team_id = await factories.team_with(db, ann, {"ADMIN": admin, "EDITOR": editor})
    asset_id = await library_asset(db, editor, team_id=team_id, storage_key="library/c.png")
    level = "asset { id shareLevel viewerPermission }"

    async def right(who: Account) -> str | None:
        found = (await gql(db, ASSET, {"id": asset_id}, token=who.token))["asset"]
        return None if found is None else str(found["viewerPermission"])

    assert [await right(w) for w in (ann, admin, editor, outsider)] == [
        "ADMIN",
        "ADMIN",
        "ADMIN",  # its creator
        None,
    ]
    public = await mutate_ok(
        db, "setShareLevel", {"assetId": asset_id, "shareLevel": "PUBLIC"}, level, token=admin.token
    )
    assert public["asset"]["shareLevel"] == "PUBLIC"
    seen = (await gql(db, ASSET, {"id": asset_id}, token=outsider.token))["asset"]
    assert seen["viewerPermission"] == "VIEW"
    assert 0 < link_lifetime(seen["fileUrl"]) <= 600  # PUBLIC to a non-member: short

    # The outsider (VIEW through PUBLIC) may not change the level: FORBIDDEN, nothing changes.
    refused = await mutate(
        db,
        "setShareLevel",
        {"assetId": asset_id, "shareLevel": "TEAM"},
        level,
        token=outsider.token,
    )
    assert refused["asset"] is None
    assert [e["code"] for e in refused["userErrors"]] == ["FORBIDDEN"]
    for bad, code in (
        (outsider.user_id, "WRONG_ID_TYPE"),
        (ids.encode("Asset", 10**12), "NOT_FOUND"),
    ):
        wrong = await mutate(
            db, "setShareLevel", {"assetId": bad, "shareLevel": "TEAM"}, level, token=admin.token
        )
        assert [e["code"] for e in wrong["userErrors"]] == [code]

    # A team admin making a teammate's asset PRIVATE loses it too: the payload says so.
    private = await mutate_ok(
        db,
        "setShareLevel",
        {"assetId": asset_id, "shareLevel": "PRIVATE"},
        level,
        token=admin.token,
    )
    assert private["asset"] is None
    assert [await right(w) for w in (ann, admin, editor, outsider)] == [None, None, "ADMIN", None]
    team = await mutate_ok(
        db, "setShareLevel", {"assetId": asset_id, "shareLevel": "TEAM"}, level, token=editor.token
    )
    assert team["asset"]["shareLevel"] == "TEAM"
    assert [await right(w) for w in (ann, admin, editor, outsider)] == [
        "ADMIN",
        "ADMIN",
        "ADMIN",
        None,
    ]
    viewer = await account(db, name="Viewer")
    await join(db, team_id, viewer, role="VIEWER", inviter=ann)
    assert await right(viewer) == "VIEW"
    refused = await mutate(
        db,
        "setShareLevel",
        {"assetId": asset_id, "shareLevel": "PUBLIC"},
        level,
        token=viewer.token,
    )
    assert [e["code"] for e in refused["userErrors"]] == ["FORBIDDEN"]
    async with db.session() as session:
        row = await session.get(AssetRow, pk(asset_id, "Asset"))
        assert row is not None
        assert row.share_level == "TEAM"


async def test_an_admin_share_may_share_on_and_change_the_level(db: Database) -> None:
    ann = await account(db, name="Ann")
    bob = await account(db, name="Bob")
    carl = await account(db, name="Carl")
    asset_id = await library_asset(db, ann, share_level="PRIVATE")
    await mutate_ok(
        db,
        "shareAsset",
        {"assetId": asset_id, "userId": bob.user_id, "permission": "ADMIN"},
        "share { id }",
        token=ann.token,
    )
    onward = await share(db, bob, asset_id, userId=carl.user_id, permission="ADMIN")
    assert onward["userErrors"] == []
    assert onward["share"]["sharedBy"] == {"id": bob.user_id}
    listed = await gql(db, SHARES, {"id": asset_id}, token=bob.token)
    assert len(listed["asset"]["shares"]) == 2  # ADMIN through a share sees every share
    await mutate_ok(
        db,
        "setShareLevel",
        {"assetId": asset_id, "shareLevel": "TEAM"},
        "asset { id }",
        token=bob.token,
    )


# --- access notices -----------------------------------------------------------------------


async def test_losing_access_sends_the_recipient_a_notice_after_commit(db: Database) -> None:
    bus = EventBus("memory://")
    await bus.start()
    live = Database(db.url, bus=bus)
    try:
        ann = await account(live, name="Ann")
        bob = await account(live, name="Bob")
        mate = await account(live, name="Mate")
        team_id = await factories.team_with(live, ann, {"VIEWER": mate})
        asset_id = await library_asset(live, ann, team_id=team_id)
        bob_pk, mate_pk = pk(bob.user_id, "User"), pk(mate.user_id, "User")

        async def notices(user_id: int, action: Any) -> list[dict[str, Any]]:
            async with bus.subscribe(events.access_channel(user_id)) as inbox:
                await action()
                got: list[dict[str, Any]] = []
                while True:
                    try:
                        got.append(await asyncio.wait_for(inbox.get(), 0.5))
                    except TimeoutError:
                        return got

        made: dict[str, Any] = {}

        async def share_edit() -> None:
            made.update(await share(live, ann, asset_id, userId=bob.user_id, permission="EDIT"))

        assert await notices(bob_pk, share_edit) == []  # gaining access needs no notice

        async def lower() -> None:
            await mutate_ok(
                live,
                "shareAsset",
                {"assetId": asset_id, "userId": bob.user_id, "permission": "VIEW"},
                "share { id }",
                token=ann.token,
            )

        assert await notices(bob_pk, lower) == [{"access": "changed"}]

        async def refused() -> None:  # a failed write sends nothing
            await share(live, ann, asset_id, userId=bob.user_id, expiresAt=_later(seconds=-1))

        assert await notices(bob_pk, refused) == []

        async def revoke() -> None:
            await mutate_ok(
                live, "revokeShare", {"id": made["share"]["id"]}, "deletedId", token=ann.token
            )

        assert await notices(bob_pk, revoke) == [{"access": "changed"}]

        async def to_private() -> None:
            await mutate_ok(
                live,
                "setShareLevel",
                {"assetId": asset_id, "shareLevel": "PRIVATE"},
                "asset { id }",
                token=ann.token,
            )

        assert await notices(mate_pk, to_private) == [{"access": "changed"}]

        async def to_team() -> None:
            await mutate_ok(
                live,
                "setShareLevel",
                {"assetId": asset_id, "shareLevel": "TEAM"},
                "asset { id }",
                token=ann.token,
            )

        assert await notices(mate_pk, to_team) == []
    finally:
        await live.dispose()
        await bus.stop()


async def test_the_next_expiry_of_a_users_shares_is_known_in_advance(db: Database) -> None:
    ann = await account(db, name="Ann")
    bob = await account(db, name="Bob")
    soon, later = utcnow() + timedelta(hours=1), utcnow() + timedelta(days=2)
    first = await library_asset(db, ann, share_level="PRIVATE")
    second = await library_asset(db, ann, share_level="PRIVATE")
    third = await library_asset(db, ann, share_level="PRIVATE")
    for asset_id, until in ((first, later), (second, soon), (third, None)):
        await mutate_ok(
            db,
            "shareAsset",
            {"assetId": asset_id, "userId": bob.user_id, "expiresAt": until and iso(until)},
            "share { id }",
            token=ann.token,
        )
    async with db.session() as session:
        bob_pk = pk(bob.user_id, "User")
        assert await sharing.next_share_expiry(session, bob_pk) == soon
        assert await sharing.next_share_expiry(session, bob_pk, now=soon) == later
        assert await sharing.next_share_expiry(session, bob_pk, now=later) is None
        team = pk(ann.team_id, "Team")
        assert await sharing.next_share_expiry(session, bob_pk, team_id=team) == soon
        assert await sharing.next_share_expiry(session, bob_pk, team_id=team + 10**9) is None
        count = await session.exec(
            select(func.count()).select_from(AssetShareRow).where(AssetShareRow.user_id == bob_pk)
        )
        assert count.one() == 3


# --- end to end: a real server, a share that expires, its media link over HTTP ------------

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.mark.e2e
async def test_over_http_a_shared_file_opens_until_the_share_expires(
    tmp_path: Path,
) -> None:
    secret = secrets.token_urlsafe(48)
    server = media_server(tmp_path, "sharing", {"library/e2e.png": PNG}, secret_key=secret)
    with server:
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=10.0, trust_env=False
        ) as http:

            async def post(query: str, variables: dict[str, Any], token: str | None = None) -> Any:
                headers = {"authorization": f"Bearer {token}"} if token else {}
                answer = await http.post(
                    "/graphql", json={"query": query, "variables": variables}, headers=headers
                )
                body = answer.json()
                assert "errors" not in body, body
                return body["data"]

            async def fetch(url: str) -> int:
                parts = urlsplit(url)
                return (await http.get(f"{parts.path}?{parts.query}")).status_code

            sign_up = (
                "mutation($input: SignUpInput!) { signUp(input: $input) "
                "{ token user { id teams { id } } userErrors { code } } }"
            )
            people = {}
            for name in ("Ann", "Bob"):
                made = await post(
                    sign_up,
                    {
                        "input": {
                            "email": factories.unique_email(name.lower()),
                            "password": factories.PASSWORD,
                            "name": name,
                        }
                    },
                )
                people[name] = made["signUp"]
            ann, bob = people["Ann"], people["Bob"]
            stored = Database(f"sqlite+aiosqlite:///{tmp_path / 'studio.db'}")
            try:
                async with stored.transaction() as session:
                    row = AssetRow(
                        team_id=pk(ann["user"]["teams"][0]["id"], "Team"),
                        creator_id=pk(ann["user"]["id"], "User"),
                        kind="IMAGE",
                        name="Harbour at dusk",
                        share_level="PRIVATE",
                        storage_key="library/e2e.png",
                    )
                    session.add(row)
                    await session.flush()
                    asset_id = ids.encode("Asset", row.id)
            finally:
                await stored.dispose()

            expiry = utcnow() + timedelta(seconds=3)
            shared = await post(
                "mutation($input: ShareAssetInput!) { shareAsset(input: $input) "
                "{ share { id } userErrors { code } } }",
                {
                    "input": {
                        "assetId": asset_id,
                        "userId": bob["user"]["id"],
                        "expiresAt": iso(expiry),
                    }
                },
                ann["token"],
            )
            assert shared["shareAsset"]["userErrors"] == []
            seen = await post(ASSET, {"id": asset_id}, bob["token"])
            link = seen["asset"]["fileUrl"]
            assert await fetch(link) == 200
            owned = (await post(ASSET, {"id": asset_id}, ann["token"]))["asset"]["fileUrl"]

            await asyncio.sleep(max(0.0, (expiry - utcnow()).total_seconds()) + 0.5)

            assert await post(ASSET, {"id": asset_id}, bob["token"]) == {
                "asset": None,
                "node": None,
            }
            assert await fetch(link) in (403, 404)  # the link handed out before ends with it
            assert await fetch(owned) == 200  # the team's own link goes on


async def test_concurrent_shares_and_revokes_of_one_share_never_fail_unexpectedly(
    db: Database,
) -> None:
    ann = await account(db, name="Ann")
    bob = await account(db, name="Bob")
    asset_id = await library_asset(db, ann, share_level="PRIVATE")
    revoke = f"mutation($input: {factories.input_type('revokeShare')}!) {{ revokeShare(input: $input) {{ deletedId userErrors {{ code }} }} }}"
    again = f"mutation($input: {factories.input_type('shareAsset')}!) {{ shareAsset(input: $input) {{ share {{ id }} userErrors {{ code }} }} }}"
    for permission_name in ("VIEW", "EDIT", "VIEW", "ADMIN", "VIEW"):
        made = await mutate_ok(
            db,
            "shareAsset",
            {"assetId": asset_id, "userId": bob.user_id},
            "share { id }",
            token=ann.token,
        )
        share_id = made["share"]["id"]
        results = await asyncio.gather(
            factories.execute(db, revoke, {"input": {"id": share_id}}, token=bob.token),
            factories.execute(db, revoke, {"input": {"id": share_id}}, token=ann.token),
            factories.execute(
                db,
                again,
                {
                    "input": {
                        "assetId": asset_id,
                        "userId": bob.user_id,
                        "permission": permission_name,
                    }
                },
                token=ann.token,
            ),
        )
        assert [r.errors for r in results] == [None, None, None]
        codes = [
            [e["code"] for e in (r.data or {}).get(name, {}).get("userErrors", [])]
            for r, name in zip(results, ("revokeShare", "revokeShare", "shareAsset"), strict=True)
        ]
        assert codes[2] == []  # sharing again always succeeds: updated, or made anew
        assert sorted(codes[:2]) == [[], ["NOT_FOUND"]]  # one row is deleted once
        for row in await share_rows(db, asset_id):
            await mutate_ok(
                db,
                "revokeShare",
                {"id": ids.encode("AssetShare", row[0])},
                "deletedId",
                token=ann.token,
            )
