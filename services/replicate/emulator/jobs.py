"""What a prediction of each model does: its seed, its logs, its steps, and its output.

`plan_job` turns a model and its validated inputs (with input images already
fetched and decoded) into a `Job`; the emulator plays the job's timeline (logs,
progress, streamed tokens) and runs its `render` in a worker thread.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

from PIL import Image

from services.replicate.emulator import media
from services.replicate.emulator.specs import ModelSpec

MAX_VIDEO_SECONDS: Final = 10
MAX_VIDEO_FRAMES: Final = 300
VIDEO_STEPS: Final = 20


@dataclass(frozen=True)
class OutputFile:
    """A file a prediction made, before it is stored and given a URL."""

    filename: str
    data: bytes
    content_type: str


@dataclass
class Job:
    """A prediction's plan: what to log, how many progress steps, and what to produce."""

    seed: int | None
    steps: int
    prelude: list[str]
    render: Callable[[], list[OutputFile]] | None = None
    tokens: list[str] | None = None
    # True when the output is one URL (videos), False for a list (images, tokens).
    single_file: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)


def progress_line(step: int, total: int, elapsed: float) -> str:
    """A tqdm-style progress line, which the `replicate` client's `Prediction.progress` parses.

    `step` of `total` done after `elapsed` seconds; (2, 4, 1.0) gives
    ` 50%|█████     | 2/4 [00:01<00:00, 2.00it/s]`.
    """
    fraction = step / total
    filled = round(10 * fraction)
    bar = "\u2588" * filled + " " * (10 - filled)
    rate = step / elapsed if elapsed > 0 else 0.0
    percent = round(100 * fraction)
    minutes, seconds = divmod(int(elapsed), 60)
    return (
        f"{percent:3d}%|{bar}| {step}/{total} [{minutes:02d}:{seconds:02d}<00:00, {rate:.2f}it/s]"
    )


def plan_job(
    spec: ModelSpec,
    values: Mapping[str, Any],
    images: Mapping[str, Image.Image],
    *,
    pick_seed: Callable[[], int],
) -> Job:
    """The job for one prediction; `images` holds the decoded file inputs by input name.

    `pick_seed` gives the seed when the input names none (the emulator's dice, so a
    seeded emulator picks the same seeds on every run).
    """
    given_seed = values.get("seed")
    seed = int(given_seed) if given_seed is not None else pick_seed()
    if spec.task == "text":
        return _text_job(values, seed)
    if spec.task == "image-to-video":
        return _video_job(spec, values, images, seed)
    return _image_job(spec, values, images, seed)


def _image_job(
    spec: ModelSpec, values: Mapping[str, Any], images: Mapping[str, Image.Image], seed: int
) -> Job:
    prompt = str(values["prompt"])
    count = int(values.get("num_outputs", 1))
    output_format: media.ImageFormat = values.get("output_format", "webp")
    quality = int(values.get("output_quality", 80))
    source = images.get(spec.image_input) if spec.image_input else None
    prelude = [f"Using seed: {seed}"]
    if values.get("go_fast", False):
        prelude.append("running quantized prediction")
    if source is not None:
        strength = float(values.get("prompt_strength", 0.8))
        prelude.append(f"Running img2img with prompt_strength {strength}")
    long_side = 512 if values.get("megapixels") == "0.25" else 768
    size = media.size_for_aspect_ratio(str(values.get("aspect_ratio", "1:1")), long_side)
    extension = output_format
    content_type = media.CONTENT_TYPES[extension]

    def render() -> list[OutputFile]:
        outputs: list[OutputFile] = []
        for index in range(count):
            if source is not None:
                data = media.transform_image(
                    source, prompt, seed, index, strength, output_format, quality
                )
            else:
                data = media.render_image(prompt, seed, index, size, output_format, quality)
            outputs.append(OutputFile(f"out-{index}.{extension}", data, content_type))
        return outputs

    return Job(
        seed=seed,
        steps=int(values.get("num_inference_steps", 4)),
        prelude=prelude,
        render=render,
        metrics={"image_count": count},
    )


