"""One SQL statement that builds a whole storyboard selection as JSON, on either engine.

`compile_root` turns the picks of a compiled root (see `schema.compiled.plan`) into
one statement whose values are the JSON text of each row's tree: each
object a JSON array of its values in the order of its picks (the pass in
`schema.compiled.finish` names them with the response keys), lists in the order
the field-by-field resolvers give (scenes by number, shots by number, iterations by
number, images by variant). The database does the nesting, as PostGraphile and
Hasura do: PostgreSQL with `json_build_array`/`json_agg`
(https://www.postgresql.org/docs/current/functions-json.html), SQLite with
`json_array`/`json_group_array` (https://www.sqlite.org/json1.html). Positional
arrays rather than objects: PostgreSQL builds them in about half the time, and
the text is half as long.

A few values are left for that pass in Python: signed media URLs (a signature
needs the server's secret, which never goes to the database), global IDs on
SQLite (which has no base64), and the progress percentages (computed by the same
`Progress` as the resolvers, from counts done in SQL). Each such value is written
in a raw form the pass knows by its place in the picks.

Every fragment of SQL text here is made from the catalogue's own names and type
names; values are bound parameters.
"""

# ruff: noqa: S608  (SQL text from the catalogue's names and GraphQL response keys only)
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import count

from schema.compiled.plan import TYPENAME, Pick
from services.tables import GenerationStatus

# PostgreSQL's functions take at most 100 arguments.
MAX_VALUES = 100

_ACTIVE = ", ".join(f"'{s.value}'" for s in GenerationStatus if s.is_active)
# services.storyboard.shot_images.summarize, as an aggregate over one iteration's images.
_BATCH_STATUS = (
    f"CASE WHEN max(CASE WHEN {{t}}.status IN ({_ACTIVE}) THEN 1 ELSE 0 END) = 1 THEN "
    f"CASE WHEN min(CASE WHEN {{t}}.status = '{GenerationStatus.PENDING.value}' THEN 1 ELSE 0 END)"
    f" = 1 THEN '{GenerationStatus.PENDING.value}' ELSE '{GenerationStatus.PROCESSING.value}' END "
    f"WHEN max(CASE WHEN {{t}}.status = '{GenerationStatus.COMPLETE.value}' THEN 1 ELSE 0 END) = 1 "
    f"THEN '{GenerationStatus.COMPLETE.value}' "
    f"WHEN max(CASE WHEN {{t}}.status = '{GenerationStatus.FAILED.value}' THEN 1 ELSE 0 END) = 1 "
    f"THEN '{GenerationStatus.FAILED.value}' ELSE '{GenerationStatus.CANCELED.value}' END"
)


class TooWide(Exception):
    """An object of the selection has more values than one SQL call can build."""


@dataclass(frozen=True)
class Dialect:
    """How one engine writes the few JSON constructs the compiler uses."""

    name: str

    @property
    def postgres(self) -> bool:
        return self.name == "postgresql"

    def obj(self, values: list[str]) -> str:
        """One object: the JSON array of its values (SQL expressions), in order."""
        if len(values) > MAX_VALUES:
            raise TooWide(len(values))
        joined = ", ".join(values)
        return f"json_build_array({joined})" if self.postgres else f"json_array({joined})"

    def embed(self, subquery: str) -> str:
        """A scalar subquery whose value is JSON (or NULL), as a value inside `obj`."""
        return f"({subquery})" if self.postgres else f"json(({subquery}))"

    def array(self, element: str, source: str, order: str) -> str:
        """The JSON array of `element` over the rows of `source` (FROM ... WHERE ...),
        ordered by `order`; `[]` when there are none."""
        if self.postgres:
            return f"COALESCE((SELECT json_agg({element} ORDER BY {order}) FROM {source}), '[]')"
        # SQLite 3.40 has no ORDER BY inside an aggregate; it aggregates an ordered
        # subquery in that order (a subquery with ORDER BY under an aggregate is never
        # flattened). The JSON subtype is lost across the subquery, so `json()` restores it.
        return (
            f"json((SELECT json_group_array(json(_e)) FROM "
            f"(SELECT {element} AS _e FROM {source} ORDER BY {order})))"
        )

    def boolean(self, expression: str) -> str:
        if self.postgres:
            return expression
        return f"json(CASE WHEN {expression} THEN 'true' ELSE 'false' END)"

    def tuple(self, *values: str) -> str:
        joined = ", ".join(values)
        return f"json_build_array({joined})" if self.postgres else f"json_array({joined})"

    def media(self, key: str, url: str) -> str:
        """A media link's raw value: the storage key as a JSON string when there is one
        (the finish signs it), else `[recorded URL]`. Only what the link needs travels:
        the recorded URL of a stored image is never shown, and leaving it out halves
        a storyboard's text."""
        if self.postgres:
            return f"CASE WHEN {key} <> '' THEN to_json({key}) ELSE json_build_array({url}) END"
        return f"json(CASE WHEN {key} <> '' THEN json_quote({key}) ELSE json_array({url}) END)"

    @property
    def builds_ids(self) -> bool:
        """Whether `global_id` is finished in SQL (else the pass encodes the key)."""
        return self.postgres

    def global_id(self, type_name: str, key: str) -> str:
        """The object's global ID (`schema.ids.encode`: base64 of "Type:key") on
        PostgreSQL; SQLite has no base64, so there the key, for the pass to encode.
        PostgreSQL breaks base64 lines at 76 characters, which these never reach."""
        if not self.postgres:
            return key
        return f"encode(convert_to({_literal(type_name + ':')} || {key}, 'UTF8'), 'base64')"

    def text(self, expression: str) -> str:
        """The statement's one output: the JSON as text."""
        return f"({expression})::text" if self.postgres else expression


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass
class _Compiler:
    dialect: Dialect
    aliases: count[int]
    # On PostgreSQL, while an iteration's values are built: the alias of the images its
    # GROUP BY reads, and the aggregate columns its values ask that subquery for.
    group: tuple[str, list[str]] | None = None

    def alias(self) -> str:
        return f"t{next(self.aliases)}"

    def build(self, type_name: str, picks: tuple[Pick, ...], t: str) -> str:
        """The JSON object of one row of `type_name`, whose table is aliased `t`."""
        builder = _FIELDS[type_name]
        values = []
        for p in picks:
            if p.field == TYPENAME:
                value = _literal(type_name)
            elif p.field == "id":
                value = self.dialect.global_id(type_name, f"{t}.id")
            else:
                value = builder(self, p, t)
            values.append(value)
        return self.dialect.obj(values)


