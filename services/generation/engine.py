"""Image iterations, animations and regenerated assets on Replicate, from request to
stored output.

The life of one generation (a shot image, a selection's animation, or a library
asset from `regenerateAsset`; `services.generation.kinds`):

1. A mutation writes it PENDING, with all it needs to be submitted, and commits
   before anything is sent, so clients see it at once and a crash loses nothing.
2. The dispatcher claims it (`dispatch_claimed_at`, so two server instances
   never both submit it), creates the prediction and records its id.
3. Webhooks (when PUBLIC_URL is set) and the poller report progress. The status
   only moves forward: a late "processing" never undoes "succeeded".
4. On success the output is copied into our storage (Replicate deletes outputs
   after an hour) and only then is it COMPLETE. Copies go through the one
   outbound policy (`services.outbound`), are tried a bounded number of times
   (fresh ones first, failed ones after a pause), and the stored type is the
   one sniffed from the bytes. Imported images (`addShotImages`) are copied the
   same way from the client's URL, without any allowance for named hosts.

The poller is also the safety net: at start-up and then periodically it submits
what was never submitted and asks Replicate about everything still running.

Robustness rules:
- Each row is handled on its own: whatever one row raises is logged and counted
  against that row (`failed_tries`), never stops the sweep or touches other rows.
  After `max_tries` failed submissions or polls in a row it is FAILED with an
  error saying so (retryable).
- Fair shares: each claim takes pending rows round-robin across users, each
  row counted as its project owner's work (every user's oldest row first, then
  every user's second, ...), so one user's thousand queued images, spread over
  as many teams as they like, never delay another user's one.
- A claim names its server (`dispatch_claimed_by`: host, process id, a token
  per start). A claim whose server is known dead (same host, no such process)
  is free at once; one from another host waits out `claim_timeout`.
- Replicate has no idempotency key, so a create whose answer was not recorded
  (`submitted_at` set, no prediction id: a crash, a timeout) is looked for before
  creating again: among recent predictions (`GET /v1/predictions`), one with our
  model and our exact input (an image's random seed makes it unique) is adopted,
  and further copies are canceled.
- A prediction the provider no longer knows (404, e.g. an emulator that
  restarted) is submitted again once; lost again, the row is FAILED (retryable).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import delete, insert, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services import decoding
from services.database import Database
from services.errors import (
    ProviderRejected,
    ProviderUnavailable,
    StudioError,
)
from services.generation.dispatch import Dispatching
from services.generation.kinds import GENERATION_TABLES, status_column
from services.generation.outputs import OutputCopying
from services.generation.statuses import (
    Row,
    apply_prediction,
    load_row,
    set_status,
    status_from_provider,
    status_of,
)
from services.library.tables import AssetRow
from services.media.storage import Storage
from services.outbound import (
    AddressPolicy,
    Fetcher,
    FetchLimits,
    host_key,
    parse_allowed_hosts,
)
from services.replicate.gateway import Prediction, ReplicateGateway
from services.replicate.signatures import SigningSecret, claimed, verify
from services.tables import (
    GenerationStatus,
    ShotImageRow,
    StoryboardSelectionRow,
    WebhookDeliveryRow,
    utcnow,
)
from services.validation import json_storable

logger = logging.getLogger("studio.generation")

CLAIM_TIMEOUT = timedelta(minutes=2)
DELIVERY_RETENTION = timedelta(days=2)
"""How long a handled webhook delivery's id is kept (`prune_deliveries`).

