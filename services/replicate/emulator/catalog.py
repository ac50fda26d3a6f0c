"""The models the emulator runs, by reference and by version.

Each is a `ModelSpec` (`services.replicate.emulator.specs`) listing its inputs as
the real model's OpenAPI schema on Replicate does (type, default, bounds, choices;
the latest version's, as nodetool-ai/nodetool-replicate generates its nodes from
them in `src/nodetool/nodes/replicate/{image,video,text}/generate.py`);
`services.replicate.emulator.validation` checks a request's `input` against it.
"""

from __future__ import annotations

from typing import Any, Final

from services.replicate.emulator.specs import InputField, ModelSpec

ASPECT_RATIOS: Final = (
    "1:1",
    "16:9",
    "21:9",
    "3:2",
    "2:3",
    "4:5",
    "5:4",
    "3:4",
    "4:3",
    "9:16",
    "9:21",
)
OUTPUT_FORMATS: Final = ("webp", "jpg", "png")


def _prompt(required: bool = True) -> InputField:
    return InputField(
        "prompt", "string", "Prompt for generated image", required=required, default=None
    )


def _seed() -> InputField:
    return InputField("seed", "integer", "Random seed. Set for reproducible generation")


def _image_outputs() -> dict[str, Any]:
    return {"type": "array", "title": "Output", "items": {"type": "string", "format": "uri"}}


def _video_output() -> dict[str, Any]:
    return {"type": "string", "title": "Output", "format": "uri"}


_FLUX_COMMON: Final = (
    InputField(
        "aspect_ratio",
        "string",
        "Aspect ratio for the generated image",
        default="1:1",
        choices=ASPECT_RATIOS,
    ),
    InputField(
        "num_outputs", "integer", "Number of outputs to generate", default=1, minimum=1, maximum=4
    ),
)
_FLUX_TAIL: Final = (
    _seed(),
    InputField(
        "output_format",
        "string",
        "Format of the output images",
        default="webp",
        choices=OUTPUT_FORMATS,
    ),
    InputField(
        "output_quality",
        "integer",
        "Quality when saving the output images, from 0 to 100 (not relevant for .png outputs)",
        default=80,
        minimum=0,
        maximum=100,
    ),
    InputField(
        "disable_safety_checker",
        "boolean",
        "Disable safety checker for generated images.",
        default=False,
    ),
    InputField(
        "go_fast",
        "boolean",
        "Run faster predictions with a model optimized for speed",
        default=True,
    ),
    InputField(
        "megapixels",
        "string",
        "Approximate number of megapixels for generated image",
        default="1",
        choices=("1", "0.25"),
    ),
)

FLUX_SCHNELL: Final = ModelSpec(
    owner="black-forest-labs",
    name="flux-schnell",
    description=(
        "The fastest image generation model tailored for local development and personal use"
    ),
    task="text-to-image",
    inputs=(
        _prompt(),
        *_FLUX_COMMON,
        InputField(
            "num_inference_steps",
            "integer",
            (
                "Number of denoising steps. 4 is recommended, and lower "
                "number of steps produce lower quality outputs, faster."
            ),
            default=4,
            minimum=1,
            maximum=4,
        ),
        *_FLUX_TAIL,
    ),
    output_schema=_image_outputs(),
)

FLUX_DEV: Final = ModelSpec(
    owner="black-forest-labs",
    name="flux-dev",
    description=(
        "A 12 billion parameter rectified flow transformer capable "
        "of generating images from text descriptions"
    ),
    task="text-to-image",
    image_input="image",
    inputs=(
        _prompt(),
        *_FLUX_COMMON[:1],
        InputField(
            "image",
            "file",
            (
                "Input image for image to image mode. The aspect ratio of "
                "your output will match this image"
            ),
        ),
        InputField(
            "prompt_strength",
            "number",
            (
                "Prompt strength when using img2img. 1.0 corresponds to full "
                "destruction of information in image"
            ),
            default=0.8,
            minimum=0,
            maximum=1,
        ),
        *_FLUX_COMMON[1:],
        InputField(
            "num_inference_steps",
            "integer",
            "Number of denoising steps. Recommended range is 28-50",
            default=28,
            minimum=1,
            maximum=50,
        ),
        InputField(
            "guidance", "number", "Guidance for generated image", default=3, minimum=0, maximum=10
        ),
        *_FLUX_TAIL,
    ),
    output_schema=_image_outputs(),
)

