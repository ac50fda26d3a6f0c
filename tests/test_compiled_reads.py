"""Compiled reads (`schema.compiled`) give exactly what field-by-field resolution gives.

Every query here runs twice through the real schema on the same database: once as
served (the `project` field's selection compiled into one SQL statement) and once
with `Resources(compiled_reads=False)`, which resolves every field one by one. The
two responses must be the same JSON text, key order included, errors included.
The selections are generated (hypothesis) over the compilable catalogue, against a
project holding every shape the tree can take; the rest checks access, the
fallback for what is not compiled, the statement count, the plan cache and errors.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import text, update
from sqlmodel import col
from strawberry.types import ExecutionResult

import migrations
from api.graphql import build_context
from api.schema import schema
from schema import ids
from schema.compiled.plan import COMPILABLE
from schema.context import Resources
from services.database import Database
from services.media.storage import MediaLinks
from services.tables import ProjectRow, SceneRow, ShotImageRow, ShotRow, StoryboardSelectionRow
from tests import factories
from tests.factories import ACCOUNTS, Account, account, gql, join, mutate_ok, team_with

# A bucket of 10^9 seconds rounds every link's expiry up to the same instant (until
# 2033), so the two runs of a query sign each stored file with the same URL.
LINKS = MediaLinks("links secret for the compiled read tests", "http://testserver", bucket=10**9)

TITLE = "Night \"Market\" \u2014 O'Brien's \\ cut \U0001f3ac\nsecond line"
# Text that looks like JSON must stay a string (SQLite keeps no JSON subtype on columns).
PLANNER = '{"scenes": [1, 2], "ok": true}'


def served(db: Database) -> Resources:
    """The resources a server hands the schema: compiled reads on."""
    return Resources(db=db, media=LINKS, accounts=ACCOUNTS)


def resolved(db: Database) -> Resources:
    """The same, with every field resolved one by one."""
    return replace(served(db), compiled_reads=False)


async def run(
    resources: Resources, query: str, variables: dict[str, Any] | None, token: str | None
) -> ExecutionResult:
    context = await build_context(resources, token)
    return await schema.execute(query, variable_values=variables, context_value=context)


def response(result: ExecutionResult) -> str:
    """The response as a client receives it, as JSON text: `data` exactly, keys in the
    executor's order. Errors are compared by message and code, each once, sorted: where
    several fields fail, which of them is reported (and at which list index) depends on
    which resolver finishes first, on either path. An error is only ever raised by
    field-by-field execution (what a compiled read cannot answer it leaves to it)."""
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        errors = {(error.message, (error.extensions or {}).get("code")) for error in result.errors}
        body["errors"] = [
            {"message": message, "code": code}
            for message, code in sorted(errors, key=lambda pair: (pair[0], str(pair[1])))
        ]
    return json.dumps(body, ensure_ascii=False)


async def both(
    db: Database, query: str, variables: dict[str, Any] | None, token: str | None
) -> tuple[str, str]:
    """(compiled response, field-by-field response) of one operation."""
    compiled = await run(served(db), query, variables, token)
    by_field = await run(resolved(db), query, variables, token)
    return response(compiled), response(by_field)


async def assert_same(
    db: Database, query: str, variables: dict[str, Any] | None, token: str | None
) -> dict[str, Any]:
    compiled, by_field = await both(db, query, variables, token)
    assert compiled == by_field
    body: dict[str, Any] = json.loads(compiled)
    return body


@pytest.fixture
async def reader(db: Database) -> AsyncIterator[Database]:
    """The database on an engine of its own, for counting statements: the shared `db`
    may be running other tests' background work."""
    engine = Database(db.url.render_as_string(hide_password=False))
    try:
        # Once uncounted: a new engine's first connection asks the server about itself.
        async with engine.session() as session:
            await session.connection()
        yield engine
    finally:
        await engine.dispose()


async def _counted(
    reader: Database, resources: Resources, query: str, variables: dict[str, Any], token: str
) -> tuple[int, str]:
    """(statements sent while executing, response) of one operation on `reader`."""
    context = await build_context(replace(resources, db=reader), token)
    with factories.statements(reader) as sent:
        result = await schema.execute(query, variables, context_value=context)
    return len(sent), response(result)


# --- the data set -------------------------------------------------------------------------------


@dataclass
class World:
    owner: Account
    stranger: Account
    rich: str  # every shape the tree can take
    empty: str  # no scenes
    foreign: str  # the stranger's: null for the owner
    deleted: str
    projects: dict[str, str] = field(default_factory=dict)


async def _set_images(db: Database, image_ids: list[str], **values: Any) -> None:
    pks = [ids.decode(image_id, "ShotImage") for image_id in image_ids]
    async with db.transaction() as session:
        await session.exec(
            update(ShotImageRow).where(col(ShotImageRow.id).in_(pks)).values(**values)
        )


