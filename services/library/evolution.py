"""Evolving an asset: duplicate it, remix it with a new prompt, or regenerate it.

Each makes (or, for a DRAFT or FAILED asset regenerated, reuses) a lineage child of
the asset: parent the asset, root the asset's root (or the asset itself), version
the asset's + 1, in the asset's team, made by the caller, on the branch given or
the asset's own. A child keeps the asset's metadata (kind, name, description, tags,
category, mood, scene type, level, prompt, model and parameters) and its
`can_duplicate`/`can_remix`, so a copy never frees what its original forbids.

- `duplicate_asset`: an exact copy, READY at once, sharing the stored file and
  thumbnail (nothing is uploaded again); the original's `duplicate_count` + 1.
- `remix_asset`: a DRAFT with a new prompt and the words it gained and lost
  (`prompt_delta`); no file yet (`regenerate_asset` makes it); `remix_count` + 1.
- `regenerate_asset`: a DRAFT or FAILED asset is generated in place; a READY one
  gets a REGENERATE child that is. It runs through the generation engine
  (`services.generation`): text-to-image for an IMAGE, image-to-video for a VIDEO
  from its source image's stored file, with catalog-checked parameters only.

All need EDIT on the asset (`services.library.access`); someone who may not see it
gets NotFound, a VIEWER FORBIDDEN. Counters move under the asset's row lock (FOR
UPDATE on PostgreSQL; SQLite's writers take the whole file), so concurrent copies
each count; the lineage root is locked (FOR KEY SHARE) before it, the order a delete
of that root takes them in (`services.library.edits`).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.accounts.access import Actor
from services.database import after_commit
from services.errors import Conflict, PermissionDenied, ProviderUnavailable
from services.generation import catalog
from services.generation.catalog import GenerationModel, ModelKind
from services.generation.kinds import source_image
from services.generation.statuses import start_attempt
from services.library.access import EDIT, access_to, require_asset, require_derivable
from services.library.lineage_words import prompt_delta
from services.library.tables import (
    AssetKind,
    AssetRow,
    AssetStatus,
    EvolutionType,
)
from services.tables import ShotImageRow, utcnow
from services.validation import DESCRIPTION_MAX, PROMPT_MAX, TITLE_MAX, Checks

if TYPE_CHECKING:
    from services.generation.engine import GenerationEngine

BRANCH_MAX = 100
_KINDS = {AssetKind.IMAGE: ModelKind.TEXT_TO_IMAGE, AssetKind.VIDEO: ModelKind.IMAGE_TO_VIDEO}


async def _locked_source(session: AsyncSession, actor: Actor, asset_id: int) -> AssetRow:
    """The asset a new version is made from, once the actor holds EDIT on it, locked.

    Its lineage root is locked first (FOR KEY SHARE on PostgreSQL, which the new row's
    foreign key to it takes anyway), so this waits for a delete of that root, which
    locks the root and then the assets below it, instead of deadlocking with it.
    Raises NotFound and PermissionDenied as `require_asset`.
    """
    root_id = (
        await session.exec(select(AssetRow.root_id).where(col(AssetRow.id) == asset_id))
    ).first()
    if root_id is not None:
        await session.exec(
            select(AssetRow.id)
            .where(col(AssetRow.id) == root_id)
            .with_for_update(read=True, key_share=True)  # FOR KEY SHARE
        )
    source, _ = await require_asset(session, actor, asset_id, EDIT, lock=True)
    return source


def _branch(checks: Checks, branch_name: str | None) -> str | None:
    if branch_name is None:
        return None
    return checks.text(branch_name, field=("branchName",), max_length=BRANCH_MAX)


_STEP_SUFFIX = re.compile(r" · (?:Copy |Remix )?v\d+$")
_STEP_LABELS = {
    EvolutionType.DUPLICATE: "Copy ",
    EvolutionType.REMIX: "Remix ",
    EvolutionType.REGENERATE: "",
}


def child_name(source_name: str, evolution: EvolutionType, version: int) -> str:
    """The name of a copy, remix or new version: its original's, without the suffix an
    earlier step added, then " · Copy v3", " · Remix v3" or " · v3" (at most 200
    characters: the original's part is shortened). So a grid tells the steps apart."""
    suffix = f" · {_STEP_LABELS.get(evolution, '')}v{version}"
    base = _STEP_SUFFIX.sub("", source_name)
    return base[: TITLE_MAX - len(suffix)] + suffix


def _child_of(source: AssetRow, actor: Actor, branch: str | None, **fields: Any) -> AssetRow:
    """A lineage child of `source` keeping its metadata, made by the actor (`fields` last),
    named after it and the step (`child_name`)."""
    assert source.id is not None
    evolution = EvolutionType(fields["evolution_type"])
    values: dict[str, Any] = {
        "team_id": source.team_id,
        "creator_id": actor.user_id,
        "project_id": source.project_id,
        "kind": source.kind,
        "name": child_name(source.name, evolution, source.version + 1),
        "description": source.description,
        "prompt": source.prompt,
        "model": source.model,
        "generation_params": source.generation_params,
        "tags": list(source.tags or []),
        "category": source.category,
        "mood": source.mood,
        "scene_type": source.scene_type,
        "share_level": source.share_level,
        "can_duplicate": source.can_duplicate,
        "can_remix": source.can_remix,
        "root_id": source.root_id or source.id,
        "parent_id": source.id,
        "version": source.version + 1,
        "branch_name": branch or source.branch_name,
        **fields,
    }
    return AssetRow(**values)


async def _add_child(session: AsyncSession, child: AssetRow) -> AssetRow:
    """Insert the child (made by a member of its team: `access.require_derivable`)."""
    session.add(child)
    await session.flush()
    return child


async def duplicate_asset(
    session: AsyncSession,
    actor: Actor,
    *,
    asset_id: int,
    branch_name: str | None = None,
    checks: Checks | None = None,
) -> AssetRow:
    """An exact copy of a READY asset (DUPLICATE, READY, the same stored file and
    thumbnail); the original's `duplicate_count` + 1.

    Raises InvalidInput (branchName: BLANK, TOO_LONG, ...), NotFound, PermissionDenied
    (FORBIDDEN without EDIT; TEAM_MEMBERS_ONLY outside its team; CANNOT_DUPLICATE when
    its creator forbids copies) and
    Conflict ASSET_NOT_READY (it has no stored file to copy).
    """
    checks = checks if checks is not None else Checks()
    branch = _branch(checks, branch_name)
    checks.raise_if_unresolvable()
    source = await _locked_source(session, actor, asset_id)
    require_derivable(actor, source)
    checks.raise_if_any()
    if not source.can_duplicate:
        raise PermissionDenied(
            "This asset does not allow duplicates (its `canDuplicate` is off; whoever holds ADMIN "
            "on it can turn it on).",
            code="CANNOT_DUPLICATE",
            field=("assetId",),
        )
    if source.status != AssetStatus.READY or not source.storage_key:
        raise Conflict(
            f"Only a READY asset, with its file stored, can be duplicated; this one is "
            f"{source.status}.",
            code="ASSET_NOT_READY",
            field=("assetId",),
        )
    copy = _child_of(
        source,
        actor,
        branch,
        evolution_type=EvolutionType.DUPLICATE,
        status=AssetStatus.READY,
        storage_key=source.storage_key,
        thumbnail_key=source.thumbnail_key,
        mime_type=source.mime_type,
        file_size=source.file_size,
        width=source.width,
        height=source.height,
        duration=source.duration,
        fps=source.fps,
        prompt_delta={"added": [], "removed": []},
    )
    source.duplicate_count += 1
    source.updated_at = utcnow()
    return await _add_child(session, copy)


async def remix_asset(
    session: AsyncSession,
    actor: Actor,
    *,
    asset_id: int,
    prompt: str,
    evolution_note: str | None = None,
    branch_name: str | None = None,
    checks: Checks | None = None,
) -> AssetRow:
    """A DRAFT REMIX child with a new prompt and its `prompt_delta` against the asset's;
    no file yet (`regenerate_asset` generates it). The asset's `remix_count` + 1.

    Raises InvalidInput (prompt, evolutionNote, branchName), NotFound and
    PermissionDenied (FORBIDDEN without EDIT; TEAM_MEMBERS_ONLY outside its team;
    CANNOT_REMIX when its creator forbids it).
    """
    checks = checks if checks is not None else Checks()
    new_prompt = checks.text(prompt, field=("prompt",), max_length=PROMPT_MAX)
    note = checks.optional_text(
        evolution_note, field=("evolutionNote",), max_length=DESCRIPTION_MAX, label="note"
    )
    branch = _branch(checks, branch_name)
    checks.raise_if_unresolvable()
    source = await _locked_source(session, actor, asset_id)
    require_derivable(actor, source)
    checks.raise_if_any()
    if not source.can_remix:
        raise PermissionDenied(
            "This asset does not allow remixes (its `canRemix` is off; whoever holds ADMIN "
            "on it can turn it on).",
            code="CANNOT_REMIX",
            field=("assetId",),
        )
    remix = _child_of(
        source,
        actor,
        branch,
        evolution_type=EvolutionType.REMIX,
        evolution_note=note,
        status=AssetStatus.DRAFT,
        prompt=new_prompt,
        prompt_delta=prompt_delta(source.prompt, new_prompt),
    )
    source.remix_count += 1
    source.updated_at = utcnow()
    return await _add_child(session, remix)


def _model_for(
    checks: Checks, source: AssetRow, model: str | None, kind: ModelKind
) -> GenerationModel:
    """The caller's model (checked as generateShotImages checks it); else the asset's own
    when the catalog has it for this kind; else the catalog's default for the kind."""
    if model is not None:
        return catalog.choose(checks, model, kind)
    own = catalog.by_replicate_model(source.model or "")
    if own is None and source.model in {m.key for m in catalog.MODELS}:
        own = catalog.by_key(source.model or "")
    if own is not None and kind in own.kinds:
        return own
    return catalog.by_key(catalog.DEFAULTS[kind])


async def _stored_params(
    session: AsyncSession, source: AssetRow, chosen: GenerationModel
) -> dict[str, Any]:
    """The asset's own parameters that `chosen` takes and that pass its checks; none when
    the asset records an import (its metadata is what a client wrote, never provider
    input). The rest (the model, a seed, another model's parameters) is left behind."""
    stored = source.generation_params
    if not isinstance(stored, Mapping):
        return {}
    if source.shot_image_id is not None:
        image = await session.get(ShotImageRow, source.shot_image_id)
        if image is not None and image.imported:
            return {}
    kept: dict[str, Any] = {}
    for name, value in stored.items():
        param = chosen.param(name)
        if param is None:
            continue
        trial = Checks()
        cleaned = param.check(trial, value, ("params", name))
        if not trial.errors:
            kept[name] = cleaned
    return kept


async def regenerate_asset(
    session: AsyncSession,
    actor: Actor,
    generation_engine: GenerationEngine,
    *,
    asset_id: int,
    model: str | None = None,
    params: Mapping[str, Any] | None = None,
    checks: Checks | None = None,
) -> AssetRow:
    """Generate an asset again: a DRAFT or FAILED one in place, a READY one as a new
    REGENERATE child. Returns the asset being generated (GENERATING; READY with its
    file stored once the engine is done, or FAILED with an error).

    The model is the caller's, else the asset's own (if the catalog has it), else the
    default; the parameters are the asset's stored ones that the model takes, then the
    caller's on top, all checked as generateShotImages checks them (INVALID_PARAM,
    UNKNOWN_MODEL, WRONG_MODEL_KIND). Raises those, NotFound, PermissionDenied (EDIT
    needed; TEAM_MEMBERS_ONLY for someone outside its team; CANNOT_REMIX for a new
    version of a READY asset that may not be remixed), Conflict CANNOT_REGENERATE (not an
    IMAGE or VIDEO), ALREADY_RUNNING
    (GENERATING now), InvalidInput PROMPT_REQUIRED (an image without a prompt),
    SOURCE_IMAGE_GONE (a clip without a stored source image you may see) and
    ProviderUnavailable. Nothing is written when it raises.
    """
    checks = checks if checks is not None else Checks()
    checks.raise_if_unresolvable()
    source = await _locked_source(session, actor, asset_id)
    require_derivable(actor, source)
    kind = _KINDS.get(AssetKind(source.kind))
    if kind is None:
        raise Conflict(
            f"Only IMAGE and VIDEO assets can be generated; this one is {source.kind}.",
            code="CANNOT_REGENERATE",
            field=("assetId",),
        )
    chosen = _model_for(checks, source, model, kind)
    stored = await _stored_params(session, source, chosen)
    cleaned = chosen.clean_params(checks, {**stored, **(params or {})})
    if source.status == AssetStatus.GENERATING:
        raise Conflict(
            "This asset is being generated already.", code="ALREADY_RUNNING", field=("assetId",)
        )
    if kind is ModelKind.TEXT_TO_IMAGE and not (source.prompt or "").strip():
        checks.fail(
            "PROMPT_REQUIRED",
            "This asset has no prompt to generate from; remix it with one.",
            ("assetId",),
        )
    if kind is ModelKind.IMAGE_TO_VIDEO:
        image = await source_image(session, source)
        if image is None or (await access_to(session, actor, image)).permission is None:
            checks.fail(
                "SOURCE_IMAGE_GONE",
                "A clip is generated from the image it came from; this one has no stored "
                "source image that you may see.",
                ("assetId",),
            )
    checks.raise_if_any()
    if not generation_engine.provider_available():
        raise ProviderUnavailable(
            "The image and video provider is not answering; nothing was started. "
            "Try again in a minute."
        )
    target = source
    if source.status == AssetStatus.READY:
        if not source.can_remix:  # a new version is a remix with the same prompt
            raise PermissionDenied(
                "This asset does not allow new versions (its `canRemix` is off; whoever "
                "holds ADMIN on it can turn it on).",
                code="CANNOT_REMIX",
                field=("assetId",),
            )
        target = await _add_child(
            session,
            _child_of(
                source,
                actor,
                None,
                evolution_type=EvolutionType.REGENERATE,
                status=AssetStatus.DRAFT,
                prompt_delta={"added": [], "removed": []},
            ),
        )
    ours: dict[str, Any] = {"model": chosen.replicate_model}
    if kind is ModelKind.TEXT_TO_IMAGE:
        ours["seed"] = secrets.randbelow(catalog.SEED_LIMIT)  # a new image, not the old one
    target.model = chosen.replicate_model
    target.generation_params = {**ours, **cleaned}
    start_attempt(target)
    after_commit(session, generation_engine.kick)
    return target