KLING_V21: Final = ModelSpec(
    owner="kwaivgi",
    name="kling-v2.1",
    description=(
        "Use Kling v2.1 to generate 5s and 10s videos in 720p and "
        "1080p resolution from a starting image"
    ),
    task="image-to-video",
    image_input="start_image",
    extra_file_inputs=("end_image",),
    video_fps=24,
    inputs=(
        InputField("prompt", "string", "Text prompt for video generation", required=True),
        InputField(
            "start_image",
            "file",
            "First frame of the video. You must use a start image with kling-v2.1.",
            required=True,
        ),
        InputField(
            "mode",
            "string",
            "Standard has a resolution of 720p, pro is 1080p. Both are 24fps.",
            default="standard",
            choices=("standard", "pro"),
        ),
        InputField(
            "duration", "integer", "Duration of the video in seconds", default=5, choices=(5, 10)
        ),
        InputField(
            "negative_prompt", "string", "Things you do not want to see in the video", default=""
        ),
        InputField("end_image", "file", "Last frame of the video (pro mode only)"),
    ),
    output_schema=_video_output(),
)

MINIMAX_VIDEO_01: Final = ModelSpec(
    owner="minimax",
    name="video-01",
    description="Generate 6s videos with prompts or images. (Also known as Hailuo)",
    task="image-to-video",
    image_input="first_frame_image",
    extra_file_inputs=("subject_reference",),
    video_fps=25,
    video_seconds=6,
    inputs=(
        InputField("prompt", "string", "Text prompt for generation", required=True),
        InputField("prompt_optimizer", "boolean", "Use prompt optimizer", default=True),
        InputField(
            "first_frame_image",
            "file",
            (
                "First frame image for video generation. The output video "
                "will have the same aspect ratio as this image."
            ),
        ),
        InputField(
            "subject_reference",
            "file",
            "An optional character reference image to use as the subject in the generated video",
        ),
    ),
    output_schema=_video_output(),
)

# The schema of version e2870aa4 (the latest): an aspect ratio instead of the first
# versions' max_area, and a fixed 81 frames at 16 fps instead of num_frames and
# frames_per_second inputs.
WAN_I2V_480P: Final = ModelSpec(
    owner="wavespeedai",
    name="wan-2.1-i2v-480p",
    description=(
        "Accelerated inference for Wan 2.1 14B image to video, a comprehensive and open "
        "suite of video foundation models that pushes the boundaries of video generation."
    ),
    task="image-to-video",
    version_id="e2870aa4965fd9ddfd87c16a3c8ab952c18e745e63f3f3b123c2dc8b538ad2b5",
    image_input="image",
    video_fps=16,
    video_frames=81,
    created_at="2025-02-26T20:09:34.365160Z",
    inputs=(
        InputField("prompt", "string", "Text prompt for image generation", required=True),
        InputField(
            "negative_prompt", "string", "Negative prompt to avoid certain elements", default=""
        ),
        InputField(
            "aspect_ratio",
            "string",
            "Aspect ratio of the output video.",
            default="16:9",
            choices=("16:9", "9:16"),
        ),
        InputField(
            "image", "file", "Image for use as the initial frame of the video.", required=True
        ),
        InputField(
            "fast_mode",
            "string",
            (
                "Speed up generation with different levels of acceleration. Faster modes may "
                "degrade quality somewhat. The speedup is dependent on the content, so "
                "different videos may see different speedups."
            ),
            default="Balanced",
            choices=("Off", "Balanced", "Fast"),
        ),
        _seed(),
        InputField(
            "sample_guide_scale",
            "number",
            "Guidance scale for generation",
            default=5,
            minimum=1,
            maximum=10,
        ),
        InputField(
            "sample_steps",
            "integer",
            "Number of inference steps",
            default=30,
            minimum=1,
            maximum=40,
        ),
        InputField(
            "sample_shift",
            "integer",
            "Flow shift parameter for video generation",
            default=3,
            minimum=0,
            maximum=10,
        ),
        InputField(
            "lora_weights",
            "string",
            (
                "Load LoRA weights. Supports HuggingFace URLs in the format "
                "huggingface.co/<owner>/<model-name>, CivitAI URLs in the format "
                "civitai.com/models/<id>[/<model-name>], or arbitrary .safetensors URLs "
                "from the Internet."
            ),
        ),
        InputField(
            "lora_scale",
            "number",
            (
                "Determines how strongly the main LoRA should be applied. Sane results "
                "between 0 and 1 for base inference."
            ),
            default=1,
            minimum=0,
            maximum=4,
        ),
        InputField(
            "disable_safety_checker",
            "boolean",
            "Disable safety checker for generated videos",
            default=False,
        ),
    ),
    output_schema=_video_output(),
)

