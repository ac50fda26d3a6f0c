"""Submitting generations: claiming pending rows fairly, creating predictions, adopting lost ones.

See `services.generation.engine` for the rules (claims, fair shares, no duplicate
creates, bounded tries).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, update
from sqlmodel import col, select

from services.errors import (
    ProviderRejected,
    ProviderUnavailable,
    StudioError,
)
from services.generation import catalog
from services.generation.kinds import GENERATION_TABLES, status_column, work_owner
from services.generation.provider_inputs import ProviderInputs
from services.generation.statuses import Row, load_row, set_status, status_of
from services.replicate.gateway import Prediction
from services.tables import GenerationStatus, utcnow

if TYPE_CHECKING:
    from services.database import Database
    from services.generation.engine import EngineSettings
    from services.media.storage import Storage
    from services.replicate.gateway import ReplicateGateway

logger = logging.getLogger("studio.generation")

GIVE_UP_AFTER = timedelta(minutes=15)


def known_dead(owner: str, me: str) -> bool:
    """Whether the server named `owner` surely stopped: on this host, no such process.

    A claim from another host cannot be checked from here: it waits out its timeout.
    """
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != me.partition(":")[0] or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return owner != me  # an earlier start of a process that got our id
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    return False


class Dispatching(ProviderInputs):
    """The engine's submitting of pending generations (a part of `GenerationEngine`)."""

    # Set by GenerationEngine.__init__.
    db: Database
    gateway: ReplicateGateway
    storage: Storage
    settings: EngineSettings
    instance: str
    _uploads: dict[str, tuple[str, float]]

    if TYPE_CHECKING:  # defined by GenerationEngine and OutputCopying

        def cancel_remote(self, prediction_id: str | None) -> None:
            """`GenerationEngine.cancel_remote`: stop a prediction in the background."""

        async def apply(self, prediction: Prediction) -> None:
            """`GenerationEngine.apply`: bring our rows up to date with a prediction."""

        async def _finish(
            self,
            table: type[Row],
            row_id: int,
            status: GenerationStatus,
            *,
            attempt: str | None,
            error: str | None = None,
        ) -> None: ...

    async def _claim(self, table: type[Row], status_column: Any) -> list[int]:
        """Claim up to a batch of unsubmitted PENDING rows for this process, fairly.

        Rows are ranked by age within the work of one user (the owner of the
        row's project; an asset's creator: `kinds.work_owner`), and taken by
        rank: every user's oldest first, then every user's second, and so on.
        By user, not by team: anyone can create teams, so ranking by team let
        one user with forty teams take forty turns before another team's single
        image. (A user's teams are one share; someone who
        signs up many accounts gets a share per account, bounded by the signUp
        rate per address.) A row is free when
        unclaimed, when its claim is older than `claim_timeout`, or when the
        server holding it is known to be dead.
        """
        now = utcnow()
        stale = now - timedelta(seconds=self.settings.claim_timeout)
        async with self.db.session() as session:
            holders = (
                await session.exec(
                    select(table.dispatch_claimed_by)
                    .where(
                        status_column == GenerationStatus.PENDING,
                        col(table.prediction_id).is_(None),
                        col(table.dispatch_claimed_at) >= stale,
                        col(table.dispatch_claimed_by).is_not(None),
                    )
                    .distinct()
                )
            ).all()
            dead = [h for h in holders if h is not None and known_dead(h, self.instance)]
            free = or_(
                col(table.dispatch_claimed_at).is_(None),
                col(table.dispatch_claimed_at) < stale,
                col(table.dispatch_claimed_by).in_(dead),
            )
            owner, joins = work_owner(table)
            rank = func.row_number().over(partition_by=owner, order_by=col(table.id)).label("rank")
            ranked: Any = select(col(table.id).label("id"), rank).where(
                status_column == GenerationStatus.PENDING,
                col(table.prediction_id).is_(None),
                free,
                *joins,
            )
            fair = ranked.subquery()
            candidates = (
                await session.exec(
                    select(fair.c.id).order_by(fair.c.rank, fair.c.id).limit(self.settings.batch)
                )
            ).all()
        claimed = []
        for row_id in candidates:
            async with self.db.transaction() as session:
                result = await session.exec(
                    update(table)
                    .where(
                        col(table.id) == row_id,
                        col(table.prediction_id).is_(None),
                        status_column == GenerationStatus.PENDING,
                        free,
                    )
                    .values(dispatch_claimed_at=now, dispatch_claimed_by=self.instance)
                )
                if result.rowcount == 1:
                    claimed.append(int(row_id))
        return claimed

    async def dispatch_pending(self) -> None:
        """Submit every PENDING generation not yet sent: shot images, animations, then
        assets (`kinds.GENERATION_TABLES`).

        Claims rows a batch (`settings.batch`) at a time for this process (`_claim`:
        fair shares across users, stale or dead claims taken over) and, for each,
        sends the create (`gateway.create`, with the webhook URL if configured) and
        records the prediction id, each row in its own transactions. Stops while the
        provider's circuit breaker is open. Raises nothing for one row's trouble: a
        rejected create (or an input that cannot be built) makes the row FAILED; an
        unreachable provider releases it for a later sweep (FAILED once the row is
        older than `GIVE_UP_AFTER`, 15 minutes); anything else
        counts as a failed try (`max_tries` in a row: FAILED). A database failure
        while claiming propagates (the sweep logs it). Each row's changes commit in
        transactions of their own, which record and publish its project events
        (`Database.transaction`).
        """
        for table in GENERATION_TABLES:
            while not self.gateway.breaker.is_open:
                claimed = await self._claim(table, status_column(table))
                for row_id in claimed:
                    await self._submit_isolated(table, row_id)
                if len(claimed) < self.settings.batch:
                    break  # a full batch means more may be waiting: claim again now

    async def _submit_isolated(self, table: type[Row], row_id: int) -> None:
        """Submit one row; whatever it raises is that row's failed try, not the sweep's.

        Counted only while the row is still this server's claim: a row started again
        or discarded meanwhile (which drops the claim) is left alone.
        """
        try:
            await self._submit(table, row_id)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            logger.exception("%s %s: submitting failed", table.__tablename__, row_id)
            await self._failed_try(
                table,
                row_id,
                error,
                doing="submitted",
                belongs=lambda row: row.dispatch_claimed_by == self.instance,
            )

    async def _failed_try(
        self,
        table: type[Row],
        row_id: int,
        error: Exception,
        *,
        doing: str,
        belongs: Callable[[Row], bool] | None = None,
    ) -> None:
        """Count a failed try against one row; at `max_tries` in a row it is FAILED.

        Short of that the row is released (its claim dropped) for the next sweep.
        `belongs`, given, tells whether the row is still in the generation that
        failed (its attempt, its prediction); a row it says no to is left alone.
        """
        stopped: str | None = None
        try:
            async with self.db.transaction() as session:
                row = await load_row(session, table, row_id, lock=True)
                if row is None or not (status := status_of(row)) or not status.is_active:
                    return
                if belongs is not None and not belongs(row):
                    return
                row.failed_tries = (row.failed_tries or 0) + 1
                if row.prediction_id is None:
                    row.dispatch_claimed_at = None
                    row.dispatch_claimed_by = None
                if row.failed_tries >= self.settings.max_tries:
                    reason = error.message if isinstance(error, StudioError) else "internal error"
                    set_status(
                        row,
                        GenerationStatus.FAILED,
                        error=f"This generation could not be {doing} after "
                        f"{row.failed_tries} tries ({reason}); it was stopped. "
                        "Check its parameters, then retry it.",
                    )
                    stopped = row.prediction_id
        except Exception:
            logger.exception("%s %s: could not record a failed try", table.__tablename__, row_id)
        self.cancel_remote(stopped)  # a prediction we gave up following should not run on

    async def _submit(self, table: type[Row], row_id: int) -> None:
        """Send the create for the row's current attempt and record its answer.

        The attempt (`attempt_id`) is read first; every later step acts on the row
        only while it is still in that attempt.
        """
        async with self.db.session() as session:
            row = await load_row(session, table, row_id)
            if row is None or status_of(row) is not GenerationStatus.PENDING or row.prediction_id:
                return
            attempt = row.attempt_id
            open_since = row.submitted_at
            try:
                model_name, model_input = await self._input_for(session, row)
            except StudioError as error:
                await self._finish(
                    table, row_id, GenerationStatus.FAILED, error=error.message, attempt=attempt
                )
                return
        if open_since is not None:
            # A create was sent before and its answer never recorded: it may exist.
            try:
                adopted = await self._adopt(
                    table, row_id, model_name, model_input, since=open_since
                )
            except ProviderUnavailable:
                await self._release_or_give_up(table, row_id, attempt)
                return
            if adopted is not None:
                await self._record(table, row_id, attempt, adopted)
                return
        async with self.db.transaction() as session:
            row = await load_row(session, table, row_id, lock=True)
            if (
                row is None
                or row.attempt_id != attempt
                or status_of(row) is not GenerationStatus.PENDING
                or row.prediction_id
            ):
                return  # discarded or started again since it was read: nothing sent
            # Written before the create is sent: after a crash, the next claim knows
            # to look for the prediction instead of creating a second one.
            row.submitted_at = utcnow()
        try:
            prediction = await self.gateway.create(
                model_name,
                model_input,
                webhook=self.settings.webhook_url,
                events=("start", "completed"),
            )
        except ProviderRejected as error:
            await self._finish(
                table, row_id, GenerationStatus.FAILED, error=error.message, attempt=attempt
            )
            return
        except ProviderUnavailable:
            await self._release_or_give_up(table, row_id, attempt)
            return
        await self._record(table, row_id, attempt, prediction)

    async def _record(
        self, table: type[Row], row_id: int, attempt: str | None, prediction: Prediction
    ) -> None:
        """Note the prediction on the row it was created for, then apply it; or cancel it.

        Recorded only while the row is still in `attempt`, the attempt the create was
        sent for, PENDING, and following no other prediction. A row deleted, canceled,
        whose master image changed, or started again meanwhile (another attempt, or
        none) does not get it: the prediction was made from what the row no longer
        is (an old master, old parameters), so it is canceled at the provider.
        """
        async with self.db.transaction() as session:
            # Locked: a write discarding the row's generation either came first (and is
            # seen here) or waits, and then sees this prediction's id to cancel.
            row = await load_row(session, table, row_id, lock=True)
            if (
                row is None
                or row.attempt_id != attempt
                or status_of(row) is not GenerationStatus.PENDING
                or row.prediction_id not in (None, prediction.id)
            ):
                logger.info(
                    "%s %s: prediction %s answers a generation that was discarded or "
                    "started again meanwhile; canceling it",
                    table.__tablename__,
                    row_id,
                    prediction.id,
                )
                self.cancel_remote(prediction.id)
                return
            row.prediction_id = prediction.id
            row.submitted_at = None
            row.failed_tries = 0
            row.checked_at = utcnow()
            row.updated_at = utcnow()
        await self.apply(prediction)

    async def _adopt(
        self,
        table: type[Row],
        row_id: int,
        model_name: str,
        model_input: dict[str, Any],
        *,
        since: datetime,
    ) -> Prediction | None:
        """Our own earlier create for this row, if the provider has it; extra copies canceled.

        A prediction is ours when it has our model and every input we send, except
        an input image (its upload URL differs each time). Rows that send no seed
        could match another row's prediction: those adopt only an unambiguous match.
        Raises `ProviderUnavailable` when the provider cannot be asked (the row is
        released and tried again later, never created twice blindly).
        """
        model = catalog.by_replicate_model(model_name)
        image_key = model.image_input if model is not None else None
        mine = {key: value for key, value in model_input.items() if key != image_key}
        recent = await self.gateway.recent(
            since=since - timedelta(seconds=self.settings.clock_slack)
        )
        matches = [
            prediction
            for prediction in recent
            if prediction.model in (model_name, None)
            # Canceled ones are never adopted: we cancel the creates of discarded
            # attempts, whose inputs may match this one's but for the image.
            and prediction.status != "canceled"
            and all(prediction.input.get(key) == value for key, value in mine.items())
        ]
        if not matches:
            return None
        async with self.db.session() as session:
            owned: set[str | None] = set()
            for other in GENERATION_TABLES:
                found = await session.exec(
                    select(col(other.prediction_id)).where(
                        col(other.prediction_id).in_([m.id for m in matches])
                    )
                )
                owned.update(found)
        matches = [m for m in matches if m.id not in owned]
        if not matches or ("seed" not in mine and len(matches) > 1):
            return None
        matches.sort(key=lambda m: m.created_at or "")
        keep, extra = matches[0], matches[1:]
        logger.info(
            "%s %s: adopting prediction %s sent before a restart",
            table.__tablename__,
            row_id,
            keep.id,
        )
        for prediction in extra:
            if not prediction.is_finished:
                self.cancel_remote(prediction.id)
        return keep

    async def _release_or_give_up(self, table: type[Row], row_id: int, attempt: str | None) -> None:
        async with self.db.transaction() as session:
            row = await load_row(session, table, row_id, lock=True)
            if (
                row is None
                or row.attempt_id != attempt
                or status_of(row) is not GenerationStatus.PENDING
            ):
                return
            if utcnow() - row.created_at > GIVE_UP_AFTER:
                set_status(
                    row,
                    GenerationStatus.FAILED,
                    error="The provider could not be reached; retry when it is back.",
                )
            row.dispatch_claimed_at = None
            row.dispatch_claimed_by = None