def _video_job(
    spec: ModelSpec, values: Mapping[str, Any], images: Mapping[str, Image.Image], seed: int
) -> Job:
    prompt = str(values.get("prompt", ""))
    fps, frames = _video_timing(spec, values)
    source = images.get(spec.image_input) if spec.image_input else None
    if source is None:
        # Text-to-video (minimax without a first frame): animate a picture of the prompt.
        size = media.size_for_aspect_ratio("16:9", 512)
        width, height = size
        first = media.scene_image(prompt, seed, (width, height))
    else:
        first = source
        size = _video_size(spec, values, source)
    end_image = images.get("end_image")
    spec_video = media.VideoSpec(width=size[0], height=size[1], fps=fps, frames=frames)
    prelude = [
        f"Using seed: {seed}",
        f"Generating {frames} frames at {fps} fps ({size[0]}x{size[1]})",
    ]
    render_clip = partial(media.render_video, first, prompt, seed, spec_video, end_image)

    def render() -> list[OutputFile]:
        return [OutputFile("output.mp4", render_clip(), media.CONTENT_TYPES["mp4"])]

    return Job(
        seed=seed,
        steps=VIDEO_STEPS,
        prelude=prelude,
        render=render,
        single_file=True,
        metrics={"video_output_duration_seconds": round(frames / fps, 3)},
    )


def _video_timing(spec: ModelSpec, values: Mapping[str, Any]) -> tuple[int, int]:
    """(fps, frame count) as the model would make them, capped to keep clips quick."""
    if "video_length" in values:  # svd: 14 or 25 frames at an input fps
        fps = int(values.get("frames_per_second", spec.video_fps))
        frames = 25 if str(values["video_length"]).startswith("25") else 14
    elif spec.video_frames is not None:  # wan: always the same clip
        fps, frames = spec.video_fps, spec.video_frames
    else:
        fps = spec.video_fps
        seconds = min(int(values.get("duration", spec.video_seconds)), MAX_VIDEO_SECONDS)
        frames = seconds * fps
    return fps, max(1, min(frames, MAX_VIDEO_FRAMES))


def _video_size(spec: ModelSpec, values: Mapping[str, Any], source: Image.Image) -> tuple[int, int]:
    aspect_ratio = values.get("aspect_ratio")
    if isinstance(aspect_ratio, str):  # wan: 832x480 for "16:9", 480x832 for "9:16"
        return media.size_for_aspect_ratio(aspect_ratio, 512)
    strategy = values.get("sizing_strategy")
    if strategy == "crop_to_16_9":
        return media.size_for_aspect_ratio("16:9", 512)
    if strategy == "use_image_dimensions":
        scale = min(1.0, 512 / max(source.size))
        return (
            max(2, math.floor(source.width * scale / 2) * 2),
            max(2, math.floor(source.height * scale / 2) * 2),
        )
    return media.video_size_for(source.size)


def _text_job(values: Mapping[str, Any], seed: int) -> Job:
    prompt = str(values.get("prompt", ""))
    system_prompt = str(values.get("system_prompt", ""))
    template = str(values.get("prompt_template", "{prompt}"))
    tokens = media.compose_reply(prompt, system_prompt, seed if "seed" in values else 0)
    tokens = tokens[: int(values.get("max_tokens", 512))]
    formatted = template.replace("{prompt}", prompt).replace("{system_prompt}", system_prompt)
    input_tokens = len((system_prompt + " " + formatted).split())
    return Job(
        seed=seed,
        steps=max(1, min(len(tokens), 16)),
        prelude=[f"Random seed used: `{seed}`", f"Formatted prompt: `{formatted}`"],
        tokens=tokens,
        metrics={"input_token_count": input_tokens, "output_token_count": len(tokens)},
    )