STABLE_VIDEO_DIFFUSION: Final = ModelSpec(
    owner="stability-ai",
    name="stable-video-diffusion",
    description="SVD is a research-only image to video model",
    task="image-to-video",
    official=False,
    version_id="3f0457e4619daac51203dedb472816fd4af51f3149fa7a9e0b5ffcf1b8172438",
    image_input="input_image",
    created_at="2023-11-21T00:00:00.000000Z",
    inputs=(
        InputField("input_image", "file", "Input image", required=True),
        InputField(
            "video_length",
            "string",
            "Use svd to generate 14 frames or svd_xt for 25 frames",
            default="14_frames_with_svd",
            choices=("14_frames_with_svd", "25_frames_with_svd_xt"),
        ),
        InputField(
            "sizing_strategy",
            "string",
            "Decide how to resize the input image",
            default="maintain_aspect_ratio",
            choices=("maintain_aspect_ratio", "crop_to_16_9", "use_image_dimensions"),
        ),
        InputField(
            "frames_per_second", "integer", "Frames per second", default=6, minimum=5, maximum=30
        ),
        InputField(
            "motion_bucket_id",
            "integer",
            "Increase overall motion in the generated video",
            default=127,
            minimum=1,
            maximum=255,
        ),
        InputField("cond_aug", "number", "Amount of noise to add to input image", default=0.02),
        InputField("decoding_t", "integer", "Number of frames to decode at a time", default=14),
        _seed(),
    ),
    output_schema=_video_output(),
)

LLAMA_3_8B_INSTRUCT: Final = ModelSpec(
    owner="meta",
    name="meta-llama-3-8b-instruct",
    description="An 8 billion parameter language model from Meta, fine tuned for chat completions",
    task="text",
    inputs=(
        InputField("prompt", "string", "Prompt", default=""),
        InputField(
            "system_prompt",
            "string",
            (
                "System prompt to send to the model. This is prepended to "
                "the prompt and helps guide system behavior."
            ),
            default="You are a helpful assistant",
        ),
        InputField(
            "max_tokens",
            "integer",
            "The maximum number of tokens the model should generate as output.",
            default=512,
            minimum=1,
        ),
        InputField(
            "min_tokens",
            "integer",
            "The minimum number of tokens the model should generate as output.",
            default=0,
            minimum=0,
        ),
        InputField(
            "temperature",
            "number",
            "The value used to modulate the next token probabilities.",
            default=0.6,
            minimum=0,
            maximum=5,
        ),
        InputField(
            "top_p",
            "number",
            "A probability threshold for generating the output.",
            default=0.9,
            minimum=0,
            maximum=1,
        ),
        InputField(
            "top_k",
            "integer",
            "The number of highest probability tokens to consider.",
            default=50,
            minimum=0,
        ),
        InputField("presence_penalty", "number", "Presence penalty", default=0),
        InputField("frequency_penalty", "number", "Frequency penalty", default=0),
        InputField(
            "stop_sequences",
            "string",
            "A comma-separated list of sequences to stop generation at.",
            default="<|end_of_text|>,<|eot_id|>",
        ),
        InputField("prompt_template", "string", "Prompt template.", default="{prompt}"),
        _seed(),
    ),
    output_schema={
        "type": "array",
        "title": "Output",
        "items": {"type": "string"},
        "x-cog-array-type": "iterator",
        "x-cog-array-display": "concatenate",
    },
)

MODELS: Final[tuple[ModelSpec, ...]] = (
    FLUX_SCHNELL,
    FLUX_DEV,
    KLING_V21,
    MINIMAX_VIDEO_01,
    WAN_I2V_480P,
    STABLE_VIDEO_DIFFUSION,
    LLAMA_3_8B_INSTRUCT,
)
_BY_REF: Final = {spec.ref: spec for spec in MODELS}
_BY_VERSION: Final = {spec.version: spec for spec in MODELS}


def find_model(owner: str, name: str) -> ModelSpec | None:
    """The model `owner/name`, or None."""
    return _BY_REF.get(f"{owner}/{name}")


def find_version(reference: str) -> ModelSpec | None:
    """Resolve a `version` as `POST /v1/predictions` accepts it.

    `owner/name:version_id` and a bare `version_id` must name a version the catalog
    has; `owner/name` alone is accepted for official models, which run their latest
    version, as on Replicate.
    """
    if ":" in reference:
        ref, _, version = reference.partition(":")
        spec = _BY_REF.get(ref)
        return spec if spec is not None and spec.version == version else None
    if "/" in reference:
        spec = _BY_REF.get(reference)
        return spec if spec is not None and spec.official else None
    return _BY_VERSION.get(reference)
