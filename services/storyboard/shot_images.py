"""Image iterations of a shot, favourites, and the master image chosen per shot.

An iteration is the batch of images of a shot sharing an iteration number:
0 is the first batch, 1 and up refine an image of an earlier one. Its number is
the shot's latest plus one, taken under the project lock and guarded by the
unique (shot, iteration, variant) constraint, so two batches never share one.

Writes run in the caller's transaction (they lock the project, see
`services.storyboard.projects.lock_project`) and take effect when it commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.accounts.access import Actor
from services.errors import Conflict, InvalidInput, NotFound
from services.library import usage
from services.storyboard import workflow
from services.storyboard.projects import lock_project
from services.storyboard.shots import shot_for_write
from services.tables import (
    GenerationStatus,
    ProjectRow,
    ShotImageRow,
    ShotRow,
    StoryboardSelectionRow,
    utcnow,
)
from services.validation import LAST_VARIANT, MAX_VARIANTS, PROMPT_MAX, Checks

# What an imported image can be: a record of work finished elsewhere.
IMPORTABLE = (GenerationStatus.COMPLETE, GenerationStatus.FAILED)


@dataclass(frozen=True)
class ImageDraft:
    """An image made elsewhere, to record as part of a new iteration (COMPLETE or FAILED).

    variant_number: its place in the iteration (the range is `add_shot_images`'s
    to check); image_url: where it is; asset_id: or the library asset it is (its
    stored file shared, see `services.library.usage`): a COMPLETE image needs
    exactly one of the two; metadata: a JSON object kept for clients (at most
    16 KiB as compact JSON).
    """

    variant_number: int
    status: GenerationStatus
    image_url: str | None = None
    metadata: dict[str, Any] | None = field(default=None)
    asset_id: int | None = None


@dataclass(frozen=True)
class Iteration:
    """The images of one iteration of a shot, and what they share."""

    shot_id: int
    number: int
    prompt: str
    parent_image_id: int | None
    images: list[ShotImageRow]

    @property
    def status(self) -> GenerationStatus:
        """The batch's one status (see `summarize`)."""
        return summarize([GenerationStatus(image.status) for image in self.images])


def summarize(statuses: Sequence[GenerationStatus]) -> GenerationStatus:
    """One status for a batch: in progress while any image is, else COMPLETE if any image is.

    In progress is PENDING when every image is PENDING, else PROCESSING; after
    COMPLETE comes FAILED if any failed, else CANCELED (also for an empty batch).
    """
    if any(s.is_active for s in statuses):
        if all(s is GenerationStatus.PENDING for s in statuses):
            return GenerationStatus.PENDING
        return GenerationStatus.PROCESSING
    if GenerationStatus.COMPLETE in statuses:
        return GenerationStatus.COMPLETE
    if GenerationStatus.FAILED in statuses:
        return GenerationStatus.FAILED
    return GenerationStatus.CANCELED


def group_iterations(images: Sequence[ShotImageRow]) -> list[Iteration]:
    """Group one shot's images, ordered by (iteration, variant), into iterations."""
    groups: dict[int, list[ShotImageRow]] = {}
    for image in images:
        groups.setdefault(image.iteration_number, []).append(image)
    return [
        Iteration(
            shot_id=batch[0].shot_id,
            number=number,
            prompt=batch[0].iteration_prompt,
            parent_image_id=batch[0].parent_image_id,
            images=batch,
        )
        for number, batch in sorted(groups.items())
    ]


async def image_of_shot(
    session: AsyncSession,
    actor: Actor,
    checks: Checks,
    image_id: int,
    shot_id: int,
    *,
    field: Sequence[str],
    role: str,
) -> ShotImageRow | None:
    """The image, if it belongs to the shot; else the problem is recorded on `checks`.

    An image the actor cannot see is reported exactly like one that does not exist
    (NotFound at `field`); an image of another shot is InvalidInput
    `<ROLE>_NOT_IN_SHOT` (`role` "parent image" gives PARENT_IMAGE_NOT_IN_SHOT).
    Returns None in both cases and raises nothing itself.
    """
    image = await session.get(ShotImageRow, image_id)
    owner = await session.get(ShotRow, image.shot_id) if image is not None else None
    if image is None or owner is None or not actor.can_read(await _team_of(session, owner)):
        checks.add(NotFound("image", field=field))
        return None
    if image.shot_id != shot_id:
        checks.fail(
            f"{role.upper().replace(' ', '_')}_NOT_IN_SHOT",
            f"The {role} must be an image of the same shot.",
            field,
        )
        return None
    return image


