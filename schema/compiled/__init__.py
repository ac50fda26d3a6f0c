"""Compiled reads: a whole selection below one root field in one SQL statement.

Field-by-field execution costs about 16 us per object in graphql-core (see
STACK-NOTES), and the storyboard tree is about a thousand objects. For the roots
that read that tree, the selection is planned instead (`schema.compiled.plan`),
compiled into one statement that has the database build the response's JSON
(`schema.compiled.sql`), finished in one pass (`schema.compiled.finish`), and
handed to graphql-core as a `Finished` value, which `schema.execution`'s executor
returns as it is instead of walking it.

Each compiled root is a `Root`: the catalogue type it builds, its table, the
reader's access as an SQL condition, and where its selection sits below the
resolver's field. The roots: `project` (`project_read`), the `projects` page's
nodes (`projects_read`), `node(id:)` of the storyboard's types (`node_read`), and
each message of `iterationStatus` and `animationStatus` (`iteration_event_read`,
`animation_event_read`); `schema.compiled.rows` finishes the library search's
assets from rows already loaded, with the same plan cache (`cached_plan`).

A selection holding anything the compiler does not build is resolved as before,
field by field: each read answers `NOT_COMPILED` and the resolver carries on.
Plans are cached per selection (and the variables it reads), so a client's
repeated query is planned once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast

import orjson
from graphql import FieldNode
from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.exc import DBAPIError
from sqlmodel.ext.asyncio.session import AsyncSession

from schema.compiled.finish import Shape
from schema.compiled.plan import NotCompilable, Walk
from schema.compiled.sql import Dialect, TooWide, compile_root
from schema.context import Info

PLAN_CACHE_SIZE = 512
# Plans kept per selection, one per combination of the values of the variables its
# directives read: a document with n such variables has 2**n, so a client could make
# the cache grow without bound by sending each combination in turn.
PLANS_PER_SELECTION = 16


@dataclass(frozen=True, slots=True)
class Finished:
    """A field's value already in its response's shape (keys, order, serialized
    scalars): `schema.execution.StudioExecutor` takes it as the completed value."""

    value: Any


class _NotCompiled:
    def __repr__(self) -> str:
        return "NOT_COMPILED"


NOT_COMPILED: Final = _NotCompiled()

# Where a root's selection sits below the resolver's field: the field nodes whose
# selection sets are the root type's. Raises NotCompilable when there is no single one.
Select = Callable[[Walk, Sequence[FieldNode]], Sequence[FieldNode]]

# The reader's projects: a project's, or the project of a scene's or shot's.
_PROJECT_VISIBLE = "{t}.team_id IN :team_ids"
_IN_VISIBLE_PROJECT = (
    "{t}.project_id IN (SELECT _p.id FROM projects _p WHERE _p.team_id IN :team_ids)"
)
_OF_VISIBLE_SHOT = (
    "{t}.shot_id IN (SELECT _s.id FROM shots _s JOIN projects _p ON _p.id = _s.project_id "
    "WHERE _p.team_id IN :team_ids)"
)


@dataclass(frozen=True, slots=True)
class Root:
    """A kind of compiled read: the catalogue type it builds (`type_name`), from the
    rows of `table` whose ids are asked for and that meet `condition` (the reader's
    access, as `schema.nodes.resolve` checks it; SQL whose `{t}` is the row's alias,
    binding `:team_ids`), and `select`, where its selection sits below the resolver's
    field (None: that field's own)."""

    name: str
    type_name: str
    table: str
    condition: str
    select: Select | None = None


def one_node_position(connection_type: str, edge_type: str) -> Select:
    """Below a connection of type `connection_type`: the one place its nodes are asked
    for (`edges { node }` or `nodes`, under one response key). Two places may ask for
    different selections of the same nodes, which one value per node cannot answer."""

    def select(walk: Walk, nodes: Sequence[FieldNode]) -> Sequence[FieldNode]:
        positions: list[list[FieldNode]] = []
        for connection in walk.fields(connection_type, nodes).values():
            name = connection[0].name.value
            if name == "nodes":
                positions.append(connection)
            elif name == "edges":
                for edge in walk.fields(edge_type, connection).values():
                    if edge[0].name.value == "node":
                        positions.append(edge)
        if len(positions) != 1:
            raise NotCompilable(f"{len(positions)} places for the nodes")
        return positions[0]

    return select


PROJECT = Root("Project", "Project", "projects", _PROJECT_VISIBLE)
PROJECT_PAGE = Root(
    "ProjectConnection",
    "Project",
    "projects",
    _PROJECT_VISIBLE,
    select=one_node_position("ProjectConnection", "ProjectEdge"),
)
SCENE = Root("Scene", "Scene", "scenes", _IN_VISIBLE_PROJECT)
SHOT = Root("Shot", "Shot", "shots", _IN_VISIBLE_PROJECT)
SHOT_IMAGE = Root("ShotImage", "ShotImage", "shot_images", _OF_VISIBLE_SHOT)
ITERATION_EVENT = Root(
    "IterationStatusEvent",
    "IterationStatusEvent",
    "shots",
    _IN_VISIBLE_PROJECT,
)
ANIMATION_EVENT = Root("AnimationStatusEvent", "AnimationStatusEvent", "projects", _PROJECT_VISIBLE)
SELECTION = Root(
    "StoryboardSelection", "StoryboardSelection", "storyboard_selections", _IN_VISIBLE_PROJECT
)
# The `node` field's roots, by the type named in the global ID.
NODE_ROOTS: Final = {root.type_name: root for root in (PROJECT, SCENE, SHOT, SHOT_IMAGE, SELECTION)}


@dataclass(slots=True)
class _Plan:
    statement: TextClause
    shape: Shape
    # False once the engine refused the statement as too complex (`_too_complex`).
    usable: bool = True


# What the engines answer a statement nested deeper than they parse or plan: SQLite's
# parser stack (100 levels by default, https://www.sqlite.org/limits.html) and
# expression depth, PostgreSQL's stack depth (SQLSTATE 54001, statement_too_complex).
_SQLITE_TOO_COMPLEX = ("parser stack overflow", "expression tree is too large")
_POSTGRES_TOO_COMPLEX = "54001"


def _too_complex(error: DBAPIError) -> bool:
    """Whether the engine refused a statement for its depth (not for its data or a fault)."""
    cause = error.orig
    message = str(cause).lower()
    codes = {getattr(cause, "sqlstate", None), getattr(cause, "pgcode", None)}
    return _POSTGRES_TOO_COMPLEX in codes or any(m in message for m in _SQLITE_TOO_COMPLEX)


@dataclass(slots=True)
class _Entry:
    # Kept so the nodes' ids, the cache's key, cannot be reused while cached: a field
    # node belongs to one document, so the same nodes mean the same selection text.
    nodes: tuple[FieldNode, ...]
    variables_read: frozenset[str] | None
    plans: dict[tuple[Any, ...], Any]


_cache: OrderedDict[tuple[str, tuple[int, ...]], _Entry] = OrderedDict()


def _hashable(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def _values(variables: Mapping[str, Any], names: frozenset[str]) -> tuple[Any, ...]:
    """The key of the plans for these variables' values: (name, value) pairs."""
    return tuple((name, _hashable(variables.get(name))) for name in sorted(names))


def _compile(root: Root, dialect: Dialect, walk: Walk, nodes: Sequence[FieldNode]) -> _Plan | None:
    try:
        selected = root.select(walk, nodes) if root.select else nodes
        picks = walk.collect(root.type_name, [n.selection_set for n in selected if n.selection_set])
        sql = compile_root(dialect, root.type_name, picks, root.table, root.condition)
    except (NotCompilable, TooWide):
        return None
    statement = text(sql).bindparams(
        bindparam("ids", expanding=True), bindparam("team_ids", expanding=True)
    )
    return _Plan(statement, Shape.for_picks(root.type_name, picks, ids_built=dialect.builds_ids))


P = TypeVar("P")


def cached_plan(
    info: Info, kind: str, make: Callable[[Walk, Sequence[FieldNode]], P | None]
) -> P | None:
    """The plan of kind `kind` for `info`'s field (its nodes, and the values of the
    variables that decided its picks), made by `make` from a walk over the document and
    the field's nodes on the first call, then taken from the cache; None when the
    selection is resolved field by field."""
    raw = info._raw_info  # graphql-core's info: the field's nodes and the document's fragments
    nodes = tuple(raw.field_nodes)
    key = (kind, tuple(map(id, nodes)))
    entry = _cache.get(key)
    if entry is None:
        entry = _Entry(nodes, None, {})
        _cache[key] = entry
        if len(_cache) > PLAN_CACHE_SIZE:
            _cache.popitem(last=False)
    else:
        _cache.move_to_end(key)
    variables = info.variable_values
    if entry.variables_read is not None:
        values = _values(variables, entry.variables_read)
        if values in entry.plans:
            return cast("P | None", entry.plans[values])
    walk = Walk(raw.fragments, variables, set())
    plan = make(walk, nodes)
    read = frozenset(walk.read)
    entry.variables_read = read
    if len(entry.plans) >= PLANS_PER_SELECTION:
        del entry.plans[next(iter(entry.plans))]  # the oldest
    entry.plans[_values(variables, read)] = plan
    return plan


def _plan(info: Info, dialect: Dialect, root: Root) -> _Plan | None:
    return cached_plan(
        info,
        f"{dialect.name}:{root.name}",
        lambda walk, nodes: _compile(root, dialect, walk, nodes),
    )


async def _read(
    info: Info, root: Root, ids: Sequence[int], **params: Any
) -> dict[int, Any] | _NotCompiled:
    """The finished values of the rows of `root` with these ids that the reader may see,
    by id, or NOT_COMPILED when the selection must be resolved field by field."""
    context = info.context
    actor = context.require_actor()
    if not context.resources.compiled_reads:
        return NOT_COMPILED
    db = context.db
    plan = _plan(info, Dialect(db.url.get_backend_name()), root)
    if plan is None or not plan.usable:
        return NOT_COMPILED
    teams = list(actor.roles)
    if not teams or not ids:
        return {}
    parameters = {"ids": list(ids), "team_ids": teams, **params}

    async def read(session: AsyncSession) -> Sequence[Any]:
        # The operation's read connection (autocommit on PostgreSQL: no BEGIN/ROLLBACK).
        return (await (await session.connection()).execute(plan.statement, parameters)).all()

    try:
        rows = await context.reads.run(read)
    except DBAPIError as error:
        # A selection valid for GraphQL may nest deeper than the engine takes in one
        # statement (SQLite's parser gives up first): resolved field by field instead,
        # from now on.
        if not _too_complex(error):
            raise
        plan.usable = False
        return NOT_COMPILED
    sign = context.media.signer()
    build = plan.shape.build
    return {pk: build(orjson.loads(raw), sign) for pk, raw in rows}


async def project_read(info: Info, project_id: int) -> Finished | _NotCompiled:
    """The `project` field's finished value for the reader (`Finished(None)` when the
    project does not exist or is in none of the reader's teams), or NOT_COMPILED when
    its selection must be resolved field by field. The reader is signed in (the
    caller's check); database errors propagate."""
    return await node_read(info, "Project", project_id)


async def node_read(info: Info, type_name: str, pk: int) -> Finished | _NotCompiled:
    """The `node` field's finished value for an object of `type_name` (a key of
    `NODE_ROOTS`; any other is NOT_COMPILED): `Finished(None)` when it does not exist
    or the reader may not see it (its project is in none of their teams), as
    `schema.nodes.resolve`; NOT_COMPILED when the selection must be resolved field by
    field. The reader is signed in (the caller's check); database errors propagate."""
    root = NODE_ROOTS.get(type_name)
    if root is None:
        info.context.require_actor()
        return NOT_COMPILED
    values = await _read(info, root, [pk])
    if isinstance(values, _NotCompiled):
        return NOT_COMPILED
    return Finished(values.get(pk))


async def projects_read(
    info: Info, project_ids: Sequence[int]
) -> dict[int, Finished] | _NotCompiled:
    """The finished values of a page of the `projects` connection's projects, by id, for
    its one place asking for them (`edges { node }` or `nodes`), in one statement; those
    the reader may not see (or gone since) are left out. NOT_COMPILED when the selection
    must be resolved field by field (also when it asks for the projects in two places).
    The reader is signed in; database errors propagate."""
    values = await _read(info, PROJECT_PAGE, project_ids)
    if isinstance(values, _NotCompiled):
        return NOT_COMPILED
    return {pk: Finished(value) for pk, value in values.items()}


async def iteration_event_read(
    info: Info, shot_id: int, *, cursor: str, image_id: int | None
) -> Finished | _NotCompiled:
    """An `iterationStatus` message, finished: the shot, its iterations as they are now
    and the image `image_id` if it is still the shot's (else null), with `cursor`.
    `Finished(None)` when the shot is gone or the reader may no longer see it;
    NOT_COMPILED when the selection must be resolved field by field. `info` is the
    subscription field's; the reader is signed in; database errors propagate."""
    values = await _read(info, ITERATION_EVENT, [shot_id], cursor=cursor, image_id=image_id)
    if isinstance(values, _NotCompiled):
        return NOT_COMPILED
    return Finished(values.get(shot_id))


async def animation_event_read(
    info: Info, project_id: int, *, cursor: str, selection_id: int | None
) -> Finished | _NotCompiled:
    """An `animationStatus` message, finished: the project's storyboard and progress as
    they are now and the selection `selection_id` if it is still the project's (else
    null), with `cursor`. `Finished(None)` when the project is gone or the reader may
    no longer see it; NOT_COMPILED when the selection must be resolved field by field.
    `info` is the subscription field's; the reader is signed in; database errors
    propagate."""
    values = await _read(
        info, ANIMATION_EVENT, [project_id], cursor=cursor, selection_id=selection_id
    )
    if isinstance(values, _NotCompiled):
        return NOT_COMPILED
    return Finished(values.get(project_id))
