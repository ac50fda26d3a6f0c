"""Invitations are the only way into a team, and they reveal nothing.

A manager gets a single-use, expiring code for a role; only accepting it adds
anyone. A code that is unknown, used, revoked, expired or malformed gets one and
the same answer. No operation takes an email address of someone else, so no
answer can tell whether an address has an account. Schema tests run on both
engines; the last test goes over real HTTP against a `studio serve` process.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select
from strawberry.types import ExecutionResult

from api.graphql import build_context
from api.schema import schema
from schema import ids
from schema.context import Resources
from services import maintenance
from services.accounts.accounts import AccountSettings
from services.database import Database
from services.tables import TeamInvitationRow, TeamMemberRow, utcnow
from tests.factories import (
    MEDIA,
    Account,
    account,
    gql,
    invitation_code,
    join,
    mutate,
    mutate_ok,
    project,
)
from tests.realtime_harness import Api
from tests.servers import StudioServer, studio_env

INVITE = "invitation { id role createdAt expiresAt team { id } invitedBy { id } } code"
INVITATIONS = """
query($team: ID!) {
  team(id: $team) {
    members { role user { id } }
    invitations { id role expiresAt invitedBy { id } }
  }
}
"""


async def invite(db: Database, team: str, role: str, by: Account) -> dict[str, Any]:
    return await mutate(
        db, "inviteTeamMember", {"teamId": team, "role": role}, INVITE, token=by.token
    )


async def accept(db: Database, code: str, by: Account) -> dict[str, Any]:
    return await mutate(db, "acceptInvitation", {"code": code}, "team { id name }", token=by.token)


async def revoke(db: Database, invitation_id: str, by: Account) -> dict[str, Any]:
    return await mutate(db, "revokeInvitation", {"id": invitation_id}, "deletedId", token=by.token)


async def roster(db: Database, team: str, by: Account) -> dict[str, Any]:
    data = await gql(db, INVITATIONS, {"team": team}, token=by.token)
    result: dict[str, Any] = data["team"]
    return result


@pytest.fixture(scope="module")
async def people(db: Database) -> dict[str, Account]:
    """Accounts shared by this module's tests; each test gives them a team of its own."""
    names = ["OWNER", "ADMIN", "EDITOR", "VIEWER", "NEWCOMER", "OTHER"]
    return {name: await account(db, name=name.title()) for name in names}


async def crew_team(db: Database, people: dict[str, Account]) -> str:
    """A new team: OWNER owns it, ADMIN, EDITOR and VIEWER joined it; the others did not."""
    owner = people["OWNER"]
    made = await mutate_ok(db, "createTeam", {"name": "Crew"}, "team { id }", token=owner.token)
    team: str = made["team"]["id"]
    for role in ["ADMIN", "EDITOR", "VIEWER"]:
        await join(db, team, people[role], role=role, inviter=owner)
    return team


def codes(payload: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["code"], ".".join(e["field"] or ())) for e in payload["userErrors"]]


async def test_a_code_is_given_once_and_only_accepting_it_adds_anyone(
    db: Database, people: dict[str, Account]
) -> None:
    team = await crew_team(db, people)
    owner, newcomer = people["OWNER"], people["NEWCOMER"]
    before = await roster(db, team, owner)

    made = await invite(db, team, "EDITOR", owner)
    assert made["userErrors"] == []
    invitation = made["invitation"]
    assert made["code"].startswith("sbi_")
    assert len(made["code"]) > 40
    assert invitation["role"] == "EDITOR"
    assert invitation["team"] == {"id": team}
    assert invitation["invitedBy"] == {"id": owner.user_id}
    created = datetime.fromisoformat(invitation["createdAt"])
    expires = datetime.fromisoformat(invitation["expiresAt"])
    assert expires - created == timedelta(days=7)

    # Pending, listed for managers, and no one was added.
    listed = await roster(db, team, owner)
    assert listed["members"] == before["members"]
    assert [i["id"] for i in listed["invitations"]] == [invitation["id"]]
    # The code is never shown again: the Invitation type has no field holding it.
    fields = schema._schema.type_map["Invitation"].fields  # type: ignore[attr-defined]
    assert not {"code", "codeHash"} & set(fields)

    joined = await accept(db, made["code"], newcomer)
    assert joined["userErrors"] == []
    assert joined["team"]["id"] == team
    after = await roster(db, team, owner)
    assert {"role": "EDITOR", "user": {"id": newcomer.user_id}} in after["members"]
    assert after["invitations"] == []  # used up
    # The newcomer reads the team and writes its projects at once.
    await project(db, newcomer, team_id=team)


