"""Project events: every change to a project's data, recorded, numbered and published.

This module holds the event itself (`ProjectEvent`, its kinds and channels);
`services.realtime.recording` records and publishes events, and
`services.realtime.feed` follows them.

This package is the one place that turns changes into events; no service or resolver
writes or publishes one by hand.

- Recording. A hook on every flush notes which projects, scenes, shots, images
  and selections were created, changed (and which of their fields) or deleted.
  When a write transaction ends, `recording.record` numbers those changes per project and
  writes them to `project_events` in the same transaction, so an event exists
  if and only if its change was committed.
- Ordering. A project's numbers come from its row in `project_event_counters`,
  updated last in the transaction: the row lock it takes is held until commit,
  so a project's events are committed in the order of their numbers, and a
  reader that has seen number n has seen every number below it. Taking it last
  means it never waits while holding it, so it cannot join a deadlock.
- Publishing. After the commit, `Database.transaction()` hands the events to the
  bus (`publish`), which sends them from its own task: the writer does not wait
  for the bus or for subscribers. Events carry ids, never whole rows. A publish
  that fails loses nothing: followers notice the gap, or are told to resync, and
  read the table.
- Following. `feed.follow` is the ordered, gapless stream of one project's events
  that every subscription is built on (`feed.follow_stream` of a `ProjectStream`; a
  team's library events and a team's own events are followed the same way); see its
  docstring.

Access changes (a member removed, a token revoked) are published the same way,
to the user they concern, so that user's open subscriptions re-check access. A
token's expiry is published by no one: it is known in advance, so each feed
re-checks at that instant (`feed.follow`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from services.tables import (
    ProjectEventRow,
    StudioRow,
)

CREATED, UPDATED, DELETED = "CREATED", "UPDATED", "DELETED"

BOOKKEEPING = frozenset(
    {
        "dispatch_claimed_at",
        "dispatch_claimed_by",
        "submitted_at",
        "failed_tries",
        "resubmissions",
        "attempt_id",  # which attempt a create's answer belongs to (services.generation)
        "copy_attempts",
        "animation_metadata",  # the provider input of an animation: not a GraphQL field
        "imported",  # set once, when an image is recorded
        "checked_at",
        "provider_output",
        "updated_at",
        "created_at",
    }
)
"""Columns no client sees (generation bookkeeping, timestamps): changing only these is
not an event, in a project or a library."""
SNAPSHOT = "SNAPSHOT"
PROJECT_DELETED = "PROJECT_DELETED"


async def studio_id(session: AsyncSession) -> str:
    """This studio's id (made by the migrations): the namespace of its bus channels."""
    row = await session.get(StudioRow, 1)
    if row is None:
        raise RuntimeError("the studio table is empty: run the migrations")
    return row.studio_id


def project_channel(project_id: int) -> str:
    """The bus channel of a project's events, `project:<id>`: every `ProjectEvent.message`
    of the project is published on it (the bus prefixes its namespace)."""
    return f"project:{project_id}"


def access_channel(user_id: int) -> str:
    """The bus channel of a user's access notices, `access:<id>`: `{"access": "changed"}`
    when one of their memberships or tokens changes, so their feeds re-check access."""
    return f"access:{user_id}"


def kind_of(node_type: str, change: str) -> str:
    """`ShotImage` + `UPDATED` is `SHOT_IMAGE_UPDATED`."""
    return f"{re.sub(r'(?<!^)(?=[A-Z])', '_', node_type).upper()}_{change}"


@dataclass(frozen=True)
class ProjectEvent:
    """One numbered change in a project (or, with kind SNAPSHOT, the point a feed starts at)."""

    project_id: int
    sequence: int
    kind: str
    node_type: str
    node_id: int
    at: datetime
    shot_id: int | None = None
    # For *_UPDATED: the columns that changed (events stored by earlier versions hold
    # GraphQL field names instead); `schema.events.field_names` names both as fields.
    changes: tuple[str, ...] = ()

    @property
    def change(self) -> str:
        """The last word of `kind`: CREATED, UPDATED or DELETED (PROJECT_DELETED gives
        DELETED; SNAPSHOT gives SNAPSHOT)."""
        return self.kind.rsplit("_", 1)[-1]

    def message(self) -> dict[str, Any]:
        """The event as the bus carries it: a JSON-ready dict with keys project, sequence,
        kind, type, id, shot (the shot of an image or selection, else None), changes (a list
        of names) and at (ISO 8601 with its UTC offset). `from_message` reads it back.
        """
        return {
            "project": self.project_id,
            "sequence": self.sequence,
            "kind": self.kind,
            "type": self.node_type,
            "id": self.node_id,
            "shot": self.shot_id,
            "changes": list(self.changes),
            "at": self.at.isoformat(),
        }

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> ProjectEvent:
        """The event a `message()` dict describes (as decoded from the bus).

        Raises KeyError for a missing key, ValueError or TypeError for a value of the
        wrong shape (an id that is no integer, a time that is no ISO 8601 string).
        """
        return cls(
            project_id=int(message["project"]),
            sequence=int(message["sequence"]),
            kind=str(message["kind"]),
            node_type=str(message["type"]),
            node_id=int(message["id"]),
            at=datetime.fromisoformat(message["at"]),
            shot_id=None if message.get("shot") is None else int(message["shot"]),
            changes=tuple(message.get("changes") or ()),
        )

    @classmethod
    def from_row(cls, row: ProjectEventRow) -> ProjectEvent:
        """The event a stored `project_events` row holds (NULL `changes` reads as ())."""
        return cls(
            project_id=row.project_id,
            sequence=row.sequence,
            kind=row.kind,
            node_type=row.node_type,
            node_id=row.node_id,
            at=row.at,
            shot_id=row.shot_id,
            changes=tuple(row.changes or ()),
        )
