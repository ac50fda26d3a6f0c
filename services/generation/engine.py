"""Image iterations and animations on Replicate, from request to stored output.

The life of one generation (a shot image, or a selection's animation):

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
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx
from sqlalchemy import func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.accounts.access import Actor
from services.database import Database
from services.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    ProviderRejected,
    ProviderUnavailable,
    StudioError,
)
from services.generation import catalog
from services.generation.catalog import GenerationModel, ModelKind
from services.media.storage import Storage
from services.outbound import (
    AddressPolicy,
    Fetcher,
    FetchError,
    FetchGone,
    FetchLimits,
    FetchUnavailable,
    MediaKind,
    host_key,
    parse_allowed_hosts,
)
from services.replicate.gateway import Prediction, ReplicateGateway
from services.replicate.signatures import SigningSecret
from services.storyboard import workflow
from services.storyboard.projects import lock_project
from services.storyboard.shot_images import Iteration, image_of_shot, next_iteration_number
from services.storyboard.shots import shot_for_write
from services.tables import (
    GenerationStatus,
    ProjectRow,
    ShotImageRow,
    ShotRow,
    StoryboardSelectionRow,
    WebhookDeliveryRow,
    utcnow,
)
from services.validation import MAX_VARIANTS, PROMPT_MAX, Checks

logger = logging.getLogger("studio.generation")

DEFAULT_VARIANTS = 6
NOT_STORED_MESSAGE = (
    "This image has no copy in the studio's storage yet (an imported image is copied "
    "from its URL in the background, and that copy may have failed); only a stored "
    "image can be refined or animated."
)
CLAIM_TIMEOUT = timedelta(minutes=2)
GIVE_UP_AFTER = timedelta(minutes=15)
# Replicate keeps uploaded files for a day; reuse an upload well within that.
UPLOAD_REUSE_SECONDS = 3600.0

Row = ShotImageRow | StoryboardSelectionRow
Kind = Literal["image", "animation"]

_RANK = {
    GenerationStatus.PENDING: 0,
    GenerationStatus.PROCESSING: 1,
    GenerationStatus.COMPLETE: 2,
    GenerationStatus.FAILED: 2,
    GenerationStatus.CANCELED: 2,
}


# --- one row, whichever table it is in --------------------------------------------


def status_of(row: Row) -> GenerationStatus | None:
    value = row.status if isinstance(row, ShotImageRow) else row.animation_status
    return None if value is None else GenerationStatus(value)


def _set_status(row: Row, status: GenerationStatus, *, error: str | None = None) -> None:
    if isinstance(row, ShotImageRow):
        row.status = status
    else:
        row.animation_status = status
    row.error = error
    row.updated_at = utcnow()


def _advance(row: Row, status: GenerationStatus, *, error: str | None = None) -> bool:
    """Move the row's status forward only; False if it would move back or sideways."""
    current = status_of(row)
    if current is not None and _RANK[status] <= _RANK[current] and status != current:
        return False
    if current is not None and _RANK[current] == 2:
        return False
    _set_status(row, status, error=error)
    return True


def _reset_attempts(row: Row) -> None:
    """A fresh start: no claim, no open submission, no failed tries or resubmissions."""
    row.dispatch_claimed_by = None
    row.submitted_at = None
    row.failed_tries = 0
    row.resubmissions = 0


async def _load(session: AsyncSession, table: type[Row], row_id: int) -> Row | None:
    row = await session.get(table, row_id)
    assert row is None or isinstance(row, ShotImageRow | StoryboardSelectionRow)
    return row


# --- starting generations (mutations) --------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What a mutation may start: read from the engine, passed to the service as plain values."""

    provider_available: bool


def _check_provider(plan: Plan) -> None:
    if not plan.provider_available:
        raise ProviderUnavailable(
            "The image and video provider is not answering; nothing was started. "
            "Try again in a minute."
        )