async def _import(
    db: Database,
    owner: Account,
    shot_id: str,
    variants: list[int],
    *,
    prompt: str,
    parent: str | None = None,
) -> dict[int, str]:
    """An iteration of COMPLETE imports, recorded in the order given: {variant: image ID}."""
    payload = await mutate_ok(
        db,
        "addShotImages",
        {
            "shotId": shot_id,
            "iterationPrompt": prompt,
            "parentImageId": parent,
            "images": [
                {
                    "variantNumber": n,
                    "status": "COMPLETE",
                    "imageUrl": f"https://images.example.com/{n}.png?a=1&b='x'",
                    "metadata": {"seed": n},
                }
                for n in variants
            ],
        },
        "images { id variantNumber }",
        token=owner.token,
    )
    return {image["variantNumber"]: image["id"] for image in payload["images"]}


async def _project(db: Database, owner: Account, **input: Any) -> str:
    payload = await mutate_ok(db, "createProject", input, "project { id }", token=owner.token)
    project_id: str = payload["project"]["id"]
    return project_id


async def _scene(db: Database, owner: Account, project_id: str, **input: Any) -> dict[str, Any]:
    payload = await mutate_ok(
        db,
        "createScene",
        {"projectId": project_id, **input},
        "scene { id shots { id } }",
        token=owner.token,
    )
    scene: dict[str, Any] = payload["scene"]
    return scene


async def _select(db: Database, owner: Account, shot_id: str, image_id: str) -> None:
    await mutate_ok(
        db,
        "selectMasterShot",
        {"shotId": shot_id, "imageId": image_id},
        "selection { id }",
        token=owner.token,
    )


async def build_rich(db: Database, owner: Account) -> str:
    """A project with scenes and shots out of id order, a scene without shots, shots
    without images, iterations of every status, favourites, a refinement, masters
    (one animated), stored and recorded images, NULLs, quotes, emoji and newlines."""
    rich = await _project(
        db,
        owner,
        title=TITLE,
        prompt=None,
        promptPlannerData=PLANNER,
        workflowVersion="V1_LEGACY",
    )
    arrival = await _scene(
        db,
        owner,
        rich,
        title="Arrival \U0001f303",
        description=None,
        shots=[
            {"description": 'Wide, "quoted" \\ shot \U0001f303', "initialPrompt": None},
            {"description": None, "initialPrompt": "it's raining\non two lines"},
            {"description": "", "initialPrompt": ""},
        ],
    )
    empty_scene = await _scene(db, owner, rich, title="No shots ' \" \\", description="")
    third = await _scene(
        db,
        owner,
        rich,
        title="Third",
        # Control characters, separators, a BOM, and a backslash-u that is only text.
        description="line one\nline two\ttab \x01\x1f\x7f \u2028\u2029\ufeff \\u00e9 \\",
        shots=[{"description": "c1"}, {"description": "c2"}],
    )
    # Numbers no longer follow ids: scenes reversed, and the first scene's shots too.
    await mutate_ok(
        db,
        "reorderScenes",
        {"parentId": rich, "ids": [third["id"], empty_scene["id"], arrival["id"]]},
        "project { id }",
        token=owner.token,
    )
    a1, a2, _a3 = (shot["id"] for shot in arrival["shots"])
    await mutate_ok(
        db,
        "reorderShots",
        {"parentId": arrival["id"], "ids": [a2, _a3, a1]},
        "scene { id }",
        token=owner.token,
    )

    # a1: a first batch recorded variants last to first, every status in it; stored files
    # on two; two favourites; a refinement of one of them; the master, animated.
    first = await _import(db, owner, a1, [5, 4, 3, 2, 1, 0], prompt='neon "glow" \U0001f308')
    await _set_images(db, [first[0], first[2]], storage_key="shots/a1/one file.png")
    await _set_images(db, [first[1]], status="PENDING", model="black-forest-labs/flux-schnell")
    await _set_images(db, [first[2]], status="PROCESSING", prediction_id="p-2\u00e9")
    await _set_images(db, [first[3]], status="FAILED", image_url=None, error='It "broke" \\')
    await _set_images(db, [first[4]], status="CANCELED", image_url=None)
    for favourite in (first[0], first[5]):
        await mutate_ok(
            db,
            "setImageFavorite",
            {"imageId": favourite, "isFavorite": True},
            "image { id }",
            token=owner.token,
        )
    await _select(db, owner, a1, first[0])
    await _import(db, owner, a1, [1, 0], prompt="refined", parent=first[0])
    async with db.transaction() as session:
        await session.exec(
            update(StoryboardSelectionRow)
            .where(col(StoryboardSelectionRow.shot_id) == ids.decode(a1, "Shot"))
            .values(animation_status="COMPLETE", video_storage_key="clips/a1.mp4")
        )

    # a2: batches all PENDING, FAILED and CANCELED, all CANCELED, PENDING with FAILED
    # (PROCESSING), and one whose variants disagree on prompt and parent (the first wins).
    pending = await _import(db, owner, a2, [0, 1], prompt="pending")
    await _set_images(db, list(pending.values()), status="PENDING", image_url=None)
    ended = await _import(db, owner, a2, [0, 1, 2], prompt="ended")
    await _set_images(db, [ended[0], ended[2]], status="FAILED", image_url=None)
    await _set_images(db, [ended[1]], status="CANCELED", image_url=None)
    canceled = await _import(db, owner, a2, [0], prompt="canceled")
    await _set_images(db, list(canceled.values()), status="CANCELED")
    mixed = await _import(db, owner, a2, [0, 1], prompt="mixed")
    await _set_images(db, [mixed[0]], status="PENDING")
    await _set_images(db, [mixed[1]], status="FAILED")
    disagree = await _import(db, owner, a2, [2, 1, 0], prompt="first variant's", parent=canceled[0])
    await _set_images(db, [disagree[1], disagree[2]], iteration_prompt="another prompt")
    await _set_images(db, [disagree[2]], parent_image_id=ids.decode(ended[1], "ShotImage"))
    await _set_images(db, [disagree[1]], parent_image_id=None)

    # Third scene: a master that is not animated, and a shot with images but no master.
    c1, c2 = (shot["id"] for shot in third["shots"])
    c1_images = await _import(db, owner, c1, [0, 1, 2], prompt="c1")
    await _select(db, owner, c1, c1_images[2])
    await _import(db, owner, c2, [0], prompt="c2 \u00e9\u00e8 \u4e2d\u6587")
    return rich