def _project(c: _Compiler, p: Pick, t: str) -> str:
    d = c.dialect
    if p.field == "progress":
        # The counts `services.storyboard.workflow.progress_for_projects` takes, in its order.
        s, x = c.alias(), c.alias()
        return d.tuple(
            f"(SELECT count(*) FROM scenes {s} WHERE {s}.project_id = {t}.id)",
            f"(SELECT count(*) FROM scenes {s} WHERE {s}.project_id = {t}.id AND NOT EXISTS "
            f"(SELECT 1 FROM shots {x} WHERE {x}.scene_id = {s}.id))",
            f"(SELECT count(*) FROM shots {x} WHERE {x}.project_id = {t}.id)",
            f"(SELECT count(*) FROM storyboard_selections {s} WHERE {s}.project_id = {t}.id)",
            f"(SELECT count(*) FROM storyboard_selections {s} WHERE {s}.project_id = {t}.id "
            f"AND {s}.animation_status = '{GenerationStatus.COMPLETE.value}')",
        )
    if p.field in ("team", "owner"):
        x = c.alias()
        table, type_name, column = (
            ("teams", "Team", "team_id") if p.field == "team" else ("users", "User", "owner_id")
        )
        return d.embed(
            f"SELECT {c.build(type_name, p.children, x)} FROM {table} {x} "
            f"WHERE {x}.id = {t}.{column}"
        )
    if p.field == "scenes":
        s = c.alias()
        return d.array(
            c.build("Scene", p.children, s),
            f"scenes {s} WHERE {s}.project_id = {t}.id",
            f"{s}.scene_number",
        )
    return f"{t}.{_SNAKE[p.field]}"


def _scene(c: _Compiler, p: Pick, t: str) -> str:
    if p.field == "shots":
        s = c.alias()
        return c.dialect.array(
            c.build("Shot", p.children, s),
            f"shots {s} WHERE {s}.scene_id = {t}.id",
            f"{s}.shot_number",
        )
    return f"{t}.{_SNAKE[p.field]}"