async def start_iteration(
    session: AsyncSession,
    actor: Actor,
    plan: Plan,
    *,
    shot_id: int,
    prompt: str | None = None,
    parent_image_id: int | None = None,
    variant_count: int = DEFAULT_VARIANTS,
    model: str | None = None,
    params: dict[str, Any] | None = None,
    checks: Checks | None = None,
) -> Iteration:
    """The shot's next iteration: `variant_count` PENDING images, each with its own seed.

    With `parent_image_id` (a COMPLETE image of the shot) it refines that image.
    """
    checks = checks if checks is not None else Checks()
    checks.number(
        variant_count, field=("variantCount",), low=1, high=MAX_VARIANTS, label="variant count"
    )
    kind = ModelKind.TEXT_TO_IMAGE if parent_image_id is None else ModelKind.IMAGE_TO_IMAGE
    chosen = catalog.choose(checks, model, kind)
    cleaned = chosen.clean_params(checks, params)
    given_prompt = (
        None if prompt is None else checks.text(prompt, field=("prompt",), max_length=PROMPT_MAX)
    )
    checks.raise_if_unresolvable()
    shot, project = await shot_for_write(session, actor, shot_id)
    final_prompt = given_prompt or shot.initial_prompt
    if final_prompt is None:
        checks.fail(
            "PROMPT_REQUIRED",
            "Give a prompt, or set the shot's initial prompt first.",
            ("prompt",),
        )
    if parent_image_id is not None:
        # Another team's image is reported exactly like one that does not exist.
        parent = await image_of_shot(
            session,
            actor,
            checks,
            parent_image_id,
            shot_id,
            field=("parentImageId",),
            role="parent image",
        )
        if parent is not None and parent.status != GenerationStatus.COMPLETE:
            checks.fail(
                "IMAGE_NOT_READY",
                "Only a COMPLETE image can be refined.",
                ("parentImageId",),
            )
        elif parent is not None and not parent.storage_key:
            checks.fail("IMAGE_NOT_STORED", NOT_STORED_MESSAGE, ("parentImageId",))
    checks.raise_if_any()
    _check_provider(plan)
    assert final_prompt is not None

    number = await next_iteration_number(session, shot_id)
    rows = []
    for variant in range(1, variant_count + 1):
        seed = secrets.randbelow(2**31)
        metadata = {"model": chosen.replicate_model, "seed": seed, **cleaned}
        rows.append(
            ShotImageRow(
                shot_id=shot_id,
                iteration_number=number,
                variant_number=variant,
                status=GenerationStatus.PENDING,
                iteration_prompt=final_prompt,
                parent_image_id=parent_image_id,
                model=chosen.replicate_model,
                generation_metadata=metadata,
            )
        )
    session.add_all(rows)
    shot.updated_at = utcnow()
    await workflow.advance(session, project)
    return Iteration(shot_id, number, final_prompt, parent_image_id, rows)


async def _selection_for_write(
    session: AsyncSession, actor: Actor, selection_id: int
) -> tuple[StoryboardSelectionRow, ProjectRow]:
    selection = await session.get(StoryboardSelectionRow, selection_id)
    if selection is None:
        raise NotFound("storyboard selection")
    project = await lock_project(session, actor, selection.project_id, what="storyboard selection")
    selection = await session.get(StoryboardSelectionRow, selection_id, populate_existing=True)
    if selection is None:
        raise NotFound("storyboard selection")
    return selection, project


def _queue_animation(
    selection: StoryboardSelectionRow, chosen: GenerationModel, params: dict[str, Any]
) -> None:
    selection.model = chosen.replicate_model
    selection.animation_metadata = {"model": chosen.replicate_model, **params}
    selection.animated_video_url = None
    selection.video_storage_key = None
    selection.prediction_id = None
    selection.provider_output = None
    selection.dispatch_claimed_at = None
    _reset_attempts(selection)
    selection.copy_attempts = 0  # a new output gets all its tries
    _set_status(selection, GenerationStatus.PENDING)


