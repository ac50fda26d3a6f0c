"""Housekeeping every server process runs now and then: old events, expired tokens,
expired invitations and webhook deliveries too old to be needed.

Several processes may run it at once; each step is a plain delete, so they never
conflict beyond one of them finding nothing left to do.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from services.accounts import accounts, invitations
from services.database import Database
from services.generation.engine import DELIVERY_RETENTION, prune_deliveries
from services.realtime import library_events, recording, team_events

logger = logging.getLogger("studio.maintenance")


@dataclass(frozen=True)
class Tidied:
    """What one `tidy` round removed: counts of rows deleted (project events, access
    tokens, invitations, webhook deliveries, library events, team events); all 0 when
    there was nothing to do."""

    events: int
    tokens: int
    invitations: int = 0
    deliveries: int = 0
    library_events: int = 0
    team_events: int = 0


DELIVERY_BATCH = 1000
"""Webhook deliveries deleted per transaction (`prune_deliveries`)."""


async def tidy(
    db: Database, *, event_retention: timedelta, delivery_batch: int = DELIVERY_BATCH
) -> Tidied:
    """One round: project, library and team events older than the retention, then tokens and
    invitations past their expiry, then webhook deliveries recorded over
    DELIVERY_RETENTION ago.

    A transaction per step, each committed on its own; deliveries go in batches of
    `delivery_batch` rows, a transaction each, until a batch comes back short. Logs
    a line when anything was removed. Database errors propagate (`run_forever` logs them).
    """
    async with db.transaction() as session:
        pruned = await recording.prune(session, older_than=event_retention)
    async with db.transaction() as session:
        library = await library_events.prune(session, older_than=event_retention)
    async with db.transaction() as session:
        team = await team_events.prune(session, older_than=event_retention)
    async with db.transaction() as session:
        purged = await accounts.purge_expired_tokens(session)
    async with db.transaction() as session:
        lapsed = await invitations.purge_expired(session)
    delivered = 0
    while True:
        async with db.transaction() as session:
            batch = await prune_deliveries(
                session, older_than=DELIVERY_RETENTION, limit=delivery_batch
            )
        delivered += batch
        if batch < delivery_batch:
            break
    if pruned or purged or lapsed or delivered or library or team:
        logger.info(
            "removed %d old project events, %d old library events, %d old team events, "
            "%d expired tokens, %d expired invitations and %d old webhook deliveries",
            pruned,
            library,
            team,
            purged,
            lapsed,
            delivered,
        )
    return Tidied(
        events=pruned,
        tokens=purged,
        invitations=lapsed,
        deliveries=delivered,
        library_events=library,
        team_events=team,
    )


async def run_forever(db: Database, *, event_retention: timedelta, every: float = 600.0) -> None:
    """Tidy at start-up and then every `every` seconds, for as long as the server runs."""
    while True:
        try:
            await tidy(db, event_retention=event_retention)
        except Exception:
            logger.exception("housekeeping failed; trying again later")
        await asyncio.sleep(every)
