"""Plain factory functions and a GraphQL runner for tests: everything goes through real code."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, insert, update
from sqlmodel import col
from strawberry.types import ExecutionResult

from api.graphql import build_context
from api.schema import schema
from schema import ids
from schema.context import Resources
from services.accounts.accounts import AccountSettings
from services.accounts.passwords import Passwords
from services.database import Database
from services.library.tables import AssetRow
from services.media.storage import MediaLinks
from services.tables import (
    ProjectEventCounterRow,
    ProjectEventRow,
    ShotImageRow,
    StoryboardSelectionRow,
    utcnow,
)

_counter = itertools.count(1)
PASSWORD = "correct horse battery"


MEDIA = MediaLinks("media links secret for the test suite, not a real one", "http://testserver")


# Real Argon2id at OWASP's minimum (19 MiB, t=2, p=1) rather than the production default
# (64 MiB, t=3, p=4), so that the many accounts the suite makes cost less;
# tests/test_passwords.py checks the defaults.
ACCOUNTS = AccountSettings(passwords=Passwords(memory_kib=19 * 1024, iterations=2, lanes=1))


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """The SQL text of every statement sent on `db`'s engine inside the block, in order
    (for tests that count what a request costs). A fresh engine's first connection
    also asks about the server: open one before the block to leave that out."""
    sent: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", note)


def resources(db: Database) -> Resources:
    """What a server would hand the schema, for a database (without generation)."""
    return Resources(db=db, media=MEDIA, accounts=ACCOUNTS)


async def execute(
    db: Database, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
) -> ExecutionResult:
    context = await build_context(resources(db), token)
    return await schema.execute(query, variable_values=variables, context_value=context)


async def gql(
    db: Database, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
) -> dict[str, Any]:
    """Run an operation that must succeed without top-level errors; return its data."""
    result = await execute(db, query, variables, token=token)
    assert result.errors is None, [e.formatted for e in result.errors]
    assert result.data is not None
    return result.data


# What each mutation returns besides userErrors; all of it must be null on failure.
PAYLOAD_FIELDS = {
    "signUp": "token user { id }",
    "logIn": "token user { id }",
    "createTeam": "team { id }",
    "inviteTeamMember": "invitation { id } code",
    "acceptInvitation": "team { id }",
    "revokeInvitation": "deletedId",
    "removeTeamMember": "team { id }",
    "createProject": "project { id }",
    "updateProject": "project { id }",
    "deleteProject": "deletedId",
    "createScene": "scene { id }",
    "updateScene": "scene { id }",
    "deleteScene": "deletedId",
    "reorderScenes": "project { id }",
    "createShot": "shot { id }",
    "updateShot": "shot { id }",
    "deleteShot": "deletedId",
    "reorderShots": "scene { id }",
    "addShotImages": "iteration { iterationNumber } images { id }",
    "setImageFavorite": "image { id }",
    "deleteShotImage": "deletedId",
    "selectMasterShot": "selection { id }",
}


def input_type(name: str) -> str:
    """The named input type of a mutation's `input` argument, from the schema."""
    mutation = schema._schema.mutation_type
    assert mutation is not None
    return str(mutation.fields[name].args["input"].type).rstrip("!")


async def mutate(
    db: Database, name: str, input: dict[str, Any], selection: str, *, token: str | None
) -> dict[str, Any]:
    """Run `name(input:)` and return its payload (with userErrors selected)."""
    query = (
        f"mutation($input: {input_type(name)}!) {{ {name}(input: $input) "
        f"{{ {selection} userErrors {{ code field message }} }} }}"
    )
    data = await gql(db, query, {"input": input}, token=token)
    payload: dict[str, Any] = data[name]
    return payload


async def mutate_ok(
    db: Database, name: str, input: dict[str, Any], selection: str, *, token: str | None
) -> dict[str, Any]:
    payload = await mutate(db, name, input, selection, token=token)
    assert payload["userErrors"] == [], payload["userErrors"]
    return payload


@dataclass
class Account:
    token: str
    user_id: str
    team_id: str
    email: str


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{next(_counter)}-{secrets.token_hex(3)}@example.com"


async def account(db: Database, *, name: str = "Ann") -> Account:
    email = unique_email(name.lower())
    payload = await mutate_ok(
        db,
        "signUp",
        {"email": email, "password": PASSWORD, "name": name},
        "token user { id teams { id } }",
        token=None,
    )
    return Account(
        token=payload["token"],
        user_id=payload["user"]["id"],
        team_id=payload["user"]["teams"][0]["id"],
        email=email,
    )


async def team_with(
    db: Database, owner: Account, members: dict[str, Account], *, name: str = "Crew"
) -> str:
    """A team owned by `owner`, with each member at the role given as key prefix (ROLE or ROLE:x)."""
    team = await mutate_ok(db, "createTeam", {"name": name}, "team { id }", token=owner.token)
    team_id: str = team["team"]["id"]
    for role, member in members.items():
        await join(db, team_id, member, role=role.split(":")[0], inviter=owner)
    return team_id


async def invitation_code(db: Database, team_id: str, *, role: str, inviter: Account) -> str:
    """A new invitation's code, made by `inviter` (who must manage the team)."""
    payload = await mutate_ok(
        db, "inviteTeamMember", {"teamId": team_id, "role": role}, "code", token=inviter.token
    )
    code: str = payload["code"]
    return code


