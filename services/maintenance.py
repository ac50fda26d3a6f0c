"""Housekeeping every server process runs now and then: old events, expired tokens
and expired invitations.

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
from services.realtime import recording

logger = logging.getLogger("studio.maintenance")


@dataclass(frozen=True)
class Tidied:
    """What one `tidy` round removed: counts of rows deleted (project events, access
    tokens, invitations); all 0 when there was nothing to do."""

    events: int
    tokens: int
    invitations: int = 0


async def tidy(db: Database, *, event_retention: timedelta) -> Tidied:
    """One round: events older than the retention, then tokens and invitations past their
    expiry.

    Three transactions, one per step, each committed on its own; logs a line when
    anything was removed. Database errors propagate (`run_forever` logs them).
    """
    async with db.transaction() as session:
        pruned = await recording.prune(session, older_than=event_retention)
    async with db.transaction() as session:
        purged = await accounts.purge_expired_tokens(session)
    async with db.transaction() as session:
        lapsed = await invitations.purge_expired(session)
    if pruned or purged or lapsed:
        logger.info(
            "removed %d old project events, %d expired tokens and %d expired invitations",
            pruned,
            purged,
            lapsed,
        )
    return Tidied(events=pruned, tokens=purged, invitations=lapsed)


async def run_forever(db: Database, *, event_retention: timedelta, every: float = 600.0) -> None:
    """Tidy at start-up and then every `every` seconds, for as long as the server runs."""
    while True:
        try:
            await tidy(db, event_retention=event_retention)
        except Exception:
            logger.exception("housekeeping failed; trying again later")
        await asyncio.sleep(every)