@pytest.fixture(scope="module")
async def world(db: Database) -> World:
    owner = await account(db, name="Zo\u00eb")
    stranger = await account(db, name="Stranger")
    rich = await build_rich(db, owner)
    empty = await _project(db, owner, title="Empty", prompt="only a prompt")
    foreign = await _project(db, stranger, title="Theirs")
    await _scene(db, stranger, foreign, title="Their scene", shots=[{"description": "x"}])
    deleted = await _project(db, owner, title="Gone")
    await _scene(db, owner, deleted, title="Gone too", shots=[{"description": "y"}])
    await mutate_ok(db, "deleteProject", {"id": deleted}, "deletedId", token=owner.token)
    return World(owner, stranger, rich, empty, foreign, deleted)


# --- the whole catalogue, by hand ---------------------------------------------------------------

IMAGE = "id iterationNumber variantNumber status iterationPrompt isFavorite predictionId model error imageUrl __typename"
EVERYTHING = f"""
query($id: ID!) {{ project(id: $id) {{
  __typename id title prompt promptPlannerData workflowVersion status
  progress {{ __typename totalScenes totalShots shotsWithSelections shotsWithAnimations
             selectionProgress animationProgress isSelectionComplete isAnimationComplete }}
  scenes {{ __typename id sceneNumber title description
    shots {{ __typename id shotNumber description initialPrompt latestIterationNumber
      selectedImage {{ {IMAGE} }}
      iterations {{ __typename iterationNumber prompt status
        images {{ {IMAGE} }} parentImage {{ {IMAGE} }} }} }} }} }} }}
"""


async def test_the_whole_catalogue_reads_the_same(db: Database, world: World) -> None:
    for project_id in (world.rich, world.empty, world.foreign, world.deleted):
        body = await assert_same(db, EVERYTHING, {"id": project_id}, world.owner.token)
        assert "errors" not in body
    rich = (await assert_same(db, EVERYTHING, {"id": world.rich}, world.owner.token))["data"]
    project = rich["project"]
    assert project["title"] == TITLE
    assert project["promptPlannerData"] == PLANNER
    assert project["prompt"] is None
    assert project["progress"]["selectionProgress"] == 40.0
    master = project["scenes"][2]["shots"][2]["selectedImage"]
    assert master["imageUrl"] == LINKS.url_for("shots/a1/one file.png")
    assert master["isFavorite"] is True


# --- generated selections -----------------------------------------------------------------------

NODE_TYPES = frozenset(name for name, fields in COMPILABLE.items() if "id" in fields)
VARIABLES = ("v0", "v1", "v2")
MAX_ITEMS = 36  # selections in one document: well under the depth, alias and token limits
MAX_ALIASES = 20  # the schema refuses more than 30


@dataclass(frozen=True)
class Case:
    """One generated operation: its text, its variables, and which project it reads
    (a key of `World`'s projects: rich, empty, foreign, deleted)."""

    query: str
    variables: dict[str, Any]
    target: str = "rich"