async def _team_of(session: AsyncSession, shot: ShotRow) -> int:
    project = await session.get(ProjectRow, shot.project_id)
    assert project is not None
    return project.team_id


async def next_iteration_number(session: AsyncSession, shot_id: int) -> int:
    """The shot's latest iteration number plus one; 0 for a shot without images.

    Only unique under the project lock (see the module docstring).
    """
    latest = (
        await session.exec(
            select(func.max(ShotImageRow.iteration_number)).where(ShotImageRow.shot_id == shot_id)
        )
    ).one()
    return 0 if latest is None else latest + 1


async def add_shot_images(
    session: AsyncSession,
    actor: Actor,
    *,
    shot_id: int,
    iteration_prompt: str,
    images: Sequence[ImageDraft],
    parent_image_id: int | None = None,
    checks: Checks | None = None,
) -> Iteration:
    """Record a batch of images made elsewhere as the shot's next iteration.

    Imports are records of finished work: COMPLETE (with the URL of the image)
    or FAILED, never PENDING or PROCESSING (INVALID_STATUS; generateShotImages
    starts generations). They never start a prediction, and their `metadata` is
    kept for clients only, never sent to a provider. A COMPLETE image's URL is
    recorded at once; the caller's generation engine copies it into storage in
    the background, and until then it cannot be refined or animated.

    `images` holds 1 to MAX_VARIANTS (12) drafts, each with its own variant
    number 0..LAST_VARIANT (11); the iteration takes the shot's next number (0 for
    its first batch); the prompt is at most 10,000 characters. In the order of
    `services.validation`: the input's problems are collected (InvalidInput OUT_OF_RANGE,
    INVALID_STATUS, IMAGE_URL_REQUIRED, INVALID_URL, TOO_LONG, BLANK, ...;
    Conflict DUPLICATE_VARIANT); the shot's access fails alone (NotFound,
    PermissionDenied); then everything collected, with NotFound or
    PARENT_IMAGE_NOT_IN_SHOT for `parent_image_id` and NotFound, ASSET_OF_ANOTHER_TEAM,
    ASSET_NOT_IMAGE,
    ASSET_NOT_READY or ASSET_NOT_STORED for an image's `asset_id`
    (`services.library.usage.checked_library_image`), is raised at once
    (ValidationFailed when several). A draft with `asset_id` becomes a COMPLETE
    image sharing the asset's stored file (`usage.shot_image_fields`): nothing to
    copy, so it can be refined and animated at once; with an `image_url` as well it
    is IMAGE_SOURCE_CONFLICT. `checks` carries problems the caller
    already found (malformed IDs). Advances the project's workflow status
    (`services.storyboard.workflow.advance`).
    """
    checks = checks if checks is not None else Checks()
    prompt = checks.text(
        iteration_prompt,
        field=("iterationPrompt",),
        max_length=PROMPT_MAX,
        label="iteration prompt",
    )
    if not 1 <= len(images) <= MAX_VARIANTS:
        checks.fail(
            "OUT_OF_RANGE",
            f"An iteration has 1 to {MAX_VARIANTS} images; got {len(images)}.",
            ("images",),
        )
    seen: set[int] = set()
    cleaned: list[ImageDraft] = []
    for index, draft in enumerate(images):
        where = ("images", str(index))
        checks.number(
            draft.variant_number,
            field=(*where, "variantNumber"),
            low=0,
            high=LAST_VARIANT,
            label="variant number",
        )
        if draft.variant_number in seen:
            checks.add(
                Conflict(
                    f"Variant {draft.variant_number} appears twice in this iteration.",
                    code="DUPLICATE_VARIANT",
                    field=(*where, "variantNumber"),
                )
            )
        seen.add(draft.variant_number)
        if draft.status not in IMPORTABLE:
            checks.fail(
                "INVALID_STATUS",
                f"An imported image is COMPLETE or FAILED, not {draft.status.value}: it records "
                "work finished elsewhere. To generate images, use generateShotImages.",
                (*where, "status"),
            )
        url = (
            None
            if draft.image_url is None
            else checks.url(draft.image_url, field=(*where, "imageUrl"))
        )
        if draft.asset_id is not None:
            _check_asset_draft(checks, draft, where)
        elif url is None and draft.status is GenerationStatus.COMPLETE:
            checks.fail(
                "IMAGE_URL_REQUIRED",
                "A COMPLETE image needs its imageUrl, or the assetId of a library image.",
                (*where, "imageUrl"),
            )
        metadata = checks.json_object(draft.metadata, field=(*where, "metadata"))
        cleaned.append(
            ImageDraft(draft.variant_number, draft.status, url, metadata, draft.asset_id)
        )
    checks.raise_if_unresolvable()
    shot, project = await shot_for_write(session, actor, shot_id)
    if parent_image_id is not None:
        await image_of_shot(
            session,
            actor,
            checks,
            parent_image_id,
            shot_id,
            field=("parentImageId",),
            role="parent image",
        )
    assets = {
        index: await usage.checked_library_image(
            session,
            actor,
            checks,
            draft.asset_id,
            team_id=project.team_id,
            field=("images", str(index), "assetId"),
        )
        for index, draft in enumerate(cleaned)
        if draft.asset_id is not None
    }
    checks.raise_if_any()

    number = await next_iteration_number(session, shot_id)
    rows = []
    for index, draft in sorted(enumerate(cleaned), key=lambda pair: pair[1].variant_number):
        fields: dict[str, Any] = {
            "status": draft.status,
            "image_url": draft.image_url,
            "generation_metadata": draft.metadata,
            "model": _model_of(draft.metadata),
        }
        if (asset := assets.get(index)) is not None:
            fields = usage.shot_image_fields(asset, draft.metadata)
        rows.append(
            ShotImageRow(
                shot_id=shot_id,
                iteration_number=number,
                variant_number=draft.variant_number,
                iteration_prompt=prompt,
                parent_image_id=parent_image_id,
                imported=True,
                **fields,
            )
        )
    session.add_all(rows)
    shot.updated_at = utcnow()
    await workflow.advance(session, project)
    return Iteration(shot_id, number, prompt, parent_image_id, rows)


