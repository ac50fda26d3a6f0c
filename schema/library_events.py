"""What the `libraryEvents` subscription sends: one change in a team's library."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import Self

import strawberry

from schema import ids
from schema.context import Info
from schema.events import MAX_CURSOR_LENGTH
from schema.library import Asset, load_asset
from services import cursors
from services.realtime import library_events
from services.realtime.events import SNAPSHOT

_CURSOR = "LibraryEvent"


# The kinds `services.realtime.library_events` records; tests/test_library_events.py
# checks that the two lists stay the same.
@strawberry.enum(
    description="What happened in a team's library: an asset was created, updated, deleted "
    "or shared (a share of it made, changed or revoked), or SNAPSHOT, where a feed starts."
)
class LibraryEventKind(Enum):
    SNAPSHOT = strawberry.enum_value(
        "SNAPSHOT",
        description="Not a change: the first event of a feed subscribed to without `after`; "
        "its cursor marks where the feed starts.",
    )
    ASSET_CREATED = strawberry.enum_value("ASSET_CREATED", description="A new asset.")
    ASSET_UPDATED = strawberry.enum_value(
        "ASSET_UPDATED", description="An asset changed; `changes` names the fields."
    )
    ASSET_DELETED = strawberry.enum_value(
        "ASSET_DELETED", description="An asset was deleted; `asset` is null."
    )
    ASSET_SHARED = strawberry.enum_value(
        "ASSET_SHARED",
        description="A share of the asset was made, changed (`changes` names the share's "
        "fields) or revoked. Sent to the asset's admins and to the user the share is to.",
    )


# Columns whose GraphQL field (of Asset, or of a share) has another name; every other
# column's field is its name in camelCase.
FIELD_NAMES = {
    "storage_key": "fileUrl",
    "thumbnail_key": "thumbnailUrl",
    "team_id": "team",
    "creator_id": "creator",
    "project_id": "sourceProject",
    "parent_id": "parent",
    "root_id": "root",
    "shared_by_id": "sharedBy",
    "user_id": "user",
    "asset_id": "asset",
}


def field_names(columns: Iterable[str]) -> list[str]:
    """The GraphQL fields of changed asset (or share) columns, each once, in order."""
    names = []
    for column in columns:
        head, *rest = column.split("_")
        names.append(FIELD_NAMES.get(column, head + "".join(part.title() for part in rest)))
    return list(dict.fromkeys(names))


def encode_cursor(team_id: int, sequence: int) -> str:
    """The cursor of the team's library event numbered `sequence`."""
    return cursors.encode_numbers(_CURSOR, team_id, sequence)


def decode_cursor(cursor: str, team_id: int) -> int | None:
    """The sequence number in a cursor of this team's library events; None if it is not
    one (another team's, a project event's, garbage). Never raises."""
    decoded = cursors.decode_numbers(
        cursor, _CURSOR, 2, max_length=MAX_CURSOR_LENGTH, high=ids.MAX_PK
    )
    if decoded is None or decoded[0] != team_id:
        return None
    return decoded[1]


@strawberry.type(
    description="One change in a team's library, as the viewer may see it: assets created, "
    "updated, deleted and shared, in order, each with a cursor. Only changes of assets the "
    "viewer may see when the event is sent reach them (a deletion: those who could see it)."
)
class LibraryEvent:
    cursor: str = strawberry.field(
        description="Pass as `after` to resume right after this event, missing nothing."
    )
    sequence: int = strawberry.field(
        description="The event's number in its team's library: increasing, each once. "
        "Numbers of events the viewer may not see are skipped."
    )
    kind: LibraryEventKind = strawberry.field(description="What happened.")
    asset_id: strawberry.ID | None = strawberry.field(
        description="The ID of the asset it happened to, even once deleted; null for SNAPSHOT."
    )
    changes: list[str] = strawberry.field(
        description="For ASSET_UPDATED the asset's fields that changed (e.g. name, tags); for "
        "ASSET_SHARED the share's (e.g. permission, expiresAt), empty when it was made or revoked."
    )
    recipient_id: strawberry.ID | None = strawberry.field(
        description="For ASSET_SHARED, the user the share is to; null for other kinds."
    )
    at: datetime = strawberry.field(description="When the change was committed.")
    team_id: strawberry.ID = strawberry.field(description="The team whose library it is.")
    event: strawberry.Private[library_events.LibraryEvent]

    @classmethod
    def from_event(cls, event: library_events.LibraryEvent) -> Self:
        """The message for a recorded (or SNAPSHOT) event."""
        snapshot = event.kind == SNAPSHOT
        return cls(
            cursor=encode_cursor(event.team_id, event.sequence),
            sequence=event.sequence,
            kind=LibraryEventKind(event.kind),
            asset_id=None if snapshot else ids.encode("Asset", event.asset_id),
            changes=field_names(event.changes),
            recipient_id=(
                None if event.recipient_id is None else ids.encode("User", event.recipient_id)
            ),
            at=event.at,
            team_id=ids.encode("Team", event.team_id),
            event=event,
        )

    @strawberry.field(
        description="The asset as it is now, read when the event is sent; null once it is "
        "deleted, or when the viewer may not see it (a share revoked or expired)."
    )
    async def asset(self, info: Info) -> Asset | None:
        if self.event.kind in (SNAPSHOT, library_events.ASSET_DELETED):
            return None
        return await load_asset(info, self.event.asset_id)
