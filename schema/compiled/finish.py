"""The one pass over a compiled read's JSON that puts in what SQL leaves raw.

`Finisher.for_picks` works out, once per plan, which response keys hold a raw value
(see `schema.compiled.sql`) and which branches lead to one; `apply` then visits
only those: global IDs from primary keys (`schema.ids.encode`), media URLs signed
from `[storage key, recorded URL]` pairs (`MediaLinks.url_for`, as
`ShotImage.imageUrl` does) or from stored preview keys (`thumbnailUrl`), dates in
the `DateTime` scalar's form, and `ProjectProgress` from its counts (through
`ProjectProgress.from_progress`, as the resolvers do).
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

# A raw value and the links to sign with: the finished value.
Fix = Callable[[Any, MediaLinks], Any]

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


def _global_id(type_name: str) -> Fix:
    return lambda pk, _media: ids.encode(type_name, pk)


def _media_url(pair: Any, media: MediaLinks) -> Any:
    storage_key, recorded = pair
    return media.url_for(storage_key) if storage_key else recorded


def _thumbnail_url(key: Any, media: MediaLinks) -> Any:
    return media.url_for(key) if key else None


def _moment(raw: Any, _media: MediaLinks) -> Any:
    """A `DateTime` as the scalar gives it (`isoformat` of the aware UTC value) from the
    column's JSON text: ISO 8601 with an offset on PostgreSQL, naive UTC on SQLite."""
    moment = datetime.fromisoformat(raw)
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat()


def _progress(picks: tuple[Pick, ...]) -> Fix:
    def fix(counts: Any, _media: MediaLinks) -> dict[str, Any]:
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


@dataclass(frozen=True)
class Finisher:
    """What to do to one object of the result: `fixes` rewrite a key's raw value;
    `objects` and `lists` lead to child objects that need work of their own."""

    fixes: tuple[tuple[str, Fix], ...]
    objects: tuple[tuple[str, Finisher], ...]
    lists: tuple[tuple[str, Finisher], ...]

    @property
    def idle(self) -> bool:
        return not (self.fixes or self.objects or self.lists)

    @classmethod
    def for_picks(cls, type_name: str, picks: tuple[Pick, ...]) -> Finisher:
        """The work for objects of `type_name` built from `picks`."""
        fixes: list[tuple[str, Fix]] = []
        objects: list[tuple[str, Finisher]] = []
        lists: list[tuple[str, Finisher]] = []
        for p in picks:
            if p.field == "id":
                fixes.append((p.key, _global_id(type_name)))
            elif p.field in ("imageUrl", "animatedVideoUrl"):
                fixes.append((p.key, _media_url))
            elif p.field == "thumbnailUrl":
                fixes.append((p.key, _thumbnail_url))
            elif p.field in ("createdAt", "updatedAt"):
                fixes.append((p.key, _moment))
            elif p.field == "progress":
                fixes.append((p.key, _progress(p.children)))
            elif p.children:
                child_type = COMPILABLE[type_name][p.field]
                assert child_type is not None
                child = cls.for_picks(child_type, p.children)
                if child.idle:
                    continue
                many = p.field in ("scenes", "shots", "iterations", "images", "selections")
                (lists if many else objects).append((p.key, child))
        return cls(tuple(fixes), tuple(objects), tuple(lists))

    def apply(self, value: dict[str, Any], media: MediaLinks) -> None:
        """Finish `value` (one object, as SQL built it) in place."""
        for key, fix in self.fixes:
            value[key] = fix(value[key], media)
        for key, child in self.objects:
            item = value[key]
            if item is not None:
                child.apply(item, media)
        for key, child in self.lists:
            for item in value[key]:
                child.apply(item, media)
