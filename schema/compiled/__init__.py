"""Compiled reads: a whole selection below one root field in one SQL statement.

Field-by-field execution costs about 16 us per object in graphql-core (see
STACK-NOTES), and the storyboard tree is about a thousand objects. For the roots
that read that tree, the selection is planned instead (`schema.compiled.plan`),
compiled into one statement that has the database build the response's JSON
(`schema.compiled.sql`), finished in one pass (`schema.compiled.finish`), and
handed to graphql-core as a `Finished` value, which `schema.execution`'s executor
returns as it is instead of walking it.

A selection holding anything the compiler does not build is resolved as before,
field by field: `project_read` answers `NOT_COMPILED` and the resolver carries on.
Plans are cached per selection (and the variables it reads), so a client's
repeated query is planned once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
from graphql import FieldNode
from sqlalchemy import TextClause, bindparam, text

from schema.compiled.finish import Finisher
from schema.compiled.plan import pick
from schema.compiled.sql import Dialect, TooWide, compile_project
from schema.context import Info

PLAN_CACHE_SIZE = 512


@dataclass(frozen=True, slots=True)
class Finished:
    """A field's value already in its response's shape (keys, order, serialized
    scalars): `schema.execution.StudioExecutor` takes it as the completed value."""

    value: Any


class _NotCompiled:
    def __repr__(self) -> str:
        return "NOT_COMPILED"


NOT_COMPILED: Final = _NotCompiled()


@dataclass(frozen=True, slots=True)
class _Plan:
    statement: TextClause
    finisher: Finisher


@dataclass(slots=True)
class _Entry:
    # Kept so the nodes' ids, the cache's key, cannot be reused while cached: a field
    # node belongs to one document, so the same nodes mean the same selection text.
    nodes: tuple[FieldNode, ...]
    variables_read: frozenset[str] | None
    plans: dict[tuple[Any, ...], _Plan | None]


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


def _plan(info: Info, dialect: Dialect) -> _Plan | None:
    raw = info._raw_info  # graphql-core's info: the field's nodes and the document's fragments
    nodes = tuple(raw.field_nodes)
    key = (dialect.name, tuple(map(id, nodes)))
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
            return entry.plans[values]
    picks, read = pick("Project", nodes, raw.fragments, variables)
    plan = None
    if picks is not None:
        try:
            sql = compile_project(dialect, picks)
        except TooWide:
            pass
        else:
            statement = text(sql).bindparams(bindparam("team_ids", expanding=True))
            plan = _Plan(statement, Finisher.for_picks("Project", picks))
    entry.variables_read = read
    entry.plans[_values(variables, read)] = plan
    return plan


async def project_read(info: Info, project_id: int) -> Finished | _NotCompiled:
    """The `project` field's finished value for the reader (`Finished(None)` when the
    project does not exist or is in none of the reader's teams), or NOT_COMPILED when
    its selection must be resolved field by field. The reader is signed in (the
    caller's check); database errors propagate."""
    context = info.context
    actor = context.require_actor()
    if not context.resources.compiled_reads:
        return NOT_COMPILED
    db = context.db
    plan = _plan(info, Dialect(db.url.get_backend_name()))
    if plan is None:
        return NOT_COMPILED
    teams = list(actor.roles)
    if not teams:
        return Finished(None)
    async with db.engine.connect() as connection:
        result = await connection.execute(
            plan.statement, {"project_id": project_id, "team_ids": teams}
        )
        raw = result.scalar()
    if raw is None:
        return Finished(None)
    value = orjson.loads(raw)
    plan.finisher.apply(value, context.media)
    return Finished(value)