async def join(db: Database, team_id: str, member: Account, *, role: str, inviter: Account) -> None:
    """`member` joins the team at `role`: `inviter` invites, `member` accepts the code."""
    code = await invitation_code(db, team_id, role=role, inviter=inviter)
    await mutate_ok(db, "acceptInvitation", {"code": code}, "team { id }", token=member.token)


async def project(
    db: Database, owner: Account, *, title: str = "Night Market", team_id: str | None = None
) -> str:
    payload = await mutate_ok(
        db,
        "createProject",
        {"title": title, "teamId": team_id, "prompt": "A rainy night market"},
        "project { id }",
        token=owner.token,
    )
    project_id: str = payload["project"]["id"]
    return project_id


async def backlog(db: Database, project_id: str, count: int) -> int:
    """`count` more PROJECT_UPDATED events of the project (its encoded ID), written
    straight to `project_events` with its counter moved on, in one transaction:
    a replay of thousands in a second. The project's last sequence number after it."""
    pk = ids.decode(project_id, "Project")
    async with db.transaction() as session:
        counter = await session.get(ProjectEventCounterRow, pk, with_for_update=True)
        assert counter is not None, "the project has recorded no event yet"
        first = counter.last_sequence + 1
        at = utcnow()
        await session.exec(
            insert(ProjectEventRow),
            params=[
                {
                    "project_id": pk,
                    "sequence": sequence,
                    "kind": "PROJECT_UPDATED",
                    "node_type": "Project",
                    "node_id": pk,
                    "changes": ["title"],
                    "at": at,
                }
                for sequence in range(first, first + count)
            ],
        )
        counter.last_sequence = first + count - 1
        session.add(counter)
        last: int = counter.last_sequence
    return last


async def scene(
    db: Database,
    owner: Account,
    project_id: str,
    *,
    title: str = "Arrival",
    shots: int | list[dict[str, Any]] = 0,
    **extra: Any,
) -> dict[str, Any]:
    """A scene with `shots` numbered drafts (or exactly the drafts given)."""
    drafts = (
        shots
        if isinstance(shots, list)
        else [
            {"description": f"Shot {n}", "initialPrompt": f"prompt {n}"}
            for n in range(1, shots + 1)
        ]
    )
    payload = await mutate_ok(
        db,
        "createScene",
        {
            "projectId": project_id,
            "title": title,
            "shots": drafts,
            **extra,
        },
        "scene { id sceneNumber shots { id shotNumber } }",
        token=owner.token,
    )
    result: dict[str, Any] = payload["scene"]
    return result


def image_drafts(count: int = 6, *, status: str = "COMPLETE") -> list[dict[str, Any]]:
    return [
        {
            "variantNumber": n,
            "status": status,
            "imageUrl": f"https://images.example.com/{secrets.token_hex(4)}-{n}.png",
            "metadata": {"seed": 1000 + n, "model": "black-forest-labs/flux-schnell"},
        }
        for n in range(count)
    ]


async def iteration(
    db: Database,
    owner: Account,
    shot_id: str,
    *,
    count: int = 6,
    parent_image_id: str | None = None,
    prompt: str = "neon reflections",
) -> dict[str, Any]:
    return await mutate_ok(
        db,
        "addShotImages",
        {
            "shotId": shot_id,
            "iterationPrompt": prompt,
            "parentImageId": parent_image_id,
            "images": image_drafts(count),
        },
        "iteration { iterationNumber prompt status parentImage { id } } images { id variantNumber status }",
        token=owner.token,
    )


async def settle_generations(db: Database) -> None:
    """Leave no generation or copy for the next engine on this shared database.

    Running generations are CANCELED; imports still waiting for their copy get an
    error, so no later engine picks them up.
    """
    async with db.transaction() as session:
        await session.exec(
            update(ShotImageRow)
            .where(col(ShotImageRow.status).in_(["PENDING", "PROCESSING"]))
            .values(status="CANCELED")
        )
        await session.exec(
            update(StoryboardSelectionRow)
            .where(col(StoryboardSelectionRow.animation_status).in_(["PENDING", "PROCESSING"]))
            .values(animation_status="CANCELED")
        )
        await session.exec(
            update(ShotImageRow)
            .where(
                col(ShotImageRow.imported),
                col(ShotImageRow.storage_key).is_(None),
                col(ShotImageRow.error).is_(None),
            )
            .values(error="left over by another test")
        )


async def library_asset(
    db: Database, creator: Account, *, team_id: str | None = None, **fields: Any
) -> str:
    """A library asset of `creator` in `team_id` (default: their personal team), as stored
    rows are (an IMAGE, READY, TEAM level, named "Asset <n>" unless `fields` say otherwise);
    its global ID. Goes through one write transaction, so it is recorded like any write.

    For set-up only: how a generation or an import makes an asset is tested through the API.
    """
    values: dict[str, Any] = {
        "kind": "IMAGE",
        "name": f"Asset {next(_counter)}",
        "status": "READY",
        "share_level": "TEAM",
        "tags": [],
        **fields,
    }
    values["team_id"] = ids.decode(team_id or creator.team_id, "Team")
    values["creator_id"] = ids.decode(creator.user_id, "User")
    async with db.transaction() as session:
        row = AssetRow(**values)
        session.add(row)
        await session.flush()
        asset_id = row.id
    return ids.encode("Asset", asset_id)
