"""What is sent to the provider for a generation row: the model, and an input built
from our own fields and the row's validated parameters only.

Input images are always our stored copies, uploaded to the provider (never a URL a
client gave, which is only where our copy came from).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from sqlmodel.ext.asyncio.session import AsyncSession

from services.errors import InvalidInput
from services.generation import catalog
from services.generation.kinds import source_image
from services.generation.requests import NOT_STORED_MESSAGE
from services.generation.statuses import Row
from services.library.tables import AssetKind, AssetRow
from services.tables import ShotImageRow, ShotRow

if TYPE_CHECKING:
    from services.media.storage import Storage
    from services.replicate.gateway import ReplicateGateway

# Replicate keeps uploaded files for a day; reuse an upload well within that.
UPLOAD_REUSE_SECONDS = 3600.0


class ProviderInputs:
    """The engine's building of provider inputs (a part of `GenerationEngine`)."""

    # Set by GenerationEngine.__init__.
    gateway: ReplicateGateway
    storage: Storage
    _uploads: dict[str, tuple[str, float]]

    async def _input_for(self, session: AsyncSession, row: Row) -> tuple[str, dict[str, Any]]:
        """The Replicate model and input for a row, uploading its input image if it has one.

        Built from the row's validated parameters (checked again here: a row written
        before a rule existed gets no pass) and our own fields; nothing else a client
        wrote reaches the provider.
        """
        if isinstance(row, AssetRow):
            return await self._asset_input(session, row)
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
                model_input[model.image_input] = await self._image_reference(parent.storage_key)
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
        model_input[model.image_input] = await self._image_reference(master.storage_key)
        return model.replicate_model, model_input

    async def _asset_input(
        self, session: AsyncSession, asset: AssetRow
    ) -> tuple[str, dict[str, Any]]:
        """An asset's input (`regenerateAsset`): text-to-image from its prompt for an
        IMAGE, image-to-video from its source image's stored file for a VIDEO. Its
        `generation_params` were written by `regenerateAsset` from catalog-checked values
        and are checked again here."""
        model, model_input = catalog.provider_input(
            asset.generation_params, fallback_model=asset.model
        )
        if asset.kind == AssetKind.VIDEO:
            image = await source_image(session, asset)
            if model.image_input is None or image is None:
                raise InvalidInput(
                    "This clip's source image is gone or has no stored file.",
                    code="SOURCE_IMAGE_GONE",
                )
            model_input["prompt"] = asset.prompt or image.prompt or ""
            model_input[model.image_input] = await self._image_reference(image.storage_key)
        else:
            model_input["prompt"] = asset.prompt or ""
        return model.replicate_model, model_input

    async def _image_reference(self, storage_key: str | None) -> str:
        """A URL the provider can read a stored image from: our copy, uploaded.

        Raises InvalidInput (IMAGE_NOT_STORED) when there is no stored copy.
        """
        if storage_key:
            cached = self._uploads.get(storage_key)
            if cached is not None and time.monotonic() - cached[1] < UPLOAD_REUSE_SECONDS:
                return cached[0]  # every variant of a refinement shares one upload
            stored = await self.storage.stat(storage_key)
            if stored is not None:
                data = b"".join([chunk async for chunk in self.storage.read(storage_key)])
                name = storage_key.rsplit("/", 1)[-1]
                url = await self.gateway.upload(
                    data, filename=name, content_type=stored.content_type
                )
                self._uploads[storage_key] = (url, time.monotonic())
                return url
        raise InvalidInput(NOT_STORED_MESSAGE, code="IMAGE_NOT_STORED")