async def test_only_managers_see_the_pending_invitations(
    db: Database, people: dict[str, Account]
) -> None:
    team = await crew_team(db, people)
    made = await invite(db, team, "VIEWER", people["ADMIN"])
    expected = [
        {
            "id": made["invitation"]["id"],
            "role": "VIEWER",
            "expiresAt": made["invitation"]["expiresAt"],
            "invitedBy": {"id": people["ADMIN"].user_id},
        }
    ]
    seen = {
        role: (await roster(db, team, people[role]))["invitations"]
        for role in ["OWNER", "ADMIN", "EDITOR", "VIEWER"]
    }
    assert seen == {"OWNER": expected, "ADMIN": expected, "EDITOR": None, "VIEWER": None}
    node = "query($id: ID!) { node(id: $id) { id ... on Invitation { role } } }"
    by_id = {
        role: (await gql(db, node, {"id": made["invitation"]["id"]}, token=people[role].token))[
            "node"
        ]
        for role in ["OWNER", "EDITOR", "OTHER"]
    }
    assert by_id == {
        "OWNER": {"id": made["invitation"]["id"], "role": "VIEWER"},
        "EDITOR": None,
        "OTHER": None,
    }


async def test_an_expired_invitation_is_not_fetched_by_id(
    db: Database, people: dict[str, Account]
) -> None:
    team = await crew_team(db, people)
    owner = people["OWNER"]
    made = await invite(db, team, "VIEWER", owner)
    node = "query($id: ID!) { node(id: $id) { id } }"
    invitation_id = made["invitation"]["id"]
    assert (await gql(db, node, {"id": invitation_id}, token=owner.token))["node"] == {
        "id": invitation_id
    }
    async with db.transaction() as session:
        row = await session.get(TeamInvitationRow, ids.decode(invitation_id, "Invitation"))
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)
        session.add(row)
    assert (await gql(db, node, {"id": invitation_id}, token=owner.token))["node"] is None


async def test_every_unusable_code_gets_the_same_answer(
    db: Database, people: dict[str, Account]
) -> None:
    team = await crew_team(db, people)
    owner = people["OWNER"]
    used = (await invite(db, team, "VIEWER", owner))["code"]
    assert (await accept(db, used, people["NEWCOMER"]))["userErrors"] == []
    revoked = await invite(db, team, "VIEWER", owner)
    assert (await revoke(db, revoked["invitation"]["id"], owner))["deletedId"] == revoked[
        "invitation"
    ]["id"]
    expired = await _expired_code(db, team, owner)

    cases = {
        "unknown": "sbi_" + secrets.token_urlsafe(32),
        "used": used,
        "revoked": revoked["code"],
        "expired": expired,
        "empty": "",
        "no prefix": secrets.token_urlsafe(32),
        "overlong": "sbi_" + "a" * 5000,
        "NUL": "sbi_\x00",
        "a token": owner.token,
    }
    answers = {label: await accept(db, code, people["OTHER"]) for label, code in cases.items()}
    first = answers["unknown"]
    assert first["team"] is None
    [error] = first["userErrors"]
    assert (error["code"], error["field"]) == ("INVALID_INVITATION", ["code"])
    assert "Crew" not in error["message"]
    assert {label: answer for label, answer in answers.items()} == dict.fromkeys(cases, first)
    # The outsider joined nothing.
    assert await gql(
        db, "query($id: ID!) { team(id: $id) { id } }", {"id": team}, token=people["OTHER"].token
    ) == {"team": None}


