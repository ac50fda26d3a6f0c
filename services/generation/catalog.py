"""The generation models we offer, by kind, with their Replicate model and parameters.

Parameters a client passes (`params`) are validated here against the model,
before anything is written or sent: a bad one is an `InvalidInput` naming the
parameter. Inputs we set ourselves (prompt, seed, the input image) are not
client parameters. `provider_input` builds what is sent from those two sources
alone, checking the stored parameters again, so nothing else a client wrote
(an import's `metadata`, a parameter from before a rule existed) reaches the
provider.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.errors import InvalidInput
from services.validation import Checks

SEED_LIMIT = 2**31


class ModelKind(enum.StrEnum):
    TEXT_TO_IMAGE = "TEXT_TO_IMAGE"
    IMAGE_TO_IMAGE = "IMAGE_TO_IMAGE"
    IMAGE_TO_VIDEO = "IMAGE_TO_VIDEO"
    TEXT = "TEXT"


@dataclass(frozen=True)
class Param:
    """One parameter a client may set, with its bounds."""

    name: str
    type: type
    default: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] = ()

    def check(self, checks: Checks, value: Any, field: Sequence[str]) -> Any:
        wanted = self.type
        valid_type = isinstance(value, wanted) and not (
            wanted is not bool and isinstance(value, bool)
        )
        if wanted is float and isinstance(value, int) and not isinstance(value, bool):
            value, valid_type = float(value), True
        if not valid_type:
            checks.fail("INVALID_PARAM", f"`{self.name}` must be a {wanted.__name__}.", field)
            return None
        if isinstance(value, float) and not math.isfinite(value):
            # NaN passes every range comparison and neither JSON nor JSONB stores it:
            # refused here, it never reaches a row or the provider.
            checks.fail(
                "INVALID_PARAM",
                f"`{self.name}` must be a finite number (not NaN or Infinity).",
                field,
            )
            return None
        if isinstance(value, str):
            checks.storable(value, field=field, label=f"`{self.name}`")
        if self.choices and value not in self.choices:
            listed = ", ".join(str(c) for c in self.choices)
            checks.fail("INVALID_PARAM", f"`{self.name}` must be one of {listed}.", field)
        if self.minimum is not None and value < self.minimum:
            checks.fail("INVALID_PARAM", f"`{self.name}` must be at least {self.minimum}.", field)
        if self.maximum is not None and value > self.maximum:
            checks.fail("INVALID_PARAM", f"`{self.name}` must be at most {self.maximum}.", field)
        return value


@dataclass(frozen=True)
class GenerationModel:
    """A model we run on Replicate, and how we call it."""

    key: str
    replicate_model: str
    kinds: tuple[ModelKind, ...]
    description: str
    params: tuple[Param, ...] = ()
    image_input: str | None = None  # the input that takes an image, for img2img and video
    fixed_input: Mapping[str, Any] = field(default_factory=dict)
    output_extension: str = "webp"

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def clean_params(
        self, checks: Checks, params: Mapping[str, Any] | None, field: Sequence[str] = ("params",)
    ) -> dict[str, Any]:
        """The client's params, checked and with defaults filled in."""
        given = dict(params or {})
        cleaned = {p.name: p.default for p in self.params if p.default is not None}
        for name, value in given.items():
            param = self.param(name)
            if param is None:
                allowed = ", ".join(p.name for p in self.params) or "none"
                checks.fail(
                    "INVALID_PARAM",
                    f"{self.key} has no parameter `{name}` (allowed: {allowed}).",
                    (*field, name),
                )
                continue
            cleaned[name] = param.check(checks, value, (*field, name))
        return cleaned


ASPECT_RATIOS = ("1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21")
_ASPECT = Param("aspect_ratio", str, "16:9", "Width to height of the image.", choices=ASPECT_RATIOS)
_FORMAT = Param("output_format", str, "webp", "Image file format.", choices=("webp", "jpg", "png"))
_QUALITY = Param("output_quality", int, 90, "Compression quality, 0..100.", minimum=0, maximum=100)