async def animate_shot(
    session: AsyncSession,
    actor: Actor,
    plan: Plan,
    *,
    selection_id: int,
    model: str | None = None,
    params: dict[str, Any] | None = None,
    checks: Checks | None = None,
) -> StoryboardSelectionRow:
    """Animate a selection's master image into a clip; replaces a finished animation."""
    checks = checks if checks is not None else Checks()
    chosen = catalog.choose(checks, model, ModelKind.IMAGE_TO_VIDEO)
    cleaned = chosen.clean_params(checks, params)
    checks.raise_if_unresolvable()
    selection, _ = await _selection_for_write(session, actor, selection_id)
    master = await session.get(ShotImageRow, selection.selected_image_id)
    if master is None or not master.storage_key:
        checks.fail("IMAGE_NOT_STORED", NOT_STORED_MESSAGE, ("selectionId",))
    checks.raise_if_any()
    if (status := status_of(selection)) is not None and status.is_active:
        raise Conflict(
            "This shot is being animated already; cancel it first to start again.",
            code="ALREADY_RUNNING",
            field=("selectionId",),
        )
    _check_provider(plan)
    _queue_animation(selection, chosen, cleaned)
    return selection


async def animate_storyboard(
    session: AsyncSession,
    actor: Actor,
    plan: Plan,
    *,
    project_id: int,
    model: str | None = None,
    params: dict[str, Any] | None = None,
    only_missing: bool = True,
    checks: Checks | None = None,
) -> list[StoryboardSelectionRow]:
    """Animate every selection of the project: those without a finished clip, or all."""
    checks = checks if checks is not None else Checks()
    chosen = catalog.choose(checks, model, ModelKind.IMAGE_TO_VIDEO)
    cleaned = chosen.clean_params(checks, params)
    checks.raise_if_unresolvable()
    await lock_project(session, actor, project_id)
    checks.raise_if_any()
    selections = (
        await session.exec(
            select(StoryboardSelectionRow).where(StoryboardSelectionRow.project_id == project_id)
        )
    ).all()
    chosen_rows = []
    for selection in selections:
        status = status_of(selection)
        if status is not None and status.is_active:
            continue  # already on its way
        if only_missing and status is GenerationStatus.COMPLETE:
            continue
        chosen_rows.append(selection)
    masters = (
        await session.exec(
            select(ShotImageRow.id).where(
                col(ShotImageRow.id).in_([s.selected_image_id for s in chosen_rows]),
                col(ShotImageRow.storage_key).is_not(None),
            )
        )
    ).all()
    unstored = len({s.selected_image_id for s in chosen_rows} - set(masters))
    if unstored:
        raise InvalidInput(
            f"{unstored} of the master images to animate have no stored copy yet. "
            + NOT_STORED_MESSAGE,
            code="IMAGE_NOT_STORED",
            field=("projectId",),
        )
    if chosen_rows:
        _check_provider(plan)
    for selection in chosen_rows:
        _queue_animation(selection, chosen, cleaned)
    return chosen_rows


async def _generation_for_write(
    session: AsyncSession, actor: Actor, kind: Kind, row_id: int
) -> Row:
    if kind == "image":
        image = await session.get(ShotImageRow, row_id)
        shot = await session.get(ShotRow, image.shot_id) if image else None
        if image is None or shot is None:
            raise NotFound("image")
        await lock_project(session, actor, shot.project_id, what="image")
        refreshed = await session.get(ShotImageRow, row_id, populate_existing=True)
        if refreshed is None:
            raise NotFound("image")
        return refreshed
    selection, _ = await _selection_for_write(session, actor, row_id)
    return selection


async def cancel(session: AsyncSession, actor: Actor, *, kind: Kind, row_id: int) -> Row:
    """Cancel a PENDING or PROCESSING generation; the caller then cancels it on the provider."""
    row = await _generation_for_write(session, actor, kind, row_id)
    status = status_of(row)
    if status is None or not status.is_active:
        raise Conflict(
            f"Only a PENDING or PROCESSING generation can be canceled; this one is {status}.",
            code="NOT_RUNNING",
            field=("id",),
        )
    _set_status(row, GenerationStatus.CANCELED, error=None)
    return row


