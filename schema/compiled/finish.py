"""The one pass that turns a compiled read's JSON into the response's value.

SQL builds each object as an array of its values in the order of its picks (see
`schema.compiled.sql`). `Shape.for_picks` works out once per plan what each
position holds; `build` then makes each object a dict under the response keys, in
the order asked, putting in what SQL left raw: media URLs signed from
`[storage key, recorded URL]` pairs (`MediaLinks.url_for`, as `ShotImage.imageUrl`
and `StoryboardSelection.animatedVideoUrl` do) or from stored preview keys
(`thumbnailUrl`), global IDs from primary keys where SQL did not write them
(`schema.ids.encode`), dates in the `DateTime` scalar's form, and `ProjectProgress`
from its counts (through `ProjectProgress.from_progress`, as the resolvers do).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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


def _media_url(pair: Any, sign: Sign) -> Any:
    storage_key, recorded = pair
    return sign(storage_key) if storage_key else recorded


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
    its positions; `fixes` (position, key, fix) rewrite the raw values that need it."""

    keys: tuple[str, ...]
    fixes: tuple[tuple[int, str, Fix], ...]

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

    def build(self, row: list[Any], sign: Sign) -> dict[str, Any]:
        """The object (a dict in the response's key order) from its array of values;
        `sign`: the response's signer (`MediaLinks.signer`)."""
        value = dict(zip(self.keys, row, strict=False))  # the same picks made both
        for position, key, fix in self.fixes:
            value[key] = fix(row[position], sign)
        return value

    def finish(self, row: list[Any], media: MediaLinks) -> dict[str, Any]:
        """The root object, its links signed as of now."""
        return self.build(row, media.signer())
