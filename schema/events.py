"""What subscriptions send: project events, iteration and animation status."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Self

import strawberry

from schema import ids, nodes
from schema.context import Info
from schema.enums import ProjectEventKind
from schema.node import Node
from schema.storyboard import ImageIteration, ProjectProgress, Shot, ShotImage, StoryboardSelection
from services import cursors
from services.realtime import events

_CURSOR = "ProjectEvent"

# Columns whose GraphQL field has another name; every other column's field is its
# name in camelCase.
FIELD_NAMES = {
    "storage_key": "imageUrl",
    "image_url": "imageUrl",
    "video_storage_key": "animatedVideoUrl",
    "animated_video_url": "animatedVideoUrl",
    "generation_metadata": "metadata",
    "selected_image_id": "selectedImage",
    "parent_image_id": "parentImage",
    "source_asset_id": "sourceAsset",
    "shot_id": "shot",
    "scene_id": "scene",
    "project_id": "project",
    "team_id": "team",
    "owner_id": "owner",
}


def field_name(column: str) -> str:
    """The GraphQL field of a table column (`scene_number` -> `sceneNumber`).

    A name that is already a field (events stored before columns were recorded
    hold field names) comes back unchanged.
    """
    if column in FIELD_NAMES:
        return FIELD_NAMES[column]
    head, *rest = column.split("_")
    return head + "".join(part.title() for part in rest)


def field_names(columns: Iterable[str]) -> list[str]:
    """The GraphQL fields of changed columns, each once, in order (two columns may share one)."""
    return list(dict.fromkeys(field_name(column) for column in columns))


MAX_CURSOR_LENGTH = 200


def encode_cursor(project_id: int, sequence: int) -> str:
    return cursors.encode_numbers(_CURSOR, project_id, sequence)


def decode_cursor(cursor: str, project_id: int) -> int | None:
    """The sequence number in a cursor of this project's events; None if it is not one.

    Never raises: the sequence is ASCII digits within a BIGINT, whatever was sent."""
    decoded = cursors.decode_numbers(
        cursor, _CURSOR, 2, max_length=MAX_CURSOR_LENGTH, high=ids.MAX_PK
    )
    if decoded is None or decoded[0] != project_id:
        return None
    return decoded[1]


@strawberry.type(
    description="One change in a project. `kind` is the node's type and what happened to it, "
    "such as SCENE_CREATED, SHOT_IMAGE_UPDATED or STORYBOARD_SELECTION_DELETED; "
    "PROJECT_DELETED ends the feed, and SNAPSHOT (first, when subscribing without `after`) "
    "marks the point the feed starts from."
)
class ProjectEvent:
    cursor: str = strawberry.field(
        description="Pass as `after` to resume right after this event, missing nothing."
    )
    sequence: int = strawberry.field(
        description="The event's number in its project: 1, 2, 3... with no gaps."
    )
    kind: ProjectEventKind = strawberry.field(description="What happened, e.g. SHOT_IMAGE_UPDATED.")
    node_id: strawberry.ID = strawberry.field(
        description="The ID of the object it happened to, even once that is deleted."
    )
    changes: list[str] = strawberry.field(
        description="For *_UPDATED events, the fields that changed (e.g. status, imageUrl)."
    )
    at: datetime = strawberry.field(description="When the change was committed.")
    project_id: strawberry.ID = strawberry.field(description="The project it happened in.")
    event: strawberry.Private[events.ProjectEvent]

    @classmethod
    def from_event(cls, event: events.ProjectEvent) -> Self:
        return cls(
            cursor=encode_cursor(event.project_id, event.sequence),
            sequence=event.sequence,
            kind=ProjectEventKind(event.kind),
            node_id=ids.encode(event.node_type, event.node_id),
            changes=field_names(event.changes),
            at=event.at,
            project_id=ids.encode("Project", event.project_id),
            event=event,
        )

    @strawberry.field(
        description="The object as it is now, read when the event is sent; null once deleted."
    )
    async def node(self, info: Info) -> Node | None:
        if self.event.change == events.DELETED or self.event.kind == events.PROJECT_DELETED:
            return None
        return await nodes.resolve(info, self.event.node_type, self.event.node_id)


@strawberry.type(
    description="A shot's iterations: first as they are (image null), then after each change "
    "of one of its images (that image)."
)
class IterationStatusEvent:
    cursor: str = strawberry.field(description="The project event this message follows.")
    shot: Shot = strawberry.field(description="The shot.")
    iterations: list[ImageIteration] = strawberry.field(
        description="Every iteration of the shot, as it is now."
    )
    image: ShotImage | None = strawberry.field(
        description="The image that changed; null in the first message or if it was deleted."
    )


@strawberry.type(
    description="A project's storyboard and progress: first as they are (selection null), then "
    "after each change of a selection or its animation (that selection)."
)
class AnimationStatusEvent:
    cursor: str = strawberry.field(description="The project event this message follows.")
    selections: list[StoryboardSelection] = strawberry.field(
        description="The storyboard as it is now: every selection, by scene, then shot."
    )
    selection: StoryboardSelection | None = strawberry.field(
        description="The selection that changed; null in the first message or if it was deleted."
    )
    progress: ProjectProgress = strawberry.field(description="The project's progress, now.")