async def retry(session: AsyncSession, actor: Actor, plan: Plan, *, kind: Kind, row_id: int) -> Row:
    """Start a FAILED or CANCELED generation again, with the same parameters."""
    row = await _generation_for_write(session, actor, kind, row_id)
    if isinstance(row, ShotImageRow) and row.imported:
        raise Conflict(
            "This image was recorded by addShotImages, not generated here, so it cannot be "
            "retried; use generateShotImages to make new images.",
            code="IMPORTED_IMAGE",
            field=("id",),
        )
    status = status_of(row)
    if status not in (GenerationStatus.FAILED, GenerationStatus.CANCELED):
        raise Conflict(
            f"Only a FAILED or CANCELED generation can be retried; this one is {status}.",
            code="NOT_RETRYABLE",
            field=("id",),
        )
    _check_provider(plan)
    row.prediction_id = None
    row.provider_output = None
    row.dispatch_claimed_at = None
    _reset_attempts(row)
    row.copy_attempts = 0  # a new output gets all its tries
    _set_status(row, GenerationStatus.PENDING)
    return row


# --- the engine: submitting, following, copying ---------------------------------


# The one text an imported image's failed copy shows, whatever went wrong: a
# client must not learn which ports or hosts answer (the cause goes to the log).
IMPORT_COPY_FAILED = (
    "This image could not be copied from its URL into the studio's storage; "
    "it cannot be refined or animated. Add it again from a public http(s) URL."
)


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


def _known_dead(owner: str, me: str) -> bool:
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