async def _expired_code(db: Database, team: str, owner: Account) -> str:
    """A code made with a lifetime of a moment, once that moment has passed."""
    brief = Resources(
        db=db,
        media=MEDIA,
        accounts=AccountSettings(invitation_lifetime=timedelta(milliseconds=200)),
    )
    result = await _execute(
        brief,
        "mutation($input: InviteTeamMemberInput!) { inviteTeamMember(input: $input) { code userErrors { code } } }",
        {"input": {"teamId": team, "role": "EDITOR"}},
        token=owner.token,
    )
    assert result.errors is None
    assert result.data is not None
    code: str = result.data["inviteTeamMember"]["code"]
    await asyncio.sleep(0.3)
    # Expired invitations are no longer listed either.
    assert (await roster(db, team, owner))["invitations"] == []
    return code


async def _execute(
    resources: Resources, query: str, variables: dict[str, Any], *, token: str
) -> ExecutionResult:
    context = await build_context(resources, token)
    return await schema.execute(query, variable_values=variables, context_value=context)


async def test_a_member_accepting_gets_a_conflict_and_the_code_stays_usable(
    db: Database, people: dict[str, Account]
) -> None:
    team = await crew_team(db, people)
    code = (await invite(db, team, "ADMIN", people["OWNER"]))["code"]
    for member in ["OWNER", "EDITOR"]:
        conflict = await accept(db, code, people[member])
        assert codes(conflict) == [("ALREADY_MEMBER", "code")]
        assert conflict["team"] is None
    roles = {
        m["user"]["id"]: m["role"] for m in (await roster(db, team, people["OWNER"]))["members"]
    }
    assert roles[people["EDITOR"].user_id] == "EDITOR"  # not promoted by the code
    assert (await accept(db, code, people["NEWCOMER"]))["userErrors"] == []


async def test_two_people_racing_for_one_code_only_one_joins(
    db: Database, people: dict[str, Account]
) -> None:
    team = await crew_team(db, people)
    code = (await invite(db, team, "EDITOR", people["OWNER"]))["code"]
    first, second = await asyncio.gather(
        accept(db, code, people["NEWCOMER"]), accept(db, code, people["OTHER"])
    )
    outcomes = sorted([codes(first), codes(second)])
    assert outcomes == [[], [("INVALID_INVITATION", "code")]]
    members = {m["user"]["id"] for m in (await roster(db, team, people["OWNER"]))["members"]}
    assert len(members & {people["NEWCOMER"].user_id, people["OTHER"].user_id}) == 1


@pytest.mark.parametrize(
    ("revoker", "role", "expected"),
    [
        ("OWNER", "OWNER", None),
        ("OWNER", "VIEWER", None),
        ("ADMIN", "EDITOR", None),
        ("ADMIN", "OWNER", "FORBIDDEN"),
        ("EDITOR", "VIEWER", "FORBIDDEN"),
        ("VIEWER", "VIEWER", "FORBIDDEN"),
        ("OTHER", "VIEWER", "NOT_FOUND"),
    ],
)
async def test_revoking_follows_the_member_rules(
    db: Database, people: dict[str, Account], revoker: str, role: str, expected: str | None
) -> None:
    team = await crew_team(db, people)
    made = await invite(db, team, role, people["OWNER"])
    invitation_id = made["invitation"]["id"]
    payload = await revoke(db, invitation_id, people[revoker])
    pending = [i["id"] for i in (await roster(db, team, people["OWNER"]))["invitations"]]
    if expected is None:
        assert payload == {"deletedId": invitation_id, "userErrors": []}
        assert pending == []
        assert codes(await accept(db, made["code"], people["NEWCOMER"])) == [
            ("INVALID_INVITATION", "code")
        ]
        return
    assert payload["deletedId"] is None
    assert [e["code"] for e in payload["userErrors"]] == [expected]
    assert pending == [invitation_id]
    if expected == "NOT_FOUND":
        # Exactly what an invitation that exists nowhere gets.
        nowhere = base64.b64encode(b"Invitation:987654321").decode()
        assert (await revoke(db, nowhere, people[revoker]))["userErrors"] == payload["userErrors"]


