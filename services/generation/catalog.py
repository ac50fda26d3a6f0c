"""The generation models we offer, by kind, with their Replicate model and parameters.

Each model's `params` is the one definition of what a client may pass in `params`:
`generationModels` lists it (type, limits, choices, default) and `clean_params`
checks a request against the very same `Param`s, before anything is written or
sent. A bad value is an `InvalidInput` (INVALID_PARAM) naming the parameter.

The parameters, their types, limits and defaults are those of each model's
input schema on Replicate (the `Input` schema of the version the model runs,
as `GET /v1/models/{owner}/{name}` returns it in `latest_version.openapi_schema`;
read from the nodes nodetool-ai/nodetool-replicate generates from those schemas,
`src/nodetool/nodes/replicate/{image,video,text}/generate.py`):

- black-forest-labs/flux-schnell, version c846a699…; flux-dev, version 6e4a938f…
- kwaivgi/kling-v2.1, version daad218f…
- minimax/video-01, version 5aa83526…
- wavespeedai/wan-2.1-i2v-480p, version e2870aa4…
- meta/meta-llama-3-8b-instruct, version 5a6809ca…

(The same schemas are reproduced by the emulator in `services.replicate.emulator.catalog`,
and a test checks that every parameter here is one the emulated model accepts,
within its limits.) A limit here may be tighter than Replicate's, never looser;
a default differs from Replicate's only where a comment says why.

Not client parameters: the inputs we set ourselves (the prompt, our seed, the
input image, `num_outputs`); other file and URL inputs, which would make the
provider fetch whatever a client names (kling's `end_image`, minimax's
`subject_reference`, wan's `lora_weights` with its `lora_scale`); and
`disable_safety_checker`, which stays at Replicate's default (on).

`provider_input` builds what is sent from the stored parameters alone,
checking them again, so nothing else a client wrote (an import's `metadata`, a
parameter from before a rule existed) reaches the provider.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.errors import InvalidInput
from services.validation import PROMPT_MAX, Checks, shortened, shown

SEED_LIMIT = 2**31

Scalar = int | float | str | bool
"""A parameter's value, as JSON has it: an integer, a float, a string or a boolean."""


class ModelKind(enum.StrEnum):
    """What a model is asked to do (prompt to image, image and prompt to image or clip,
    prompt to text); `DEFAULTS` names the model for each kind a request leaves open."""

    TEXT_TO_IMAGE = "TEXT_TO_IMAGE"
    IMAGE_TO_IMAGE = "IMAGE_TO_IMAGE"
    IMAGE_TO_VIDEO = "IMAGE_TO_VIDEO"
    TEXT = "TEXT"