A replay of a recorded delivery as it was sent is refused by its timestamp
within ten minutes of its arrival (the Standard Webhooks tolerance, five minutes
either way: `services.replicate.signatures.TOLERANCE_SECONDS`), whether its id
is kept or not. A sender's own retry is signed afresh with a new timestamp and
the same id, so only the kept id stops it; a sender retries a delivery we
recorded only when our 2xx answer was lost. Svix, the reference sender of
Standard Webhooks, retries for 27 h 35 min after the first attempt
(https://docs.svix.com/retries); two days outlasts that with room for clocks
that disagree. A retry later still would be applied again, which is harmless:
`apply_prediction` ignores a move back.
"""


@dataclass(frozen=True)
class EngineSettings:
    """The engine's limits and plain values: seconds for times, counts of rows or tries.

    `output_hosts` are `host[:port]`s whose provider outputs may be fetched
    although they are not public (an emulator's file host); the provider API's
    own host is always one. Client-given URLs never get this allowance.
    """

    webhook_url: str | None = None
    webhook_secret: str | None = None
    poll_interval: float = 2.0
    batch: int = 50
    max_tries: int = 5  # failed submissions or polls in a row before a row is FAILED
    claim_timeout: float = CLAIM_TIMEOUT.total_seconds()
    # How far before a create was sent to look for it among recent predictions:
    # our clock and the provider's may differ a little.
    clock_slack: float = 60.0
    output_hosts: tuple[str, ...] = ()
    fetch_limits: FetchLimits = field(default_factory=FetchLimits)
    copy_max_tries: int = 5
    copy_retry_seconds: float = 10.0
    copy_concurrency: int = 4


def _instance_id() -> str:
    """This server process: host, process id, and a token for this start."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(4)}"


class GenerationEngine(Dispatching, OutputCopying):
    """Submits pending generations, follows running ones, and stores their outputs.

    One per server process; several processes share the work safely.
    """

    def __init__(
        self,
        db: Database,
        gateway: ReplicateGateway,
        storage: Storage,
        settings: EngineSettings,
        *,
        output_fetcher: Fetcher | None = None,
        import_fetcher: Fetcher | None = None,
    ) -> None:
        """Fetchers not given are made here from `settings` (and closed by `stop`)."""
        self.db = db
        self.gateway = gateway
        self.storage = storage
        self.settings = settings
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._side_tasks: set[asyncio.Task[Any]] = set()
        self.signing_secret = SigningSecret(
            gateway.webhook_secret, configured=settings.webhook_secret
        )
        self._uploads: dict[str, tuple[str, float]] = {}
        self.instance = _instance_id()
        self._own_fetchers: list[Fetcher] = []
        if output_fetcher is None:
            provider = httpx.URL(gateway.base_url)
            provider_port = provider.port or (443 if provider.scheme == "https" else 80)
            trusted = parse_allowed_hosts(settings.output_hosts) | {
                host_key(provider.host, provider_port)
            }
            output_fetcher = Fetcher(
                policy=AddressPolicy(allowed_hosts=trusted), limits=settings.fetch_limits
            )
            self._own_fetchers.append(output_fetcher)
        if import_fetcher is None:
            import_fetcher = Fetcher(policy=AddressPolicy(), limits=settings.fetch_limits)
            self._own_fetchers.append(import_fetcher)
        self.output_fetcher = output_fetcher
        self.import_fetcher = import_fetcher
        self._copying_outputs = asyncio.Semaphore(max(1, settings.copy_concurrency))
        self._copying_imports = asyncio.Semaphore(max(1, settings.copy_concurrency))
        self._copies_running: set[tuple[str, int]] = set()

    # -- lifecycle

    def provider_available(self) -> bool:
        """Whether the provider answers now (its circuit breaker is closed)."""
        return not self.gateway.breaker.is_open

    def start(self) -> None:
        """Start the engine's loop as a task on the running event loop: a `sweep` at
        once, then one every `settings.poll_interval` seconds, or sooner after `kick`.
        A failed sweep is logged and the loop goes on. Call once; `stop` ends it.
        """
        self._task = asyncio.create_task(self._run(), name="generation-engine")

    async def stop(self) -> None:
        """Cancel the loop and the background work (copies, remote cancels) and wait for
        them to end, then close the fetchers this engine made itself (not those passed
        in). Rows left half-done are picked up again by later sweeps.
        """
        tasks = [t for t in [self._task, *self._side_tasks] if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for fetcher in self._own_fetchers:
            await fetcher.aclose()

    def kick(self) -> None:
        """Something new to submit: do it now rather than at the next tick."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("generation sweep failed; trying again shortly")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.poll_interval)
            self._wake.clear()

    async def sweep(self) -> None:
        """One round: submit what is pending, copy what finished, ask about what runs.

        A stage that fails is logged and the others still run; copies are only
        scheduled here, so they never hold up the sweep.
        """
        stages: tuple[tuple[str, Callable[[], Awaitable[None]]], ...] = (
            ("submitting", self.dispatch_pending),
            ("copying", functools.partial(self.copy_outputs, wait=False)),
            ("polling", self.poll_running),
        )
        for name, stage in stages:
            try:
                await stage()
            except Exception:
                logger.exception("generation sweep: %s failed", name)

    def cancel_remote(self, prediction_id: str | None) -> None:
        """Ask the provider to stop a prediction, in the background (best effort)."""
        if prediction_id:
            self._spawn(self._cancel_remote(prediction_id))

    async def _cancel_remote(self, prediction_id: str) -> None:
        try:
            await self.gateway.cancel(prediction_id)
        except StudioError as error:
            logger.warning("could not cancel prediction %s: %s", prediction_id, error.message)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    # -- following

    async def apply(self, prediction: Prediction) -> None:
        """Bring our rows up to date with what the provider says of a prediction.

        One transaction (`apply_prediction`: forward moves only); then, when it
        succeeded, the copies of its outputs into storage are started in the
        background. Database errors propagate.
        """
        async with self.db.transaction() as session:
            rows = await apply_prediction(session, prediction)
        self._copy_soon(prediction, rows)

    def _copy_soon(self, prediction: Prediction, rows: list[Row]) -> None:
        if status_from_provider(prediction.status) is GenerationStatus.COMPLETE and rows:
            # Copy in the background: a webhook should be answered at once.
            self._spawn(
                self.copy_outputs(
                    [row.id for row in rows if isinstance(row, ShotImageRow)],
                    [row.id for row in rows if isinstance(row, StoryboardSelectionRow)],
                    [row.id for row in rows if isinstance(row, AssetRow)],
                )
            )

    async def poll_running(self) -> None:
        """Ask the provider about running predictions not heard of for a poll interval."""
        stale = utcnow() - timedelta(seconds=self.settings.poll_interval)
        async with self.db.session() as session:
            ids: list[str] = []
            for table in GENERATION_TABLES:
                found = await session.exec(
                    select(table.prediction_id)
                    .where(
                        col(table.prediction_id).is_not(None),
                        status_column(table).in_(
                            [GenerationStatus.PENDING, GenerationStatus.PROCESSING]
                        ),
                        col(table.provider_output).is_(None),
                        or_(col(table.checked_at).is_(None), col(table.checked_at) < stale),
                    )
                    .order_by(col(table.checked_at))
                    .limit(self.settings.batch)
                )
                ids.extend(str(prediction_id) for prediction_id in found)
        for prediction_id in ids:
            if self.gateway.breaker.is_open:
                return
            try:
                prediction = await self.gateway.get(prediction_id)
                await self.apply(prediction)
            except ProviderUnavailable:
                return
            except asyncio.CancelledError:
                raise
            except ProviderRejected as error:
                if error.code == "PREDICTION_NOT_FOUND":
                    await self._lost(prediction_id)
                    continue
                logger.warning("prediction %s: %s", prediction_id, error.message)
                await self._failed_poll(prediction_id, error)
            except Exception as error:
                logger.exception("prediction %s: following it failed", prediction_id)
                await self._failed_poll(prediction_id, error)

    async def _rows_of(self, prediction_id: str) -> list[tuple[type[Row], int]]:
        async with self.db.session() as session:
            found: list[tuple[type[Row], int]] = []
            for table in GENERATION_TABLES:
                ids = await session.exec(
                    select(table.id).where(table.prediction_id == prediction_id)
                )
                found.extend((table, int(row_id or 0)) for row_id in ids)
            return found

    async def _failed_poll(self, prediction_id: str, error: Exception) -> None:
        for table, row_id in await self._rows_of(prediction_id):
            await self._failed_try(
                table,
                row_id,
                error,
                doing="followed",
                belongs=lambda row: row.prediction_id == prediction_id,
            )

    async def _lost(self, prediction_id: str) -> None:
        """The provider no longer knows this prediction: submit it again once, then fail.

        Never polled again under that id either way, so a provider that lost its
        memory (an emulator restarted) costs one warning per row, not one a sweep.
        """
        rows = await self._rows_of(prediction_id)
        async with self.db.transaction() as session:
            for table, row_id in rows:
                row = await load_row(session, table, row_id)
                if row is None or not (status := status_of(row)) or not status.is_active:
                    continue
                if row.resubmissions < 1:
                    logger.warning(
                        "prediction %s of %s %s is unknown to the provider: submitting it again",
                        prediction_id,
                        table.__tablename__,
                        row_id,
                    )
                    row.resubmissions += 1
                    row.prediction_id = None
                    row.provider_output = None
                    row.dispatch_claimed_at = None
                    row.dispatch_claimed_by = None
                    row.submitted_at = None
                    set_status(row, GenerationStatus.PENDING)
                else:
                    logger.warning(
                        "prediction %s of %s %s is unknown to the provider again: failing it",
                        prediction_id,
                        table.__tablename__,
                        row_id,
                    )
                    set_status(
                        row,
                        GenerationStatus.FAILED,
                        error="The provider lost this generation twice (it no longer knows "
                        "its prediction); retry it.",
                    )
        self.kick()

    # -- webhooks

    async def secret(self) -> str:
        """The webhook signing secret: configured, or fetched from the provider.

        Fetches are single-flight and back off after a failure (see
        `services.replicate.signatures.SigningSecret`); SecretUnavailable when it cannot be had now.
        """
        return await self.signing_secret.get()

    async def ingest(self, webhook_id: str, prediction: Prediction) -> bool:
        """Apply a verified webhook delivery once: False if it was handled before.

        Recording the delivery and applying it happen in one transaction, so a
        delivery is never marked handled without its effect. Only the delivery's own
        row being there already makes it a repeat: any other integrity error while
        applying it is raised (nothing of it kept; the provider retries it).
        """
        try:
            async with self.db.transaction() as session:
                # A statement of its own, not the unit of work: a repeat stops here.
                try:
                    await session.exec(
                        _RECORD_DELIVERY,
                        params={
                            "id": webhook_id,
                            "prediction_id": prediction.id,
                            "received_at": utcnow(),
                        },
                    )
                except IntegrityError as error:
                    raise _HandledBefore from error
                rows = await apply_prediction(session, prediction)
        except _HandledBefore:
            return False
        self._copy_soon(prediction, rows)
        return True

    async def receive_webhook(self, headers: Mapping[str, str], body: bytes) -> bool:
        """Verify one webhook delivery and apply it once: False if it was handled before.

        `headers` are the request's (Standard Webhooks `webhook-id`,
        `webhook-timestamp`, `webhook-signature`), `body` its raw bytes. The headers
        are checked before the signing secret is needed, so a delivery that cannot
        verify never makes the server ask the provider for it.

        Raises WebhookRejected (headers or signature wrong: 401), SecretUnavailable
        (the secret cannot be had now: 503 with its `retry_after`) and
        MalformedDelivery (genuine, but its body is not a prediction, or holds what
        no column can: an ID over 128 characters, a NUL or broken Unicode: 400).
        """
        claimed(headers)
        webhook_id = verify(await self.secret(), headers, body)
        try:
            # Our parser: no NaN or Infinity, and bounded nesting (no RecursionError).
            data = decoding.loads(body)
            # PostgreSQL stores no NUL character, nor broken Unicode, in text or JSON:
            # refused here, not failing the transaction (a 500 the provider retries).
            if not json_storable(data):
                raise ValueError("The delivery holds a NUL character or broken Unicode.")
            prediction = Prediction.from_json(data)
        except (ValueError, KeyError, TypeError) as error:
            raise MalformedDelivery(str(error)) from error
        return await self.ingest(webhook_id, prediction)


_RECORD_DELIVERY = insert(WebhookDeliveryRow.__table__)  # type: ignore[attr-defined]
"""A handled delivery's row, from bound `id`, `prediction_id` and `received_at`: the
table's own INSERT, built once (not the ORM's, built per delivery)."""


class _HandledBefore(Exception):
    """The delivery's id is recorded already: this is a repeat."""


class MalformedDelivery(Exception):
    """A genuine webhook delivery whose body is not a prediction."""


async def prune_deliveries(session: AsyncSession, *, older_than: timedelta, limit: int) -> int:
    """Delete at most `limit` handled webhook deliveries recorded over `older_than` ago
    (see DELIVERY_RETENTION); how many went.

    A bounded batch, so one transaction never holds many row locks: call again
    while it returns `limit`. `limit` is a count of rows, at least 1.
    """
    stale = (
        select(WebhookDeliveryRow.id)
        .where(col(WebhookDeliveryRow.received_at) < utcnow() - older_than)
        .limit(limit)
    )
    result = await session.exec(
        delete(WebhookDeliveryRow).where(col(WebhookDeliveryRow.id).in_(stale))
    )
    return int(result.rowcount or 0)