def _shot(c: _Compiler, p: Pick, t: str) -> str:
    d = c.dialect
    if p.field == "latestIterationNumber":
        i = c.alias()
        return f"(SELECT max({i}.iteration_number) FROM shot_images {i} WHERE {i}.shot_id = {t}.id)"
    if p.field == "selectedImage":
        s, i = c.alias(), c.alias()
        return d.embed(
            f"SELECT {c.build('ShotImage', p.children, i)} FROM storyboard_selections {s} "
            f"JOIN shot_images {i} ON {i}.id = {s}.selected_image_id WHERE {s}.shot_id = {t}.id"
        )
    if p.field == "iterations":
        # One GROUP BY pass over the shot's images makes its iterations. On PostgreSQL
        # it also aggregates what each iteration shows (its images in variant order,
        # its first variant's prompt and parent), which saves a scan per iteration.
        g, i = c.alias(), c.alias()
        columns: list[str] = []
        outer, c.group = c.group, ((i, columns) if d.postgres else None)
        element = c.build("ImageIteration", p.children, g)
        c.group = outer
        extra = "".join(f", {column} AS c{n}" for n, column in enumerate(columns))
        groups = (
            f"(SELECT {i}.shot_id AS shot_id, {i}.iteration_number AS number, "
            f"{_BATCH_STATUS.format(t=i)} AS status{extra} FROM shot_images {i} "
            f"WHERE {i}.shot_id = {t}.id GROUP BY {i}.shot_id, {i}.iteration_number) {g}"
        )
        return d.array(element, groups, f"{g}.number")
    return f"{t}.{_SNAKE[p.field]}"


def _first_of_iteration(c: _Compiler, g: str, column: str) -> str:
    """A column of the iteration's first variant (what every image of it shares)."""
    i = c.alias()
    return (
        f"(SELECT {i}.{column} FROM shot_images {i} WHERE {i}.shot_id = {g}.shot_id "
        f"AND {i}.iteration_number = {g}.number ORDER BY {i}.variant_number LIMIT 1)"
    )


def _grouped(c: _Compiler, g: str, aggregate: Callable[[str], str]) -> str:
    """A column of the iteration's GROUP BY (PostgreSQL): `aggregate` of its images'
    alias; the value's reference in the iteration."""
    assert c.group is not None
    i, columns = c.group
    c.group = None  # what the aggregate builds is not an iteration's value
    columns.append(aggregate(i))
    c.group = (i, columns)
    return f"{g}.c{len(columns) - 1}"


def _first_grouped(column: str) -> Callable[[str], str]:
    return lambda i: f"(array_agg({i}.{column} ORDER BY {i}.variant_number))[1]"


def _iteration(c: _Compiler, p: Pick, g: str) -> str:
    d = c.dialect
    if c.group is not None:
        if p.field == "prompt":
            return _grouped(c, g, _first_grouped("iteration_prompt"))
        if p.field == "parentImage":
            i = c.alias()
            parent = _grouped(c, g, _first_grouped("parent_image_id"))
            return d.embed(
                f"SELECT {c.build('ShotImage', p.children, i)} FROM shot_images {i} "
                f"WHERE {i}.id = {parent}"
            )
        if p.field == "images":
            return _grouped(
                c,
                g,
                lambda i: (
                    f"json_agg({c.build('ShotImage', p.children, i)} ORDER BY {i}.variant_number)"
                ),
            )
    if p.field == "iterationNumber":
        return f"{g}.number"
    if p.field == "status":
        return f"{g}.status"
    if p.field == "prompt":
        return _first_of_iteration(c, g, "iteration_prompt")
    if p.field == "parentImage":
        i = c.alias()
        parent = _first_of_iteration(c, g, "parent_image_id")
        return d.embed(
            f"SELECT {c.build('ShotImage', p.children, i)} FROM shot_images {i} "
            f"WHERE {i}.id = {parent}"
        )
    assert p.field == "images"
    i = c.alias()
    return d.array(
        c.build("ShotImage", p.children, i),
        f"shot_images {i} WHERE {i}.shot_id = {g}.shot_id AND {i}.iteration_number = {g}.number",
        f"{i}.variant_number",
    )


def _image(c: _Compiler, p: Pick, t: str) -> str:
    if p.field == "imageUrl":
        return c.dialect.media(f"{t}.storage_key", f"{t}.image_url")
    if p.field == "thumbnailUrl":
        # services.library.assets.image_thumbnails: its own asset's preview, else (an
        # image added from the library) that asset's; the key, signed in the finish.
        a = c.alias()
        return (
            f"COALESCE((SELECT {a}.thumbnail_key FROM assets {a} WHERE {a}.shot_image_id = "
            f"{t}.id AND {a}.thumbnail_key IS NOT NULL), (SELECT {a}.thumbnail_key FROM "
            f"assets {a} WHERE {a}.id = {t}.source_asset_id AND {a}.thumbnail_key IS NOT NULL))"
        )
    if p.field == "parentImage":
        i = c.alias()
        return c.dialect.embed(
            f"SELECT {c.build('ShotImage', p.children, i)} FROM shot_images {i} "
            f"WHERE {i}.id = {t}.parent_image_id"
        )
    if p.field == "isFavorite":
        return c.dialect.boolean(f"{t}.is_favorite")
    return f"{t}.{_SNAKE[p.field]}"