class ModelParameterType(enum.StrEnum):
    """What a parameter takes, in JSON terms (an OpenAPI input schema's `type`/`enum`)."""

    INT = "INT"  # a whole number: 4, never 4.5, "4" or true
    FLOAT = "FLOAT"  # any finite number; a whole one (3) is taken as 3.0
    STRING = "STRING"
    BOOLEAN = "BOOLEAN"
    ENUM = "ENUM"  # exactly one of `choices`, in the choice's own JSON type


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite_float(value: int | float) -> float | None:
    """`value` as a finite float, or None (NaN, an infinity, an integer too big for a float)."""
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class Param:
    """One parameter a client may set in `params`: its type, limits, choices and default.

    Build one with `Param.integer`, `Param.number`, `Param.text`, `Param.flag` or
    `Param.choice`. `minimum`/`maximum` (inclusive) apply to INT and FLOAT and are
    of the parameter's type; `choices` lists an ENUM's values; `max_length` bounds a
    STRING in characters. The default must itself be valid (checked on creation,
    so a catalog mistake fails at import, not on a request):

        Param.integer("output_quality", 90, "Compression quality.", minimum=0, maximum=100)

    Raises ValueError for a definition that contradicts itself.
    """

    name: str
    type: ModelParameterType
    default: Scalar
    description: str
    minimum: int | float | None = None
    maximum: int | float | None = None
    choices: tuple[Scalar, ...] = ()
    max_length: int | None = None

    def __post_init__(self) -> None:
        numeric = self.type in (ModelParameterType.INT, ModelParameterType.FLOAT)
        if not numeric and (self.minimum is not None or self.maximum is not None):
            raise ValueError(f"{self.name}: only INT and FLOAT parameters have limits")
        if (self.type is ModelParameterType.ENUM) != bool(self.choices):
            raise ValueError(f"{self.name}: an ENUM, and only an ENUM, lists its choices")
        if self.max_length is not None and self.type is not ModelParameterType.STRING:
            raise ValueError(f"{self.name}: only a STRING has a maximum length")
        checks = Checks()
        self.check(checks, self.default, ("default",))
        if checks.errors:
            raise ValueError(f"{self.name}: {checks.errors[0].message}")

    @classmethod
    def integer(
        cls, name: str, default: int, description: str, *, minimum: int, maximum: int
    ) -> Param:
        """An INT parameter between `minimum` and `maximum` (inclusive)."""
        return cls(name, ModelParameterType.INT, default, description, minimum, maximum)

    @classmethod
    def number(
        cls,
        name: str,
        default: float,
        description: str,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> Param:
        """A FLOAT parameter; its default and limits are held as floats (3 becomes 3.0)."""
        return cls(
            name,
            ModelParameterType.FLOAT,
            float(default),
            description,
            None if minimum is None else float(minimum),
            None if maximum is None else float(maximum),
        )

    @classmethod
    def text(
        cls, name: str, default: str, description: str, *, max_length: int = PROMPT_MAX
    ) -> Param:
        """A STRING parameter of at most `max_length` characters."""
        return cls(name, ModelParameterType.STRING, default, description, max_length=max_length)

    @classmethod
    def flag(cls, name: str, default: bool, description: str) -> Param:
        """A BOOLEAN parameter."""
        return cls(name, ModelParameterType.BOOLEAN, default, description)

    @classmethod
    def choice(
        cls, name: str, choices: Sequence[Scalar], default: Scalar, description: str
    ) -> Param:
        """An ENUM parameter: one of `choices`, each in its own JSON type (5, not "5")."""
        return cls(name, ModelParameterType.ENUM, default, description, choices=tuple(choices))

    def check(self, checks: Checks, value: Any, field: Sequence[str]) -> Any:
        """`value` as it will be sent, or None with an INVALID_PARAM recorded on `checks`."""
        label = f"`{self.name}`"
        match self.type:
            case ModelParameterType.INT if not _is_int(value):
                return self._refuse(checks, field, f"{label} must be a whole number", value)
            case ModelParameterType.FLOAT if not _is_number(value):
                return self._refuse(checks, field, f"{label} must be a number", value)
            case ModelParameterType.FLOAT:
                number = _finite_float(value)
                if number is None:
                    # NaN passes every range comparison and neither JSON nor JSONB stores
                    # it: refused here, it never reaches a row or the provider.
                    return self._refuse(
                        checks,
                        field,
                        f"{label} must be a finite number (not NaN or Infinity)",
                        value,
                    )
                value = number
            case ModelParameterType.STRING if not isinstance(value, str):
                return self._refuse(checks, field, f"{label} must be a string", value)
            case ModelParameterType.STRING:
                if self.max_length is not None and len(value) > self.max_length:
                    checks.fail(
                        "INVALID_PARAM",
                        f"{label} is {len(value)} characters long; the limit is {self.max_length}.",
                        field,
                    )
                    return None
                checks.storable(value, field=field, label=label)
            case ModelParameterType.BOOLEAN if not isinstance(value, bool):
                return self._refuse(checks, field, f"{label} must be true or false", value)
            case ModelParameterType.ENUM if not any(
                type(value) is type(choice) and value == choice for choice in self.choices
            ):
                listed = ", ".join(shown(choice) for choice in self.choices)
                return self._refuse(checks, field, f"{label} must be one of {listed}", value)
        low, high = self.minimum, self.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            if low is not None and high is not None:
                bounds = f"between {low} and {high}"
            else:
                bounds = f"at least {low}" if low is not None else f"at most {high}"
            return self._refuse(checks, field, f"{label} must be {bounds}", value)
        return value

    @staticmethod
    def _refuse(checks: Checks, field: Sequence[str], rule: str, value: object) -> None:
        checks.fail("INVALID_PARAM", f"{rule}; got {shown(value)}.", field)


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
        """The client parameter `name` (its input name on Replicate), or None."""
        return next((p for p in self.params if p.name == name), None)

    def clean_params(
        self, checks: Checks, params: Mapping[str, Any] | None, field: Sequence[str] = ("params",)
    ) -> dict[str, Any]:
        """Every parameter of the model: the client's, checked, and the default for the rest.

        An unknown name or a bad value is recorded on `checks` (INVALID_PARAM, with
        the field path `params.<name>`); an unknown name is shown cut short, in the
        message and in the path (`shortened`).
        """
        cleaned: dict[str, Any] = {p.name: p.default for p in self.params}
        for name, value in (params or {}).items():
            param = self.param(name)
            if param is None:
                allowed = ", ".join(p.name for p in self.params) or "none"
                checks.fail(
                    "INVALID_PARAM",
                    f"{self.key} has no parameter `{shortened(name)}` (allowed: {allowed}).",
                    (*field, shortened(name)),
                )
                continue
            cleaned[name] = param.check(checks, value, (*field, name))
        return cleaned


# Storyboard frames are wide: 16:9 unless asked (Replicate's default is 1:1).
ASPECT_RATIOS = ("1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21")
_ASPECT = Param.choice("aspect_ratio", ASPECT_RATIOS, "16:9", "Width to height of the image.")
_FORMAT = Param.choice("output_format", ("webp", "jpg", "png"), "webp", "Image file format.")
# 90 rather than Replicate's 80: the images are the storyboard itself, and are kept.
_QUALITY = Param.integer(
    "output_quality",
    90,
    "Compression quality from 0 to 100 (not used for png).",
    minimum=0,
    maximum=100,
)
_GO_FAST = Param.flag(
    "go_fast", True, "Faster, fp8-quantized sampling; not deterministic even with a seed."
)
_MEGAPIXELS = Param.choice(
    "megapixels", ("1", "0.25"), "1", "Approximate size of the image in megapixels."
)
_NEGATIVE_PROMPT = Param.text("negative_prompt", "", "What to keep out of the clip.")

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
            _GO_FAST,
            _MEGAPIXELS,
            Param.integer(
                "num_inference_steps",
                4,
                "Denoising steps; fewer are faster and rougher.",
                minimum=1,
                maximum=4,
            ),
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
            Param.number(
                "prompt_strength",
                0.8,
                "How far to move from the input image: 0 keeps it, 1 replaces it.",
                minimum=0,
                maximum=1,
            ),
            Param.integer(
                "num_inference_steps",
                28,
                "Denoising steps; 28 to 50 is recommended.",
                minimum=1,
                maximum=50,
            ),
            Param.number("guidance", 3, "How closely to follow the prompt.", minimum=0, maximum=10),
            _GO_FAST,
            _MEGAPIXELS,
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
            Param.choice("duration", (5, 10), 5, "Clip length in seconds."),
            Param.choice(
                "mode", ("standard", "pro"), "standard", "standard is 720p, pro is 1080p; 24 fps."
            ),
            _NEGATIVE_PROMPT,
        ),
        image_input="start_image",
        output_extension="mp4",
    ),
    GenerationModel(
        key="minimax-video-01",
        replicate_model="minimax/video-01",
        kinds=(ModelKind.IMAGE_TO_VIDEO,),
        description="MiniMax video-01 (Hailuo): six-second 720p clips from a first frame.",
        params=(
            Param.flag(
                "prompt_optimizer", True, "Let MiniMax rewrite the prompt for better results."
            ),
        ),
        image_input="first_frame_image",
        output_extension="mp4",
    ),
    GenerationModel(
        key="wan-2.1-i2v",
        replicate_model="wavespeedai/wan-2.1-i2v-480p",
        kinds=(ModelKind.IMAGE_TO_VIDEO,),
        description="Wan 2.1 14B image-to-video: 480p clips of 81 frames at 16 fps.",
        params=(
            Param.choice("aspect_ratio", ("16:9", "9:16"), "16:9", "Shape of the clip."),
            _NEGATIVE_PROMPT,
            Param.choice(
                "fast_mode",
                ("Off", "Balanced", "Fast"),
                "Balanced",
                "How much to speed generation up; faster may lose some quality.",
            ),
            Param.integer(
                "sample_steps", 30, "Inference steps; fewer are faster.", minimum=1, maximum=40
            ),
            Param.number(
                "sample_guide_scale",
                5,
                "How closely to follow the prompt.",
                minimum=1,
                maximum=10,
            ),
            Param.integer("sample_shift", 3, "Flow shift of the sampler.", minimum=0, maximum=10),
        ),
        image_input="image",
        output_extension="mp4",
    ),
    GenerationModel(
        key="llama-3-8b-instruct",
        replicate_model="meta/meta-llama-3-8b-instruct",
        kinds=(ModelKind.TEXT,),
        description="Llama 3 8B Instruct: text, for planning prompts and shot lists.",
        params=(
            # Replicate sets no upper limit; ours keeps one answer to a bounded cost.
            Param.integer("max_tokens", 512, "The most tokens to write.", minimum=1, maximum=4096),
            Param.text(
                "system_prompt", "You are a helpful assistant", "Instructions for the model."
            ),
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
    """The model named `key` (or the default for `kind`), which must do `kind`.

    Raises nothing: records UNKNOWN_MODEL (returning the default, so checks go on) or
    WRONG_MODEL_KIND on `checks`, at the field path `field`.
    """
    model = _BY_KEY.get(key or DEFAULTS[kind])
    if model is None:
        known = ", ".join(m.key for m in MODELS if kind in m.kinds)
        checks.fail(
            "UNKNOWN_MODEL", f"No model {shown(key)}; for this, use one of: {known}.", field
        )
        return _BY_KEY[DEFAULTS[kind]]
    if kind not in model.kinds:
        known = ", ".join(m.key for m in MODELS if kind in m.kinds)
        checks.fail(
            "WRONG_MODEL_KIND",
            f"{model.key} does not do {kind.value.lower().replace('_', '-')}; use one of: {known}.",
            field,
        )
    return model


def by_key(key: str) -> GenerationModel:
    """The model whose `key` this is; raises KeyError for a key the catalog does not have."""
    return _BY_KEY[key]


def by_replicate_model(name: str) -> GenerationModel | None:
    """The model that runs `name` on Replicate (owner/name), or None."""
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
        raise InvalidInput(f"Unknown model {shown(name)}.", code="UNKNOWN_MODEL")
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
