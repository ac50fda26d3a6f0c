"""The one pass that turns a compiled read's JSON into the response's value.

SQL builds each object as an array of its values in the order of its picks (see
`schema.compiled.sql`). `Shape.for_picks` works out once per plan what each
position holds; `build` then makes each object a dict under the response keys, in
the order asked, putting in what SQL left raw: media URLs signed from storage keys,
or the recorded URL where there is none (`Dialect.media`; `MediaLinks.url_for`, as
`ShotImage.imageUrl` and `StoryboardSelection.animatedVideoUrl` do) or from stored
preview keys
(`thumbnailUrl`), global IDs from primary keys where SQL did not write them
(`schema.ids.encode`), dates in the `DateTime` scalar's form, and `ProjectProgress`
from its counts (through `ProjectProgress.from_progress`, as the resolvers do).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schema import ids
from schema.compiled.plan import COMPILABLE, TYPENAME, Pick
from services.media.storage import MediaLinks
from services.storyboard.workflow import Progress

# A position's raw value and the response's signer (`MediaLinks.signer`): the finished value.
Sign = Callable[[str], str]
Fix = Callable[[Any, Sign], Any]

_PROGRESS_FIELDS = {
    "totalScenes": "total_scenes",
    "totalShots": "total_shots",
    "shotsWithSelections": "shots_with_selections",
    "shotsWithAnimations": "shots_with_animations",
    "selectionProgress": "selection_progress",
    "animationProgress": "animation_progress",
    "isSelectionComplete": "is_selection_complete",
    "isAnimationComplete": "is_animation_complete",
}
# The fields whose value is a list of objects (the others with children are one object).
_LISTS = frozenset({"scenes", "shots", "iterations", "images", "selections"})


def _global_id(type_name: str) -> Fix:
    return lambda pk, _sign: ids.encode(type_name, pk)


def _media_url(raw: Any, sign: Sign) -> Any:
    """`Dialect.media`'s value: a storage key (a string) signed, else the recorded URL."""
    return sign(raw) if raw.__class__ is str else raw[0]


def _thumbnail_url(key: Any, sign: Sign) -> Any:
    return sign(key) if key else None


def _moment(raw: Any, _sign: Sign) -> Any:
    """A `DateTime` as the scalar gives it (`isoformat` of the aware UTC value) from the
    column's JSON text: ISO 8601 with an offset on PostgreSQL, naive UTC on SQLite."""
    moment = datetime.fromisoformat(raw)
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat()


def _progress(picks: tuple[Pick, ...]) -> Fix:
    def fix(counts: Any, _sign: Sign) -> dict[str, Any]:
        from schema.storyboard import ProjectProgress  # it imports the schema's types

        scenes, without_shots, shots, selected, animated = counts
        progress = ProjectProgress.from_progress(
            Progress(
                total_scenes=scenes,
                scenes_without_shots=without_shots,
                total_shots=shots,
                shots_with_selections=selected,
                shots_with_animations=animated,
            )
        )
        return {
            p.key: "ProjectProgress"
            if p.field == TYPENAME
            else getattr(progress, _PROGRESS_FIELDS[p.field])
            for p in picks
        }

    return fix


def _one(shape: Shape) -> Fix:
    build = shape.build
    return lambda row, sign: None if row is None else build(row, sign)


def _many(shape: Shape) -> Fix:
    build = shape.build
    return lambda rows, sign: [build(row, sign) for row in rows]


@dataclass(frozen=True)
class Shape:
    """How to make one object of the result from the array SQL built for it: `keys` name
    its positions; `fixes` (position, key, fix) rewrite the raw values that need it.

    `build(row, sign)` makes the object (a dict in the response's key order) from its
    array; `sign` is the response's signer (`MediaLinks.signer`). It is a function
    written for this shape (one dict display, no loop), as a thousand images make the
    pass the largest part of a storyboard read's own work.
    """

    keys: tuple[str, ...]
    fixes: tuple[tuple[int, str, Fix], ...]
    build: Callable[[list[Any], Sign], dict[str, Any]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "build", _builder(self.keys, self.fixes))

    @classmethod
    def for_picks(cls, type_name: str, picks: tuple[Pick, ...], *, ids_built: bool) -> Shape:
        """The shape of objects of `type_name` built from `picks`; `ids_built`: the SQL
        already wrote global IDs (`Dialect.builds_ids`)."""
        fixes: list[tuple[int, str, Fix]] = []
        for position, p in enumerate(picks):
            fix: Fix | None = None
            if p.field == "id":
                fix = None if ids_built else _global_id(type_name)
            elif p.field in ("imageUrl", "animatedVideoUrl"):
                fix = _media_url
            elif p.field == "thumbnailUrl":
                fix = _thumbnail_url
            elif p.field in ("createdAt", "updatedAt"):
                fix = _moment
            elif p.field == "progress":
                fix = _progress(p.children)
            elif (child_type := COMPILABLE[type_name].get(p.field)) is not None:
                # An object field, even one whose fields were all skipped (then `{}`).
                child = cls.for_picks(child_type, p.children, ids_built=ids_built)
                fix = _many(child) if p.field in _LISTS else _one(child)
            if fix is not None:
                fixes.append((position, p.key, fix))
        return cls(tuple(p.key for p in picks), tuple(fixes))

    def finish(self, row: list[Any], media: MediaLinks) -> dict[str, Any]:
        """The root object, its links signed as of now."""
        return self.build(row, media.signer())


def _builder(
    keys: tuple[str, ...], fixes: tuple[tuple[int, str, Fix], ...]
) -> Callable[[list[Any], Sign], dict[str, Any]]:
    """`def build(row, sign): return {key0: row[0], key1: fix1(row[1], sign), ...}` for
    these keys and fixes. The source holds only `repr`s of response keys (GraphQL names,
    `[_A-Za-z][_0-9A-Za-z]*`), positions and names of its own; a media URL's fix is
    written out (`_media_url`), the others are called."""
    at = {position: fix for position, _key, fix in fixes}
    namespace: dict[str, Any] = {}
    values = []
    for position, key in enumerate(keys):
        fix = at.get(position)
        if fix is None:
            value = f"row[{position}]"
        elif fix is _media_url:
            value = f"(sign(v) if (v := row[{position}]).__class__ is str else v[0])"
        else:
            namespace[f"fix{position}"] = fix
            value = f"fix{position}(row[{position}], sign)"
        values.append(f"{key!r}: {value}")
    source = f"def build(row, sign):\n    return {{{', '.join(values)}}}\n"
    exec(source, namespace)  # noqa: S102  (our own source, from names checked above)
    built: Callable[[list[Any], Sign], dict[str, Any]] = namespace["build"]
    return built