@dataclass
class _Doc:
    """What a document being drawn has collected so far."""

    declarations: dict[str, str]  # variable -> its type, with a default or not
    values: dict[str, Any]  # the values sent (a variable with a default may be left out)
    used: set[str] = field(default_factory=set)
    fragments: list[tuple[str, str, str]] = field(default_factory=list)  # name, type, body
    items: int = 0
    aliases: int = 0


@st.composite
def _directive(draw: st.DrawFn, doc: _Doc) -> str:
    if draw(st.integers(0, 9)) < 6:
        return ""
    name = draw(st.sampled_from(["skip", "include"]))
    if draw(st.booleans()):
        return f" @{name}(if: {draw(st.sampled_from(['true', 'false']))})"
    variable = draw(st.sampled_from(VARIABLES))
    doc.used.add(variable)
    return f" @{name}(if: ${variable})"


@st.composite
def _key(draw: st.DrawFn, doc: _Doc, name: str) -> str:
    """`name`, or an alias of it: several aliases of one field, and the same alias
    more than once (merged), both happen."""
    if doc.aliases >= MAX_ALIASES or draw(st.integers(0, 3)) > 0:
        return name
    doc.aliases += 1
    return f"{name.strip('_')}{draw(st.integers(0, 1))}: {name}"


@st.composite
def _selection_set(draw: st.DrawFn, doc: _Doc, type_name: str, depth: int, nesting: int) -> str:
    count = draw(st.integers(1, max(1, 4 - depth)))
    items = [draw(_selection(doc, type_name, depth, nesting)) for _ in range(count)]
    return "{ " + " ".join(items) + " }"


@st.composite
def _selection(draw: st.DrawFn, doc: _Doc, type_name: str, depth: int, nesting: int) -> str:
    doc.items += 1
    fields = COMPILABLE[type_name]
    leaves = sorted(name for name, child in fields.items() if child is None)
    objects = sorted(name for name, child in fields.items() if child is not None)
    full = doc.items >= MAX_ITEMS
    kinds = ["leaf", "typename"] if full else ["leaf"] * 3 + ["object"] * 3
    if not full:
        kinds += ["typename", "inline", "fragment"] if nesting < 2 else ["typename"]
    kind = draw(st.sampled_from(kinds))
    if kind == "typename":
        return draw(_key(doc, "__typename")) + draw(_directive(doc))
    if kind == "leaf" or (kind == "object" and not objects):
        name = draw(st.sampled_from(leaves))
        return draw(_key(doc, name)) + draw(_directive(doc))
    if kind == "object":
        name = draw(st.sampled_from(objects))
        child = fields[name]
        assert child is not None
        head = draw(_key(doc, name)) + draw(_directive(doc))
        return f"{head} " + draw(_selection_set(doc, child, depth + 1, nesting))
    conditions = [type_name] + (["Node"] if type_name in NODE_TYPES else [])
    if kind == "inline":
        condition = draw(st.sampled_from([None, *conditions]))
        body = draw(_body(doc, type_name, condition, depth, nesting))
        on = f" on {condition}" if condition else ""
        return f"...{on}{draw(_directive(doc))} {body}"
    reusable = [name for name, on, _ in doc.fragments if on in conditions]
    reuse: bool = draw(st.booleans())
    if reusable and reuse:
        name = draw(st.sampled_from(reusable))
    else:
        condition = draw(st.sampled_from(conditions))
        body = draw(_body(doc, type_name, condition, depth, nesting))
        name = f"F{len(doc.fragments)}"
        doc.fragments.append((name, condition, body))
    return f"...{name}{draw(_directive(doc))}"


@st.composite
def _body(
    draw: st.DrawFn, doc: _Doc, type_name: str, condition: str | None, depth: int, nesting: int
) -> str:
    if condition == "Node":  # only the interface's own fields
        keys = draw(st.lists(st.sampled_from(["id", "__typename"]), min_size=1, max_size=3))
        return "{ " + " ".join(draw(_key(doc, k)) + draw(_directive(doc)) for k in keys) + " }"
    return draw(_selection_set(doc, type_name, depth, nesting + 1))