_SNAKE = {
    "id": "id",
    "title": "title",
    "prompt": "prompt",
    "promptPlannerData": "prompt_planner_data",
    "workflowVersion": "workflow_version",
    "status": "status",
    "sceneNumber": "scene_number",
    "description": "description",
    "shotNumber": "shot_number",
    "initialPrompt": "initial_prompt",
    "iterationNumber": "iteration_number",
    "variantNumber": "variant_number",
    "iterationPrompt": "iteration_prompt",
    "predictionId": "prediction_id",
    "model": "model",
    "error": "error",
    "animationStatus": "animation_status",
    "createdAt": "created_at",
    "name": "name",
    "email": "email",
    "updatedAt": "updated_at",
}


def _selection(c: _Compiler, p: Pick, t: str) -> str:
    d = c.dialect
    if p.field == "animatedVideoUrl":
        return d.media(f"{t}.video_storage_key", f"{t}.animated_video_url")
    if p.field == "shot":
        s = c.alias()
        return d.embed(
            f"SELECT {c.build('Shot', p.children, s)} FROM shots {s} WHERE {s}.id = {t}.shot_id"
        )
    if p.field == "selectedImage":
        i = c.alias()
        return d.embed(
            f"SELECT {c.build('ShotImage', p.children, i)} FROM shot_images {i} "
            f"WHERE {i}.id = {t}.selected_image_id"
        )
    return f"{t}.{_SNAKE[p.field]}"


def _account(c: _Compiler, p: Pick, t: str) -> str:
    """A `Team` or a `User`: plain columns."""
    if p.field == "isPersonal":
        return c.dialect.boolean(f"{t}.is_personal")
    return f"{t}.{_SNAKE[p.field]}"


def _iteration_event(c: _Compiler, p: Pick, t: str) -> str:
    """`IterationStatusEvent`, built on its shot's row: the cursor and the changed image
    are bound (`:cursor`, `:image_id`, NULL for none)."""
    if p.field == "cursor":
        return "CAST(:cursor AS TEXT)"
    if p.field == "shot":
        return c.build("Shot", p.children, t)
    if p.field == "image":
        i = c.alias()
        return c.dialect.embed(
            f"SELECT {c.build('ShotImage', p.children, i)} FROM shot_images {i} "
            f"WHERE {i}.id = :image_id AND {i}.shot_id = {t}.id"
        )
    assert p.field == "iterations"
    return _shot(c, p, t)


def _animation_event(c: _Compiler, p: Pick, t: str) -> str:
    """`AnimationStatusEvent`, built on its project's row: the cursor and the changed
    selection are bound (`:cursor`, `:selection_id`, NULL for none)."""
    d = c.dialect
    if p.field == "cursor":
        return "CAST(:cursor AS TEXT)"
    if p.field == "progress":
        return _project(c, p, t)
    s = c.alias()
    if p.field == "selection":
        return d.embed(
            f"SELECT {c.build('StoryboardSelection', p.children, s)} FROM storyboard_selections "
            f"{s} WHERE {s}.id = :selection_id AND {s}.project_id = {t}.id"
        )
    assert p.field == "selections"
    # services.storyboard.lookups.selections_for_projects: by scene, then shot.
    x, y = c.alias(), c.alias()
    return d.array(
        c.build("StoryboardSelection", p.children, s),
        f"storyboard_selections {s} JOIN shots {x} ON {x}.id = {s}.shot_id "
        f"JOIN scenes {y} ON {y}.id = {x}.scene_id WHERE {s}.project_id = {t}.id",
        f"{y}.scene_number, {x}.shot_number",
    )


_FIELDS: dict[str, Callable[[_Compiler, Pick, str], str]] = {
    "Project": _project,
    "Scene": _scene,
    "Shot": _shot,
    "ImageIteration": _iteration,
    "ShotImage": _image,
    "StoryboardSelection": _selection,
    "Team": _account,
    "User": _account,
    "IterationStatusEvent": _iteration_event,
    "AnimationStatusEvent": _animation_event,
}


def compile_root(
    dialect: Dialect, type_name: str, picks: tuple[Pick, ...], table: str, condition: str
) -> str:
    """The statement building `picks` for each row of `table` (the rows of `type_name`)
    whose id is in `:ids` (an expanding parameter) and that meet `condition` (SQL whose
    `{t}` is the row's alias, e.g. the reader's access, binding what it names). Rows of
    two columns: the id, and the JSON text of that row's object in the response's shape.
    Raises TooWide."""
    compiler = _Compiler(dialect, count())
    root = compiler.alias()
    return (
        f"SELECT {root}.id, {dialect.text(compiler.build(type_name, picks, root))} "
        f"FROM {table} {root} WHERE {root}.id IN :ids AND {condition.format(t=root)}"
    )