MODELS: tuple[GenerationModel, ...] = (
    GenerationModel(
        key="flux-schnell",
        replicate_model="black-forest-labs/flux-schnell",
        kinds=(ModelKind.TEXT_TO_IMAGE,),
        description="FLUX.1 [schnell]: fast text-to-image, the default for first batches.",
        params=(
            _ASPECT,
            _FORMAT,
            _QUALITY,
            Param("go_fast", bool, None, "Faster, lower-precision sampling."),
        ),
        fixed_input={"num_outputs": 1},
    ),
    GenerationModel(
        key="flux-dev",
        replicate_model="black-forest-labs/flux-dev",
        kinds=(ModelKind.TEXT_TO_IMAGE, ModelKind.IMAGE_TO_IMAGE),
        description="FLUX.1 [dev]: higher-quality text-to-image, and image-to-image refinement.",
        params=(
            _ASPECT,
            _FORMAT,
            _QUALITY,
            Param(
                "prompt_strength",
                float,
                0.8,
                "How far to move from the input image: 0 keeps it, 1 replaces it.",
                minimum=0.0,
                maximum=1.0,
            ),
            Param(
                "num_inference_steps", int, None, "Denoising steps, 1..50.", minimum=1, maximum=50
            ),
            Param("guidance", float, None, "Prompt guidance, 0..10.", minimum=0.0, maximum=10.0),
        ),
        image_input="image",
        fixed_input={"num_outputs": 1},
    ),
    GenerationModel(
        key="kling-v2.1",
        replicate_model="kwaivgi/kling-v2.1",
        kinds=(ModelKind.IMAGE_TO_VIDEO,),
        description="Kling v2.1: 5 or 10 second image-to-video clips; the default for animation.",
        params=(
            Param("duration", int, 5, "Clip length in seconds.", choices=(5, 10)),
            Param("negative_prompt", str, None, "What to keep out of the clip."),
            Param(
                "mode", str, None, "standard (720p) or pro (1080p).", choices=("standard", "pro")
            ),
        ),
        image_input="start_image",
        output_extension="mp4",
    ),
    GenerationModel(
        key="minimax-video-01",
        replicate_model="minimax/video-01",
        kinds=(ModelKind.IMAGE_TO_VIDEO,),
        description="MiniMax video-01: six-second clips from a first frame.",
        image_input="first_frame_image",
        output_extension="mp4",
    ),
    GenerationModel(
        key="wan-2.1-i2v",
        replicate_model="wavespeedai/wan-2.1-i2v-480p",
        kinds=(ModelKind.IMAGE_TO_VIDEO,),
        description="Wan 2.1 image-to-video at 480p.",
        image_input="image",
        output_extension="mp4",
    ),
    GenerationModel(
        key="llama-3-8b-instruct",
        replicate_model="meta/meta-llama-3-8b-instruct",
        kinds=(ModelKind.TEXT,),
        description="Llama 3 8B Instruct: text, for planning prompts and shot lists.",
        params=(
            Param("max_tokens", int, 512, "The most tokens to write.", minimum=1, maximum=4096),
            Param("system_prompt", str, None, "Instructions for the model."),
        ),
        output_extension="txt",
    ),
)

DEFAULTS: Mapping[ModelKind, str] = {
    ModelKind.TEXT_TO_IMAGE: "flux-schnell",
    ModelKind.IMAGE_TO_IMAGE: "flux-dev",
    ModelKind.IMAGE_TO_VIDEO: "kling-v2.1",
    ModelKind.TEXT: "llama-3-8b-instruct",
}
_BY_KEY = {model.key: model for model in MODELS}


def choose(
    checks: Checks, key: str | None, kind: ModelKind, field: Sequence[str] = ("model",)
) -> GenerationModel:
    """The model named `key` (or the default for `kind`), which must do `kind`."""
    model = _BY_KEY.get(key or DEFAULTS[kind])
    if model is None:
        known = ", ".join(m.key for m in MODELS if kind in m.kinds)
        checks.fail("UNKNOWN_MODEL", f"No model {key!r}; for this, use one of: {known}.", field)
        return _BY_KEY[DEFAULTS[kind]]
    if kind not in model.kinds:
        known = ", ".join(m.key for m in MODELS if kind in m.kinds)
        checks.fail(
            "WRONG_MODEL_KIND",
            f"{model.key} does not do {kind.value.lower().replace('_', '-')}; use one of: {known}.",
            field,
        )
    return model


def by_replicate_model(name: str) -> GenerationModel | None:
    return next((m for m in MODELS if m.replicate_model == name), None)


def provider_input(
    stored: Mapping[str, Any] | object | None, *, fallback_model: str | None
) -> tuple[GenerationModel, dict[str, Any]]:
    """The model and input for a prediction, from a row's stored generation parameters.

    `stored` is what `start_iteration` or `animate_shot` wrote: `model` (the
    Replicate name), our `seed`, and the cleaned `params`. Every parameter is
    checked against the model again; the model's fixed input and our seed come
    last, so no parameter overrides them. The caller adds the prompt and the
    input image. Raises `InvalidInput` (UNKNOWN_MODEL, INVALID_PARAM).
    """
    if stored is not None and not isinstance(stored, Mapping):
        raise InvalidInput(
            "The stored parameters are not valid for this model: they are not an object.",
            code="INVALID_PARAM",
        )
    given = dict(stored or {})
    name = given.pop("model", fallback_model)
    model = by_replicate_model(name) if isinstance(name, str) else None
    if model is None:
        raise InvalidInput(f"Unknown model {name!r}.", code="UNKNOWN_MODEL")
    seed = given.pop("seed", None)
    checks = Checks()
    params = model.clean_params(checks, given)
    if checks.errors:
        raise InvalidInput(
            "The stored parameters are not valid for this model: "
            + "; ".join(error.message for error in checks.errors),
            code="INVALID_PARAM",
        )
    ours: dict[str, Any] = {}
    if isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < SEED_LIMIT:
        ours["seed"] = seed
    return model, {**params, **model.fixed_input, **ours}