# How a directive's variable is declared, and what is sent for it: a required Boolean,
# or one with a default that is sent, left out, or sent as null (then graphql-core
# refuses it where the directive reads it).
_VARIABLE_FORMS = st.sampled_from(
    [
        ("Boolean!", True),
        ("Boolean!", False),
        ("Boolean = true", False),
        ("Boolean = false", True),
        ("Boolean = true", ...),
        ("Boolean = false", ...),
        ("Boolean = true", None),
    ]
)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """A random operation reading one project over the compilable catalogue."""
    declarations: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name in VARIABLES:
        declared, value = draw(_VARIABLE_FORMS)
        declarations[name] = declared
        if value is not ...:
            values[name] = value
    doc = _Doc(declarations, values)
    roots = []
    for _ in range(draw(st.integers(1, 2))):
        key = draw(st.sampled_from(["project", "project", "p: project", "q: project"]))
        root = f"{key}(id: $id) " + draw(_selection_set(doc, "Project", 0, 0))
        # The field itself may sit in a fragment on Query, inline or named.
        wrap = draw(st.sampled_from(["", "", "", "inline", "named"]))
        if wrap == "inline":
            root = f"... on Query {{ {root} }}"
        elif wrap == "named":
            name = f"R{len(doc.fragments)}"
            doc.fragments.append((name, "Query", f"{{ {root} }}"))
            root = f"...{name}"
        roots.append(root)
    header = ", ".join(["$id: ID!"] + [f"${v}: {doc.declarations[v]}" for v in sorted(doc.used)])
    fragments = "".join(f"\nfragment {n} on {on} {body}" for n, on, body in doc.fragments)
    query = f"query Q({header}) {{ {' '.join(roots)} }}{fragments}"
    variables = {v: doc.values[v] for v in sorted(doc.used) if v in doc.values}
    target = draw(st.sampled_from(["rich"] * 6 + ["empty", "foreign", "deleted"]))
    return Case(query, variables, target)


def _target(world: World, case: Case) -> str:
    project_id: str = getattr(world, case.target)
    return project_id


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
# A nullable variable with a default, sent as null, in @skip: graphql-core refuses it
# (the compiled read once took null for false and answered data).
@example(
    Case(
        "query Q($id: ID!, $v0: Boolean = true) { project(id: $id) { id @skip(if: $v0) } }",
        {"v0": None},
    )
)
@example(
    Case(
        "query Q($id: ID!, $v: Boolean = false) { project(id: $id) { ...F } }\n"
        "fragment F on Project { title @include(if: true) scenes @include(if: $v) { id } }",
        {"v": None},
    )
)
# graphql-core reads a spread's directives even when its fragment was spread already.
@example(
    Case(
        "query Q($id: ID!, $v: Boolean = true) { project(id: $id) { ...F ...F @include(if: $v) } }"
        "\nfragment F on Project { title }",
        {"v": None},
    )
)
# Objects left with no keys: every field of them skipped.
@example(
    Case(
        "query Q($id: ID!) { project(id: $id) { scenes { shots { selectedImage { id @skip(if: true) }"
        " iterations { parentImage { __typename @include(if: false) } } } }"
        " progress { totalShots @skip(if: true) } } }",
        {},
    )
)
@example(Case("query Q($id: ID!) { project(id: $id) { title @skip(if: true) } }", {}))
async def test_generated_selections_read_the_same(db: Database, world: World, case: Case) -> None:
    variables = {"id": _target(world, case), **case.variables}
    context = await build_context(served(db), world.owner.token)
    with factories.statements(db) as sent:
        compiled = await schema.execute(case.query, variables, context_value=context)
    by_field = await run(resolved(db), case.query, variables, world.owner.token)
    assert response(compiled) == response(by_field), case.query
    if compiled.errors is None and case.target == "rich":
        # It really was compiled: one statement per project field, nothing per object.
        assert len(sent) <= case.query.count("project(id:"), sent


# Thirty aliases (the schema's limit) in one object besides every field of it: 41 keys,
# 82 arguments of json_build_object (PostgreSQL takes at most 100).
WIDE_IMAGE = " ".join(f"a{n}: {name}" for n, name in enumerate(IMAGE.split() * 3) if n < 30)
WIDE = f"""
query($id: ID!) {{ project(id: $id) {{ scenes {{ shots {{ iterations {{
  images {{ {IMAGE} {WIDE_IMAGE} }} }} }} }} }} }}
"""


async def test_thirty_aliases_in_one_object_read_the_same(
    db: Database, reader: Database, world: World
) -> None:
    variables = {"id": world.rich}
    count, compiled = await _counted(reader, served(db), WIDE, variables, world.owner.token)
    assert compiled == response(await run(resolved(db), WIDE, variables, world.owner.token))
    assert count == 1
    images = json.loads(compiled)["data"]["project"]["scenes"][2]["shots"][2]["iterations"][0]
    assert len(images["images"][0]) == 41


# --- access ---------------------------------------------------------------------------------------