def _check_asset_draft(checks: Checks, draft: ImageDraft, where: tuple[str, ...]) -> None:
    if draft.image_url is not None:
        checks.fail(
            "IMAGE_SOURCE_CONFLICT",
            "Give an image either an imageUrl or an assetId, not both.",
            (*where, "assetId"),
        )
    if draft.status is not GenerationStatus.COMPLETE:
        checks.fail(
            "INVALID_STATUS",
            "An image taken from the library is COMPLETE: it exists already.",
            (*where, "status"),
        )


def _model_of(metadata: dict[str, Any] | None) -> str | None:
    model = (metadata or {}).get("model")
    return model[:200] if isinstance(model, str) else None


async def image_for_write(
    session: AsyncSession, actor: Actor, image_id: int
) -> tuple[ShotImageRow, ProjectRow]:
    """The image, read again under its project's lock, and that project.

    Raises NotFound (no such image, or not the actor's to see; also when it was
    deleted while the lock was awaited) and PermissionDenied (a VIEWER).
    """
    image = await session.get(ShotImageRow, image_id)
    if image is None:
        raise NotFound("image")
    shot = await session.get(ShotRow, image.shot_id)
    assert shot is not None
    project = await lock_project(session, actor, shot.project_id, what="image")
    image = await session.get(ShotImageRow, image_id, populate_existing=True)
    if image is None:
        raise NotFound("image")
    return image, project


async def set_image_favorite(
    session: AsyncSession, actor: Actor, *, image_id: int, is_favorite: bool
) -> ShotImageRow:
    """Mark the image a favourite or not; the image. Setting what it already is
    changes nothing. Raises what `image_for_write` raises."""
    image, _ = await image_for_write(session, actor, image_id)
    if image.is_favorite != is_favorite:
        image.is_favorite = is_favorite
        image.updated_at = utcnow()
    return image