async def _set_inviter(db: Database, team: str, user: Account, *, role: str | None) -> None:
    """Change a member's stored role (None: leave their user id off their invitations, as
    deleting their account does through the SET NULL reference)."""
    team_id = ids.decode(team, "Team")
    user_id = ids.decode(user.user_id, "User")
    async with db.transaction() as session:
        if role is None:
            for row in await session.exec(
                select(TeamInvitationRow).where(TeamInvitationRow.invited_by_id == user_id)
            ):
                row.invited_by_id = None
                session.add(row)
            return
        member = await session.get(TeamMemberRow, (team_id, user_id))
        assert member is not None
        member.role = role
        session.add(member)


async def test_a_removed_manager_s_codes_stop_working(
    db: Database, people: dict[str, Account]
) -> None:
    """Removing an admin (or an admin leaving) takes their pending invitations with them:
    a code they kept cannot bring them, or anyone they hand it to, back in."""
    owner = people["OWNER"]
    for leaving in (False, True):
        team = await crew_team(db, people)
        admin = await account(db, name="Admin")
        await join(db, team, admin, role="ADMIN", inviter=owner)
        kept = {role: (await invite(db, team, role, admin))["code"] for role in ("ADMIN", "VIEWER")}
        by_owner = await invite(db, team, "EDITOR", owner)
        remover = admin if leaving else owner
        removed = await mutate(
            db,
            "removeTeamMember",
            {"teamId": team, "userId": admin.user_id},
            "team { id }",
            token=remover.token,
        )
        assert removed["userErrors"] == []
        # No longer listed, and none of the kept codes lets anyone in.
        listed = await roster(db, team, owner)
        assert [i["id"] for i in listed["invitations"]] == [by_owner["invitation"]["id"]]
        assert codes(await accept(db, kept["ADMIN"], admin)) == [("INVALID_INVITATION", "code")]
        assert codes(await accept(db, kept["VIEWER"], people["NEWCOMER"])) == [
            ("INVALID_INVITATION", "code")
        ]
        members = {m["user"]["id"] for m in (await roster(db, team, owner))["members"]}
        assert admin.user_id not in members
        assert people["NEWCOMER"].user_id not in members
        # The owner's own invitation still works.
        assert (await accept(db, by_owner["code"], admin))["userErrors"] == []


@pytest.mark.parametrize(
    ("inviter_now", "role", "valid"),
    [
        ("EDITOR", "VIEWER", False),  # demoted: may no longer invite anyone
        ("VIEWER", "EDITOR", False),
        ("ADMIN", "OWNER", False),  # an owner's OWNER code, the owner now only an admin
        ("ADMIN", "ADMIN", True),
        (None, "VIEWER", False),  # the inviter's account was deleted
        ("OWNER", "OWNER", True),
    ],
)
async def test_a_code_is_only_as_good_as_its_inviter_s_right_when_accepted(
    db: Database, people: dict[str, Account], inviter_now: str | None, role: str, valid: bool
) -> None:
    owner = people["OWNER"]
    team = await crew_team(db, people)
    inviter = await account(db, name="Inviter")
    await join(db, team, inviter, role="OWNER", inviter=owner)
    code = (await invite(db, team, role, inviter))["code"]
    await _set_inviter(db, team, inviter, role=inviter_now)
    joined = await accept(db, code, people["NEWCOMER"])
    members = {m["user"]["id"]: m["role"] for m in (await roster(db, team, owner))["members"]}
    if valid:
        assert joined["userErrors"] == []
        assert members[people["NEWCOMER"].user_id] == role
    else:
        assert codes(joined) == [("INVALID_INVITATION", "code")]
        assert people["NEWCOMER"].user_id not in members