async def test_another_teams_or_a_deleted_project_is_null_on_both_paths(
    db: Database, world: World
) -> None:
    for project_id in (world.foreign, world.deleted):
        body = await assert_same(db, EVERYTHING, {"id": project_id}, world.owner.token)
        assert body == {"data": {"project": None}}
    # The stranger sees their own project, and not the owner's.
    theirs = await assert_same(db, EVERYTHING, {"id": world.foreign}, world.stranger.token)
    assert theirs["data"]["project"]["title"] == "Theirs"
    body = await assert_same(db, EVERYTHING, {"id": world.rich}, world.stranger.token)
    assert body == {"data": {"project": None}}
    # Two project fields in one operation, one of them not the reader's.
    query = "query($a: ID!, $b: ID!) { a: project(id: $a) { title } b: project(id: $b) { title } }"
    body = await assert_same(db, query, {"a": world.rich, "b": world.foreign}, world.owner.token)
    assert body == {"data": {"a": {"title": TITLE}, "b": None}}


async def test_a_removed_member_or_a_revoked_token_reads_nothing_at_once(
    db: Database, world: World
) -> None:
    member = await account(db, name="Member")
    team = await team_with(db, world.owner, {"VIEWER": member}, name="Readers")
    project_id = await _project(db, world.owner, title="The team's", teamId=team)
    await _scene(db, world.owner, project_id, title="S", shots=[{"description": "d"}])
    query = "query($id: ID!) { project(id: $id) { title scenes { shots { description } } } }"

    seen = await assert_same(db, query, {"id": project_id}, member.token)
    assert seen["data"]["project"]["scenes"][0]["shots"] == [{"description": "d"}]
    await mutate_ok(
        db,
        "removeTeamMember",
        {"teamId": team, "userId": member.user_id},
        "team { id }",
        token=world.owner.token,
    )
    gone = await assert_same(db, query, {"id": project_id}, member.token)
    assert gone == {"data": {"project": None}}

    # Back in the team, then signed out: the token reads nothing.
    await join(db, team, member, role="EDITOR", inviter=world.owner)
    assert (await assert_same(db, query, {"id": project_id}, member.token))["data"]["project"]
    out = await gql(db, "mutation { logOut { success } }", token=member.token)
    assert out == {"logOut": {"success": True}}
    refused = await assert_same(db, query, {"id": project_id}, member.token)
    assert refused["data"] is None
    assert [e["code"] for e in refused["errors"]] == ["TOKEN_INVALID"]
    anonymous = await assert_same(db, query, {"id": project_id}, None)
    assert [e["code"] for e in anonymous["errors"]] == ["UNAUTHENTICATED"]


# --- what is compiled, and what falls back --------------------------------------------------------

# Selections holding something the compiler does not build, each beside compilable
# fields, so a fallback is seen in the statement count as well as in the data.
NOT_COMPILED = {
    "a field of a team": "team { viewerRole } title scenes { id }",
    "an object field": "scenes { project { id } }",
    "an argument": "scenes { shots { images(iterationNumber: 0) { id imageUrl } } }",
    "favourites": "scenes { shots { images(favoritesOnly: true) { id isFavorite } } }",
    "an image's shot": "scenes { shots { selectedImage { shot { id } imageUrl } } }",
    "metadata": "scenes { shots { iterations { images { metadata status } } } }",
    "the storyboard": "storyboard { id selectedImage { id } } progress { totalShots }",
    "a scene's completeness": "scenes { storyboardComplete shots { id } }",
    "a shot's selection": "scenes { shots { storyboardSelection { id } } }",
    "a fragment's field": "...F scenes { id }",
    "a shot's scene": "scenes { shots { scene { id } } }",
}


@pytest.mark.parametrize("what", sorted(NOT_COMPILED))
async def test_a_selection_it_does_not_build_falls_back(
    db: Database, reader: Database, world: World, what: str
) -> None:
    fragment = (
        "\nfragment F on Project { storyboard { id } }" if "...F" in NOT_COMPILED[what] else ""
    )
    query = f"query($id: ID!) {{ project(id: $id) {{ {NOT_COMPILED[what]} }} }}{fragment}"
    variables = {"id": world.rich}
    count, compiled = await _counted(reader, served(db), query, variables, world.owner.token)
    by_field = await run(resolved(db), query, variables, world.owner.token)
    assert compiled == response(by_field)
    assert "errors" not in json.loads(compiled)
    assert count > 1  # resolved field by field: the project, then its children


NESTED = """
query($id: ID!) { project(id: $id) { id title status
  progress { totalShots shotsWithSelections selectionProgress }
  scenes { id sceneNumber title shots { id shotNumber selectedImage { id imageUrl }
    iterations { iterationNumber images { id iterationNumber variantNumber status imageUrl
      isFavorite } } } } } }
"""


async def _storyboard(db: Database, owner: Account, scenes: int) -> str:
    project_id = await _project(db, owner, title=f"{scenes} scenes")
    for _ in range(scenes):
        made = await _scene(
            db, owner, project_id, title="S", shots=[{"description": "a"}, {"description": "b"}]
        )
        for shot in made["shots"]:
            images = await _import(db, owner, shot["id"], [0, 1, 2], prompt="p")
            await _import(db, owner, shot["id"], [0], prompt="q", parent=images[1])
            await _select(db, owner, shot["id"], images[1])
    return project_id


