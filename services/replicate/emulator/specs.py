"""What a model declares: its inputs (type, default, bounds, choices), what it makes, its version.

`ModelSpec` lists a model's inputs as Replicate's OpenAPI schema would; the models
themselves are in `services.replicate.emulator.catalog`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

FieldKind = Literal["string", "integer", "number", "boolean", "file"]
Task = Literal["text-to-image", "image-to-video", "text"]
Scalar = str | int | float | bool


@dataclass(frozen=True)
class InputField:
    """One input of a model, as its OpenAPI schema describes it."""

    name: str
    kind: FieldKind
    description: str
    required: bool = False
    default: Scalar | None = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Scalar, ...] = ()

    def schema(self, order: int) -> dict[str, Any]:
        """The property's OpenAPI schema, as Cog writes it."""
        prop: dict[str, Any] = {
            "type": "string" if self.kind == "file" else self.kind,
            "title": self.name.replace("_", " ").title(),
            "description": self.description,
            "x-order": order,
        }
        if self.kind == "file":
            prop["format"] = "uri"
        if self.default is not None:
            prop["default"] = self.default
        if self.minimum is not None:
            prop["minimum"] = self.minimum
        if self.maximum is not None:
            prop["maximum"] = self.maximum
        if self.choices:
            prop["enum"] = list(self.choices)
        return prop


@dataclass(frozen=True)
class InvalidField:
    """One problem with one input, as an entry of Replicate's `invalid_fields`.

    type: the JSON Schema check that failed (`required`, `invalid_type`, `enum`,
    `number_range`, ...); field: the input's path (`input.prompt`, `(root)` for the
    body itself); description: a sentence for a person.
    """

    type: str
    field: str
    description: str

    def to_json(self) -> dict[str, str]:
        """`{"type", "field", "description"}`, one item of a 422's `invalid_fields`
        (see `services.replicate.emulator.problems`)."""
        return {"type": self.type, "field": self.field, "description": self.description}


@dataclass(frozen=True)
class ModelSpec:
    """A model of the catalog: identity, inputs, and what its predictions produce."""

    owner: str
    name: str
    description: str
    task: Task
    inputs: tuple[InputField, ...]
    # Official models run at `POST /v1/models/{owner}/{name}/predictions` without a
    # version; community models need `POST /v1/predictions` with a version.
    official: bool = True
    version_id: str = ""
    # The input holding the picture to start from (img2img or image-to-video), if any.
    image_input: str | None = None
    # Extra file inputs that are fetched and checked like the image (not otherwise used
    # except `end_image`, which a clip cross-fades to).
    extra_file_inputs: tuple[str, ...] = ()
    # Video: frames per second when the model has no fps input, clip seconds when it has
    # no duration input, and the frame count when the model always makes the same (wan).
    video_fps: int = 24
    video_seconds: int = 5
    video_frames: int | None = None
    created_at: str = "2024-08-01T00:00:00.000000Z"
    output_schema: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """`owner/name`."""
        return f"{self.owner}/{self.name}"

    @property
    def version(self) -> str:
        """The 64-hex version id: the real one where known, else a stable hash of the name."""
        return self.version_id or hashlib.sha256(f"emulator:{self.ref}".encode()).hexdigest()

    def field_named(self, name: str) -> InputField | None:
        """The input called `name`, or None if the model has no such input."""
        return next((item for item in self.inputs if item.name == name), None)

    def openapi_schema(self) -> dict[str, Any]:
        """An OpenAPI document like the one Cog publishes for a version."""
        return {
            "openapi": "3.0.2",
            "info": {"title": "Cog", "version": "0.1.0"},
            "paths": {},
            "components": {
                "schemas": {
                    "Input": {
                        "type": "object",
                        "title": "Input",
                        "required": [item.name for item in self.inputs if item.required],
                        "properties": {
                            item.name: item.schema(order) for order, item in enumerate(self.inputs)
                        },
                    },
                    "Output": dict(self.output_schema),
                }
            },
        }