async def test_a_manager_removed_after_their_request_began_cannot_invite_or_remove(
    db: Database, people: dict[str, Account]
) -> None:
    """The roles an actor was loaded with may be stale: the write re-reads them under the
    team's lock, so a removal that committed first wins."""
    owner = people["OWNER"]
    team = await crew_team(db, people)
    admin = await account(db, name="Admin")
    await join(db, team, admin, role="ADMIN", inviter=owner)
    context = await build_context(Resources(db=db, media=MEDIA), admin.token)  # roles read now
    removed = await mutate(
        db,
        "removeTeamMember",
        {"teamId": team, "userId": admin.user_id},
        "team { id }",
        token=owner.token,
    )
    assert removed["userErrors"] == []
    late_invite = await schema.execute(
        "mutation($t: ID!) { inviteTeamMember(input: {teamId: $t, role: ADMIN}) "
        "{ code userErrors { code } } }",
        variable_values={"t": team},
        context_value=context,
    )
    assert late_invite.data == {
        "inviteTeamMember": {"code": None, "userErrors": [{"code": "NOT_FOUND"}]}
    }
    late_remove = await schema.execute(
        "mutation($t: ID!, $u: ID!) { removeTeamMember(input: {teamId: $t, userId: $u}) "
        "{ userErrors { code } } }",
        variable_values={"t": team, "u": people["VIEWER"].user_id},
        context_value=context,
    )
    assert late_remove.data == {"removeTeamMember": {"userErrors": [{"code": "NOT_FOUND"}]}}
    members = {m["user"]["id"] for m in (await roster(db, team, owner))["members"]}
    assert people["VIEWER"].user_id in members
    assert (await roster(db, team, owner))["invitations"] == []


async def test_a_team_has_a_bounded_number_of_pending_invitations(
    db: Database, people: dict[str, Account]
) -> None:
    team = await crew_team(db, people)
    owner = people["OWNER"]
    limited = Resources(db=db, media=MEDIA, accounts=AccountSettings(max_pending_invitations=2))
    query = (
        "mutation($input: InviteTeamMemberInput!) { inviteTeamMember(input: $input) "
        "{ invitation { id } userErrors { code field } } }"
    )
    variables = {"input": {"teamId": team, "role": "VIEWER"}}
    results = [await _execute(limited, query, variables, token=owner.token) for _ in range(3)]
    payloads = [r.data["inviteTeamMember"] for r in results if r.data is not None]
    assert [p["userErrors"] for p in payloads] == [
        [],
        [],
        [{"code": "TOO_MANY_INVITATIONS", "field": ["teamId"]}],
    ]
    assert (await revoke(db, payloads[0]["invitation"]["id"], owner))["userErrors"] == []
    again = await _execute(limited, query, variables, token=owner.token)
    assert again.data is not None
    assert again.data["inviteTeamMember"]["userErrors"] == []


async def test_no_operation_takes_someone_elses_email(
    db: Database, people: dict[str, Account]
) -> None:
    owner = people["OWNER"]
    team = (await mutate_ok(db, "createTeam", {"name": "T"}, "team { id }", token=owner.token))[
        "team"
    ]["id"]
    gone = await _execute(
        Resources(db=db, media=MEDIA),
        'mutation($team: ID!) { addTeamMember(input: { teamId: $team, email: "x@example.com" }) { userErrors { code } } }',
        {"team": team},
        token=owner.token,
    )
    assert gone.data is None
    assert gone.errors is not None
    assert "addTeamMember" in gone.errors[0].message
    mutation = schema._schema.mutation_type
    assert mutation is not None
    takes_email = sorted(
        name
        for name, field in mutation.fields.items()
        if "input" in field.args and "email" in field.args["input"].type.of_type.fields
    )
    # logIn and signUp take one's own address; shareAsset takes a teammate's only (any
    # other address is refused alike: tests/test_library_sharing.py).
    assert takes_email == ["logIn", "shareAsset", "signUp"]