async def test_the_compiled_read_is_one_statement_at_any_size(
    db: Database, reader: Database, world: World
) -> None:
    small = await _storyboard(db, world.owner, 1)
    large = await _storyboard(db, world.owner, 5)
    counts = []
    for project_id in (small, large):
        variables = {"id": project_id}
        count, compiled = await _counted(reader, served(db), NESTED, variables, world.owner.token)
        by_field_count, by_field = await _counted(
            reader, resolved(db), NESTED, variables, world.owner.token
        )
        assert compiled == by_field
        assert by_field_count > 1
        counts.append(count)
    assert counts == [1, 1]  # the token is checked before, when the context is made
    large_scenes = json.loads(compiled)["data"]["project"]["scenes"]
    assert [len(s["shots"]) for s in large_scenes] == [2] * 5


# --- the plan cache -------------------------------------------------------------------------------

TOGGLED = """
query($id: ID!, $a: Boolean!, $b: Boolean!) { project(id: $id) {
  title @include(if: $a) status @skip(if: $b)
  ... @include(if: $a) { scenes { id @skip(if: $b) title } }
  ...Numbers @skip(if: $a) } }
fragment Numbers on Project { scenes { sceneNumber shots @include(if: $b) { shotNumber } } }
"""
# A field outside the catalogue, asked for only when $a is true.
HALF_COMPILED = """
query($id: ID!, $a: Boolean!) { project(id: $id) {
  title scenes { sceneNumber storyboardComplete @include(if: $a) } } }
"""


async def test_one_document_with_other_variable_values_reads_right_each_time(
    db: Database, reader: Database, world: World
) -> None:
    flags = [(True, True), (False, True), (True, False), (False, False)]
    for a, b in flags + flags[::-1] + flags:
        variables = {"id": world.rich, "a": a, "b": b}
        count, compiled = await _counted(reader, served(db), TOGGLED, variables, world.owner.token)
        assert compiled == response(await run(resolved(db), TOGGLED, variables, world.owner.token))
        assert count == 1
        project = json.loads(compiled)["data"]["project"]
        assert ("title" in project, "status" in project) == (a, not b)

    for a in (True, False, True, False, False, True):
        variables = {"id": world.rich, "a": a}
        count, compiled = await _counted(
            reader, served(db), HALF_COMPILED, variables, world.owner.token
        )
        by_field = await run(resolved(db), HALF_COMPILED, variables, world.owner.token)
        assert compiled == response(by_field)
        # Compiled whenever it can be, whatever the values before it.
        assert (count == 1) is (not a), (a, count)


async def test_hundreds_of_documents_never_mix_up(db: Database, world: World) -> None:
    """Each document asks for its own subset of fields under its own aliases; every
    answer is cut from one field-by-field read of everything."""
    full = json.loads(response(await run(resolved(db), EVERYTHING, {"id": world.rich}, None)))
    assert full["data"] is None  # signed out: nothing
    everything = await run(resolved(db), EVERYTHING, {"id": world.rich}, world.owner.token)
    reference = json.loads(response(everything))["data"]["project"]
    leaves = ["id", "title", "prompt", "promptPlannerData", "workflowVersion", "status"]
    scene_leaves = ["id", "sceneNumber", "title", "description"]

    def document(n: int) -> tuple[str, dict[str, Any]]:
        picked = [name for bit, name in enumerate(leaves) if n >> bit & 1]
        scene_picked = scene_leaves[n % 4 :] + scene_leaves[: n % 4 : 2]
        root = " ".join(f"a{n}_{name}: {name}" for name in picked)
        scenes = " ".join(f"s{n}_{name}: {name}" for name in scene_picked)
        query = f"query($id: ID!) {{ project(id: $id) {{ {root} sc{n}: scenes {{ {scenes} }} }} }}"
        expected = {f"a{n}_{name}": reference[name] for name in picked}
        expected[f"sc{n}"] = [
            {f"s{n}_{name}": scene[name] for name in scene_picked} for scene in reference["scenes"]
        ]
        return query, {"project": expected}

    documents = [document(n) for n in range(200)]
    # One context for all (signed in once): only the reads are of interest here.
    context = await build_context(served(db), world.owner.token)
    for order in (documents, documents[::-1]):
        for query, expected in order:
            result = await schema.execute(query, {"id": world.rich}, context_value=context)
            assert result.errors is None
            assert json.dumps(result.data) == json.dumps(expected), query


# --- errors -----------------------------------------------------------------------------------------