async def delete_shot_image(session: AsyncSession, actor: Actor, *, image_id: int) -> ShotImageRow:
    """Delete an image; the images refining it keep their place, without a parent.

    Returns the deleted row. Raises what `image_for_write` raises, and Conflict
    IMAGE_IS_MASTER while the image is its shot's master image.
    """
    image, _ = await image_for_write(session, actor, image_id)
    selected = (
        await session.exec(
            select(StoryboardSelectionRow.id).where(
                StoryboardSelectionRow.selected_image_id == image_id
            )
        )
    ).first()
    if selected is not None:
        raise Conflict(
            "This image is its shot's master image; select another master before deleting it.",
            code="IMAGE_IS_MASTER",
            field=("id",),
        )
    await session.delete(image)
    return image


async def select_master_shot(
    session: AsyncSession, actor: Actor, *, shot_id: int, image_id: int
) -> StoryboardSelectionRow:
    """Make a COMPLETE image of the shot its master; choosing again replaces the choice.

    A new master discards the animation made from the old one: its status, video,
    prediction, error and attempt are cleared, with the dispatcher's claim and open
    submission, so an answer still on its way for it is canceled, never recorded
    (stopping a prediction it had is the caller's: `services.generation.discards`).
    Raises NotFound or PermissionDenied for
    the shot, NotFound or MASTER_IMAGE_NOT_IN_SHOT (InvalidInput) for the image,
    InvalidInput IMAGE_NOT_READY for an image that is not COMPLETE. Advances the
    project's workflow status.
    """
    _, project = await shot_for_write(session, actor, shot_id)
    checks = Checks()
    image = await image_of_shot(
        session, actor, checks, image_id, shot_id, field=("imageId",), role="master image"
    )
    checks.raise_if_any()
    assert image is not None
    if image.status != GenerationStatus.COMPLETE:
        raise InvalidInput(
            f"Only a COMPLETE image can be a master image; this one is {image.status}.",
            code="IMAGE_NOT_READY",
            field=("imageId",),
        )
    selection = await selection_for_write(session, shot_id)
    if selection is None:
        assert project.id is not None
        selection = StoryboardSelectionRow(
            project_id=project.id, shot_id=shot_id, selected_image_id=image_id
        )
        session.add(selection)
    elif selection.selected_image_id != image_id:
        selection.selected_image_id = image_id
        selection.animation_status = None
        selection.animated_video_url = None
        selection.video_storage_key = None
        selection.prediction_id = None
        selection.error = None
        selection.attempt_id = None
        selection.provider_output = None
        selection.dispatch_claimed_at = None
        selection.dispatch_claimed_by = None
        selection.submitted_at = None
        selection.updated_at = utcnow()
    await session.flush()
    await workflow.advance(session, project)
    return selection


async def selection_for_write(session: AsyncSession, shot_id: int) -> StoryboardSelectionRow | None:
    """The shot's master selection (None if it has none), read fresh and locked for
    this transaction (FOR UPDATE on PostgreSQL), so the generation engine's writes to
    it (a prediction recorded) either came first and are seen here, or wait for this
    transaction. No access check: the caller has locked the shot's project."""
    statement = (
        select(StoryboardSelectionRow)
        .where(StoryboardSelectionRow.shot_id == shot_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.exec(statement)).first()


# --- reads ------------------------------------------------------------------------


async def images_for_shots(
    session: AsyncSession, shot_ids: Sequence[int]
) -> dict[int, list[ShotImageRow]]:
    """Each shot's images by (iteration, variant): {shot id: [rows]}, every id a key.

    For the DataLoaders; no access check (the caller's).
    """
    result = await session.exec(
        select(ShotImageRow)
        .where(col(ShotImageRow.shot_id).in_(shot_ids))
        .order_by(
            col(ShotImageRow.shot_id),
            col(ShotImageRow.iteration_number),
            col(ShotImageRow.variant_number),
        )
    )
    grouped: dict[int, list[ShotImageRow]] = {shot_id: [] for shot_id in shot_ids}
    for image in result:
        grouped[image.shot_id].append(image)
    return grouped