async def test_owners_invite_owners_admins_do_not(db: Database, people: dict[str, Account]) -> None:
    team = await crew_team(db, people)
    assert codes(await invite(db, team, "OWNER", people["ADMIN"])) == [("FORBIDDEN", "role")]
    code = (await invite(db, team, "OWNER", people["OWNER"]))["code"]
    assert (await accept(db, code, people["NEWCOMER"]))["userErrors"] == []
    roles = {
        m["user"]["id"]: m["role"] for m in (await roster(db, team, people["OWNER"]))["members"]
    }
    assert roles[people["NEWCOMER"].user_id] == "OWNER"
    # The new owner manages the team at once; a personal team takes no one.
    assert await invitation_code(db, team, role="OWNER", inviter=people["NEWCOMER"])
    personal = await invite(db, people["OWNER"].team_id, "EDITOR", people["OWNER"])
    assert codes(personal) == [("PERSONAL_TEAM", "teamId")]


async def test_housekeeping_removes_expired_invitations_only(
    db: Database, people: dict[str, Account]
) -> None:
    team = await crew_team(db, people)
    owner = people["OWNER"]
    await _expired_code(db, team, owner)
    pending = await invite(db, team, "VIEWER", owner)

    tidied = await maintenance.tidy(db, event_retention=timedelta(days=7))

    assert tidied.invitations >= 1
    async with db.session() as session:
        left = list(
            await session.exec(
                select(TeamInvitationRow).where(
                    TeamInvitationRow.team_id == ids.decode(team, "Team")
                )
            )
        )
    assert [ids.encode("Invitation", row.id) for row in left] == [pending["invitation"]["id"]]
    assert (await accept(db, pending["code"], people["NEWCOMER"]))["userErrors"] == []


# -- over real HTTP ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioServer]:
    cwd = tmp_path_factory.mktemp("invitations")
    running = StudioServer(env=studio_env(), cwd=cwd, name="invitations")
    with running:
        yield running


@pytest.mark.e2e
async def test_inviting_and_joining_over_http(server: StudioServer) -> None:
    async with (
        Api(server.base_url) as owner,
        Api(server.base_url) as guest,
        Api(server.base_url) as late,
    ):
        await owner.sign_up("Owner")
        await guest.sign_up("Guest")
        await late.sign_up("Late")
        team_id = (await owner.mutate("createTeam", {"name": "Harbour crew"}, "team { id }"))[
            "team"
        ]["id"]
        project_id = await owner.create_project("Shared", team_id=team_id)
        made = await owner.mutate(
            "inviteTeamMember", {"teamId": team_id, "role": "VIEWER"}, "invitation { id } code"
        )

        read = "query($id: ID!) { project(id: $id) { id title } }"
        assert (await guest.data(read, {"id": project_id}))["project"] is None
        joined = await guest.mutate(
            "acceptInvitation", {"code": made["code"]}, "team { id name viewerRole }"
        )
        assert joined["team"] == {"id": team_id, "name": "Harbour crew", "viewerRole": "VIEWER"}
        assert (await guest.data(read, {"id": project_id}))["project"] == {
            "id": project_id,
            "title": "Shared",
        }

        # The same code, a second time, by someone else: refused, and it says nothing of the team.
        query = "mutation($input: AcceptInvitationInput!) { acceptInvitation(input: $input) { team { id } userErrors { code field message } } }"
        again = (await late.data(query, {"input": {"code": made["code"]}}))["acceptInvitation"]
        assert again["team"] is None
        assert [(e["code"], e["field"]) for e in again["userErrors"]] == [
            ("INVALID_INVITATION", ["code"])
        ]
        assert "Harbour" not in again["userErrors"][0]["message"]
        assert (await late.data(read, {"id": project_id}))["project"] is None