def _id(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "global_id",
    [
        "not an id",
        "",
        _id("Scene:1"),
        _id("Project:0"),
        _id("Project:-1"),
        _id(f"Project:{2**63}"),
        _id("Project:1.5"),
    ],
)
async def test_a_malformed_id_is_the_same_bad_user_input(
    db: Database, world: World, global_id: str
) -> None:
    body = await assert_same(db, EVERYTHING, {"id": global_id}, world.owner.token)
    assert body["data"] == {"project": None}
    assert [e["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]


async def test_the_largest_id_is_null(db: Database, world: World) -> None:
    body = await assert_same(db, EVERYTHING, {"id": _id(f"Project:{2**63 - 1}")}, world.owner.token)
    assert body == {"data": {"project": None}}


async def test_large_ids_then_a_database_error_masked(empty_database_url: str) -> None:
    """On a database of its own: rows with ids past 2**62 (no double holds them), then a
    table gone from under the compiled read."""
    database = Database(empty_database_url)
    try:
        await migrations.upgrade_to_head(database)
        owner = await account(database, name="Big")
        big = 2**62 + 1
        async with database.transaction() as session:
            team = ids.decode(owner.team_id, "Team")
            user = ids.decode(owner.user_id, "User")
            rows: list[Any] = [
                ProjectRow(id=big, team_id=team, owner_id=user, title="Big ids"),
                SceneRow(id=big + 2, project_id=big, scene_number=1, title="s"),
                ShotRow(id=big + 4, scene_id=big + 2, project_id=big, shot_number=1),
                ShotImageRow(
                    id=big + 6,
                    shot_id=big + 4,
                    iteration_number=0,
                    variant_number=0,
                    status="COMPLETE",
                    iteration_prompt="p",
                    image_url="https://images.example.com/big.png",
                ),
                ShotImageRow(
                    id=big + 8,
                    shot_id=big + 4,
                    iteration_number=1,
                    variant_number=0,
                    status="PENDING",
                    iteration_prompt="q",
                    parent_image_id=big + 6,
                ),
                StoryboardSelectionRow(
                    id=big + 10, project_id=big, shot_id=big + 4, selected_image_id=big + 6
                ),
            ]
            for row in rows:
                session.add(row)
                await session.flush()
        project_id = ids.encode("Project", big)
        body = await assert_same(database, EVERYTHING, {"id": project_id}, owner.token)
        project = body["data"]["project"]
        shot = project["scenes"][0]["shots"][0]
        assert ids.decode(project["id"], "Project") == big
        assert ids.decode(shot["id"], "Shot") == big + 4
        assert ids.decode(shot["selectedImage"]["id"], "ShotImage") == big + 6
        parent = shot["iterations"][1]["parentImage"]
        assert ids.decode(parent["id"], "ShotImage") == big + 6

        async with database.engine.begin() as connection:
            await connection.execute(text("ALTER TABLE scenes RENAME TO scenes_moved"))
        query = "query($id: ID!) { project(id: $id) { title scenes { id } } }"
        compiled, by_field = (
            json.loads(answer)
            for answer in await both(database, query, {"id": project_id}, owner.token)
        )
        assert compiled["data"] == by_field["data"] == {"project": None}
        for errors in (compiled["errors"], by_field["errors"]):
            assert [(e["message"], e["code"]) for e in errors] == [
                ("Something went wrong on our side; it has been logged.", None)
            ]
        leaks = json.dumps(compiled).lower()
        for internal in ("scenes_moved", "select", "sqlite", "asyncpg", "relation", "table"):
            assert internal not in leaks
    finally:
        await database.dispose()


# --- an error beside a shared batch ----------------------------------------------------------------

NULLED_BESIDE_A_TWIN = """
query Q($id: ID!, $v0: Boolean = true) {
  project(id: $id) { progress { totalShots @include(if: $v0) }
                     scenes { shots { latestIterationNumber } } }
  p: project(id: $id) { scenes { shots { latestIterationNumber } } }
}
"""


@pytest.mark.parametrize("compiled", [False, True], ids=["field by field", "compiled"])
async def test_an_error_that_nulls_a_field_leaves_its_twin_its_answer(
    db: Database, world: World, compiled: bool
) -> None:
    """A refused null nulls `project`, and graphql-core cancels what was pending under it;
    `p` waits on the same DataLoader batches and still gets its answer (it got
    CancelledError, and the whole operation failed)."""
    resources = served(db) if compiled else resolved(db)
    for _ in range(3):
        result = await run(
            resources, NULLED_BESIDE_A_TWIN, {"id": world.rich, "v0": None}, world.owner.token
        )
        assert result.data is not None
        assert result.data["project"] is None
        assert [len(scene["shots"]) for scene in result.data["p"]["scenes"]]
        assert result.errors