class GenerationEngine:
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

    def plan(self) -> Plan:
        return Plan(provider_available=not self.gateway.breaker.is_open)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="generation-engine")

    async def stop(self) -> None:
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

    # -- submitting

    async def _claim(self, table: type[Row], status_column: Any) -> list[int]:
        """Claim up to a batch of unsubmitted PENDING rows for this process, fairly.

        Rows are ranked by age within the work of one user (the owner of the
        row's project), and taken by rank: every user's oldest first, then every
        user's second, and so on. By user, not by team: anyone can create teams,
        so ranking by team let one user with forty teams take forty turns before
        another team's single image. (A user's teams are one share; someone who
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
            dead = [h for h in holders if h is not None and _known_dead(h, self.instance)]
            free = or_(
                col(table.dispatch_claimed_at).is_(None),
                col(table.dispatch_claimed_at) < stale,
                col(table.dispatch_claimed_by).in_(dead),
            )
            project_id = (
                col(ShotRow.project_id)
                if table is ShotImageRow
                else col(StoryboardSelectionRow.project_id)
            )
            rank = (
                func.row_number()
                .over(partition_by=col(ProjectRow.owner_id), order_by=col(table.id))
                .label("rank")
            )
            ranked: Any = select(col(table.id).label("id"), rank).where(
                status_column == GenerationStatus.PENDING,
                col(table.prediction_id).is_(None),
                free,
                col(ProjectRow.id) == project_id,
            )
            if table is ShotImageRow:
                ranked = ranked.where(col(ShotRow.id) == col(ShotImageRow.shot_id))
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
        for table, status_column in (
            (ShotImageRow, col(ShotImageRow.status)),
            (StoryboardSelectionRow, col(StoryboardSelectionRow.animation_status)),
        ):
            while not self.gateway.breaker.is_open:
                claimed = await self._claim(table, status_column)
                for row_id in claimed:
                    await self._submit_isolated(table, row_id)
                if len(claimed) < self.settings.batch:
                    break  # a full batch means more may be waiting: claim again now

    async def _submit_isolated(self, table: type[Row], row_id: int) -> None:
        """Submit one row; whatever it raises is that row's failed try, not the sweep's."""
        try:
            await self._submit(table, row_id)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            logger.exception("%s %s: submitting failed", table.__tablename__, row_id)
            await self._failed_try(table, row_id, error, doing="submitted")

    async def _failed_try(
        self, table: type[Row], row_id: int, error: Exception, *, doing: str
    ) -> None:
        """Count a failed try against one row; at `max_tries` in a row it is FAILED.

        Short of that the row is released (its claim dropped) for the next sweep.
        """
        stopped: str | None = None
        try:
            async with self.db.transaction() as session:
                row = await _load(session, table, row_id)
                if row is None or not (status := status_of(row)) or not status.is_active:
                    return
                row.failed_tries = (row.failed_tries or 0) + 1
                if row.prediction_id is None:
                    row.dispatch_claimed_at = None
                    row.dispatch_claimed_by = None
                if row.failed_tries >= self.settings.max_tries:
                    reason = error.message if isinstance(error, StudioError) else "internal error"
                    _set_status(
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
        async with self.db.session() as session:
            row = await _load(session, table, row_id)
            if row is None or status_of(row) is not GenerationStatus.PENDING or row.prediction_id:
                return
            open_since = row.submitted_at
            try:
                model_name, model_input = await self._input_for(session, row)
            except StudioError as error:
                await self._finish(table, row_id, GenerationStatus.FAILED, error=error.message)
                return
        if open_since is not None:
            # A create was sent before and its answer never recorded: it may exist.
            try:
                adopted = await self._adopt(
                    table, row_id, model_name, model_input, since=open_since
                )
            except ProviderUnavailable:
                await self._release_or_give_up(table, row_id)
                return
            if adopted is not None:
                await self._record(table, row_id, adopted)
                return
        async with self.db.transaction() as session:
            row = await _load(session, table, row_id)
            if row is None or status_of(row) is not GenerationStatus.PENDING or row.prediction_id:
                return
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
            await self._finish(table, row_id, GenerationStatus.FAILED, error=error.message)
            return
        except ProviderUnavailable:
            await self._release_or_give_up(table, row_id)
            return
        await self._record(table, row_id, prediction)

    async def _record(self, table: type[Row], row_id: int, prediction: Prediction) -> None:
        """Note the row's prediction (or cancel it if the row went meanwhile), then apply it."""
        async with self.db.transaction() as session:
            row = await _load(session, table, row_id)
            if row is None:
                self.cancel_remote(prediction.id)  # deleted while we submitted it
                return
            if status_of(row) is GenerationStatus.CANCELED:
                row.prediction_id = prediction.id
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
            and all(prediction.input.get(key) == value for key, value in mine.items())
        ]
        if not matches:
            return None
        async with self.db.session() as session:
            owned: set[str | None] = set()
            for other in (ShotImageRow, StoryboardSelectionRow):
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

    async def _release_or_give_up(self, table: type[Row], row_id: int) -> None:
        async with self.db.transaction() as session:
            row = await _load(session, table, row_id)
            if row is None or status_of(row) is not GenerationStatus.PENDING:
                return
            if utcnow() - row.created_at > GIVE_UP_AFTER:
                _set_status(
                    row,
                    GenerationStatus.FAILED,
                    error="The provider could not be reached; retry when it is back.",
                )
            row.dispatch_claimed_at = None
            row.dispatch_claimed_by = None

    async def _input_for(self, session: AsyncSession, row: Row) -> tuple[str, dict[str, Any]]:
        """The Replicate model and input for a row, uploading its input image if it has one.

        Built from the row's validated parameters (checked again here: a row written
        before a rule existed gets no pass) and our own fields; nothing else a client
        wrote reaches the provider.
        """
        if isinstance(row, ShotImageRow):
            if row.imported:
                raise InvalidInput(
                    "Imported images record work done elsewhere; they are never generated here.",
                    code="IMPORTED_IMAGE",
                )
            model, model_input = catalog.provider_input(
                row.generation_metadata, fallback_model=row.model
            )
            model_input["prompt"] = row.iteration_prompt
            if row.parent_image_id is not None and model.image_input:
                parent = await session.get(ShotImageRow, row.parent_image_id)
                if parent is None:
                    raise InvalidInput("The image to refine was deleted.", code="PARENT_GONE")
                model_input[model.image_input] = await self._image_reference(parent)
            return model.replicate_model, model_input
        model, model_input = catalog.provider_input(
            row.animation_metadata, fallback_model=row.model
        )
        if model.image_input is None:
            raise InvalidInput(f"Unknown model {row.model!r}.", code="UNKNOWN_MODEL")
        master = await session.get(ShotImageRow, row.selected_image_id)
        shot = await session.get(ShotRow, row.shot_id)
        if master is None or shot is None:
            raise InvalidInput("The master image was deleted.", code="MASTER_GONE")
        model_input["prompt"] = shot.description or master.iteration_prompt
        model_input[model.image_input] = await self._image_reference(master)
        return model.replicate_model, model_input

    async def _image_reference(self, image: ShotImageRow) -> str:
        """A URL the provider can read the image from: always our stored copy, uploaded.

        Never the URL a client gave: that one is only where our copy came from.
        """
        if image.storage_key:
            cached = self._uploads.get(image.storage_key)
            if cached is not None and time.monotonic() - cached[1] < UPLOAD_REUSE_SECONDS:
                return cached[0]  # every variant of a refinement shares one upload
            stored = await self.storage.stat(image.storage_key)
            if stored is not None:
                data = b"".join([chunk async for chunk in self.storage.read(image.storage_key)])
                name = image.storage_key.rsplit("/", 1)[-1]
                url = await self.gateway.upload(
                    data, filename=name, content_type=stored.content_type
                )
                self._uploads[image.storage_key] = (url, time.monotonic())
                return url
        raise InvalidInput(NOT_STORED_MESSAGE, code="IMAGE_NOT_STORED")

    # -- following

    async def apply(self, prediction: Prediction) -> None:
        """Bring our rows up to date with what the provider says of a prediction."""
        async with self.db.transaction() as session:
            rows = await _apply(session, prediction)
        self._copy_soon(prediction, rows)

    def _copy_soon(self, prediction: Prediction, rows: list[Row]) -> None:
        if _ours(prediction.status) is GenerationStatus.COMPLETE and rows:
            # Copy in the background: a webhook should be answered at once.
            self._spawn(
                self.copy_outputs(
                    [row.id for row in rows if isinstance(row, ShotImageRow)],
                    [row.id for row in rows if isinstance(row, StoryboardSelectionRow)],
                )
            )

    async def poll_running(self) -> None:
        """Ask the provider about running predictions not heard of for a poll interval."""
        stale = utcnow() - timedelta(seconds=self.settings.poll_interval)
        async with self.db.session() as session:
            ids: list[str] = []
            for table, status_column in (
                (ShotImageRow, col(ShotImageRow.status)),
                (StoryboardSelectionRow, col(StoryboardSelectionRow.animation_status)),
            ):
                found = await session.exec(
                    select(table.prediction_id)
                    .where(
                        col(table.prediction_id).is_not(None),
                        status_column.in_([GenerationStatus.PENDING, GenerationStatus.PROCESSING]),
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
            for table in (ShotImageRow, StoryboardSelectionRow):
                ids = await session.exec(
                    select(table.id).where(table.prediction_id == prediction_id)
                )
                found.extend((table, int(row_id or 0)) for row_id in ids)
            return found

    async def _failed_poll(self, prediction_id: str, error: Exception) -> None:
        for table, row_id in await self._rows_of(prediction_id):
            await self._failed_try(table, row_id, error, doing="followed")

    async def _lost(self, prediction_id: str) -> None:
        """The provider no longer knows this prediction: submit it again once, then fail.

        Never polled again under that id either way, so a provider that lost its
        memory (an emulator restarted) costs one warning per row, not one a sweep.
        """
        rows = await self._rows_of(prediction_id)
        async with self.db.transaction() as session:
            for table, row_id in rows:
                row = await _load(session, table, row_id)
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
                    _set_status(row, GenerationStatus.PENDING)
                else:
                    logger.warning(
                        "prediction %s of %s %s is unknown to the provider again: failing it",
                        prediction_id,
                        table.__tablename__,
                        row_id,
                    )
                    _set_status(
                        row,
                        GenerationStatus.FAILED,
                        error="The provider lost this generation twice (it no longer knows "
                        "its prediction); retry it.",
                    )
        self.kick()

    # -- copying outputs

    async def copy_outputs(
        self,
        image_ids: Sequence[int | None] | None = None,
        selection_ids: Sequence[int | None] | None = None,
        *,
        wait: bool = True,
    ) -> None:
        """Copy finished outputs and imported images into storage: the given rows, or a batch.

        Rows never tried come first, then those whose last failed try is at least
        `copy_retry_seconds` old, oldest first: a copy that keeps failing waits its
        turn and never holds up the others. Provider outputs and imports have a
        `copy_concurrency` each, so slow client URLs never delay generated work.
        With `wait=False` (the sweep) the copies run in the background.
        """
        retry_before = utcnow() - timedelta(seconds=self.settings.copy_retry_seconds)
        image_outputs = col(ShotImageRow.provider_output).is_not(None) & (
            ShotImageRow.status == GenerationStatus.PROCESSING
        )
        imports = (
            col(ShotImageRow.imported)
            & (ShotImageRow.status == GenerationStatus.COMPLETE)
            & col(ShotImageRow.storage_key).is_(None)
            & col(ShotImageRow.image_url).is_not(None)
            & col(ShotImageRow.error).is_(None)
        )
        selection_outputs = col(StoryboardSelectionRow.provider_output).is_not(None) & (
            StoryboardSelectionRow.animation_status == GenerationStatus.PROCESSING
        )
        found: list[tuple[type[Row], int, bool]] = []
        async with self.db.session() as session:
            for table, waiting, imported, wanted in (
                (ShotImageRow, image_outputs, False, image_ids),
                (StoryboardSelectionRow, selection_outputs, False, selection_ids),
                (ShotImageRow, imports, True, image_ids),
            ):
                query = (
                    select(table.id)
                    .where(
                        waiting,
                        or_(
                            col(table.copy_attempts) == 0,
                            col(table.checked_at).is_(None),
                            col(table.checked_at) <= retry_before,
                        ),
                    )
                    .order_by(col(table.copy_attempts), col(table.checked_at), col(table.id))
                    .limit(self.settings.batch)
                )
                if wanted is not None:
                    query = query.where(col(table.id).in_([i for i in wanted if i]))
                found.extend(
                    (table, int(row_id or 0), imported) for row_id in await session.exec(query)
                )
        copies = [self._copy_guarded(table, row_id, imported) for table, row_id, imported in found]
        if wait:
            await asyncio.gather(*copies)
        else:
            for copy in copies:
                self._spawn(copy)

    async def _copy_guarded(self, table: type[Row], row_id: int, imported: bool) -> None:
        # A webhook's copy and a sweep's may pick the same row: one download is enough.
        running = (table.__tablename__, row_id)
        if running in self._copies_running:
            return
        self._copies_running.add(running)
        try:
            async with self._copying_imports if imported else self._copying_outputs:
                await self._copy(table, row_id)
        except Exception as error:
            # One row's fault (storage full, a bug) must not stop the others' copies, and
            # counts as a failed try, so a row that always fails ends after COPY_MAX_TRIES.
            logger.exception("copying %s %d failed", table.__tablename__, row_id)
            with contextlib.suppress(Exception):
                await self._copy_failed(table, row_id, FetchUnavailable(repr(error)))
        finally:
            self._copies_running.discard(running)

    async def _copy(self, table: type[Row], row_id: int) -> None:
        async with self.db.session() as session:
            row = await _load(session, table, row_id)
            if row is None:
                return
            imported = isinstance(row, ShotImageRow) and row.imported
            if imported:
                assert isinstance(row, ShotImageRow)
                if row.storage_key or not row.image_url or row.error:
                    return
                url = row.image_url
            elif row.provider_output and status_of(row) is GenerationStatus.PROCESSING:
                url = row.provider_output[0]
            else:
                return
            if isinstance(row, ShotImageRow):
                key_base, expect = f"images/{row.shot_id}/{row_id}", MediaKind.IMAGE
            else:
                key_base, expect = f"videos/{row.project_id}/{row_id}", MediaKind.VIDEO
        fetcher = self.import_fetcher if imported else self.output_fetcher
        try:
            fetched = await fetcher.fetch(url, expect=expect)
        except FetchError as error:
            logger.warning(
                "copy of %s %d from %r failed: %s", table.__tablename__, row_id, url, error.reason
            )
            await self._copy_failed(table, row_id, error)
            return
        # The key's extension is the sniffed type's: storage derives the served type from it.
        key = f"{key_base}-{secrets.token_hex(4)}{fetched.extension}"
        await self.storage.put(key, fetched.data, content_type=fetched.content_type)
        async with self.db.transaction() as session:
            row = await _load(session, table, row_id)
            if row is None:
                await self.storage.delete(key)
                return
            if isinstance(row, ShotImageRow) and row.imported:
                if row.storage_key or status_of(row) is not GenerationStatus.COMPLETE:
                    await self.storage.delete(key)
                    return
                row.storage_key = key  # `image_url` stays: where it came from
                row.updated_at = utcnow()
                return
            if status_of(row) is not GenerationStatus.PROCESSING:
                await self.storage.delete(key)
                return
            if isinstance(row, ShotImageRow):
                row.storage_key = key
                row.image_url = None
            else:
                row.video_storage_key = key
                row.animated_video_url = None
            row.provider_output = None
            _set_status(row, GenerationStatus.COMPLETE)
            project_id = row.project_id if isinstance(row, StoryboardSelectionRow) else None
            if project_id is not None:
                project = await session.get(ProjectRow, project_id)
                if project is not None:
                    await workflow.advance(session, project)

    async def _copy_failed(self, table: type[Row], row_id: int, error: FetchError) -> None:
        """Count a failed copy; give up at once if it cannot work, or after the last try."""
        async with self.db.transaction() as session:
            row = await _load(session, table, row_id)
            if row is None:
                return
            row.copy_attempts += 1
            row.checked_at = utcnow()
            if error.transient and row.copy_attempts < self.settings.copy_max_tries:
                return
            if isinstance(row, ShotImageRow) and row.imported:
                if not row.storage_key:
                    row.error = IMPORT_COPY_FAILED
                    row.updated_at = utcnow()
                return
            if status_of(row) is GenerationStatus.PROCESSING:
                row.provider_output = None
                _advance(row, GenerationStatus.FAILED, error=_copy_error(error, row.copy_attempts))

    async def _finish(
        self, table: type[Row], row_id: int, status: GenerationStatus, *, error: str | None = None
    ) -> None:
        async with self.db.transaction() as session:
            row = await _load(session, table, row_id)
            if row is not None:
                _advance(row, status, error=error)

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
        delivery is never marked handled without its effect.
        """
        try:
            async with self.db.transaction() as session:
                session.add(WebhookDeliveryRow(id=webhook_id, prediction_id=prediction.id))
                await session.flush()
                rows = await _apply(session, prediction)
        except IntegrityError:
            return False
        self._copy_soon(prediction, rows)
        return True


async def _apply(session: AsyncSession, prediction: Prediction) -> list[Row]:
    """Move the rows of a prediction forward to what the provider says of it."""
    status = _ours(prediction.status)
    rows: list[Row] = [
        *(
            await session.exec(
                select(ShotImageRow).where(ShotImageRow.prediction_id == prediction.id)
            )
        ),
        *(
            await session.exec(
                select(StoryboardSelectionRow).where(
                    StoryboardSelectionRow.prediction_id == prediction.id
                )
            )
        ),
    ]
    for row in rows:
        row.checked_at = utcnow()
        row.failed_tries = 0
        if status is GenerationStatus.COMPLETE:
            # Succeeded at the provider; ours once the output is copied.
            if _advance(row, GenerationStatus.PROCESSING):
                row.provider_output = prediction.output_urls or None
                if not prediction.output_urls:
                    _advance(row, GenerationStatus.FAILED, error="The provider returned no output.")
        elif status is GenerationStatus.FAILED:
            _advance(row, status, error=prediction.error or "The generation failed.")
        else:
            _advance(row, status)
    return rows


def _ours(provider_status: str) -> GenerationStatus:
    return {
        "starting": GenerationStatus.PENDING,
        "processing": GenerationStatus.PROCESSING,
        "succeeded": GenerationStatus.COMPLETE,
        "failed": GenerationStatus.FAILED,
        "aborted": GenerationStatus.FAILED,
        "canceled": GenerationStatus.CANCELED,
    }.get(provider_status, GenerationStatus.PROCESSING)


def _copy_error(error: FetchError, tries: int) -> str:
    """What a client sees of an output that could not be stored (no addresses, no ports)."""
    if isinstance(error, FetchGone):
        return "The provider no longer has this output."
    if error.transient:
        return f"The provider's output could not be downloaded after {tries} tries."
    return (
        "The provider's output could not be stored: it is not a downloadable image or "
        "video file of an accepted type and size."
    )
