"""Real, decodable media for the emulator: pictures with Pillow, MP4 clips with ffmpeg.

Everything here is synchronous and CPU-bound; the emulator runs it in a worker
thread. Every function is deterministic: the same arguments give the same bytes,
because all "randomness" comes from a hash of the arguments. That lets a caller
rely on `seed` as it would on the real models, and lets tests compare bytes.

    render_image(...)      text-to-image: a small landscape derived from (prompt, seed, index)
    transform_image(...)   image-to-image: the input, recoloured and overlaid, by prompt_strength
    render_video(...)      image-to-video: the input animated (zoom, pan, fade, a moving shape)
    compose_reply(...)     a language model's reply as a list of tokens
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import random
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import imageio_ffmpeg
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

ImageFormat = Literal["webp", "jpg", "png"]
RGB = tuple[int, int, int]

CONTENT_TYPES: Final[dict[str, str]] = {
    "webp": "image/webp",
    "jpg": "image/jpeg",
    "png": "image/png",
    "mp4": "video/mp4",
    "gif": "image/gif",
    "txt": "text/plain; charset=utf-8",
}

# Inputs are scaled down to this before any work: the result is never larger, and
# a 24-megapixel upload would otherwise make every frame of a clip slow.
_MAX_INPUT_SIDE: Final = 1024
# Refuse absurd uploads before Pillow allocates them (a decompression bomb guard).
_MAX_INPUT_PIXELS: Final = 64_000_000


class MediaError(ValueError):
    """The bytes given as an image could not be used (not an image, corrupt, too large)."""


@dataclass(frozen=True)
class VideoSpec:
    """The shape of a clip: frame size, frame rate and frame count."""

    width: int
    height: int
    fps: int
    frames: int


def _rng(*parts: object) -> random.Random:
    """A generator seeded by a stable hash of `parts` (never Python's salted `hash`)."""
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))  # noqa: S311 - not for security


def _colour(rng: random.Random, *, lightness: float, saturation: float = 0.6) -> RGB:
    red, green, blue = colorsys.hls_to_rgb(rng.random(), lightness, saturation)
    return (round(red * 255), round(green * 255), round(blue * 255))


def _gradient(size: tuple[int, int], top: RGB, bottom: RGB) -> Image.Image:
    """A vertical gradient, built from Pillow's 256-step ramp so it costs almost nothing."""
    width, height = size
    mask = Image.linear_gradient("L").resize((width, max(1, height)))
    return Image.composite(
        Image.new("RGB", mask.size, bottom), Image.new("RGB", mask.size, top), mask
    )


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def size_for_aspect_ratio(aspect_ratio: str, long_side: int = 768) -> tuple[int, int]:
    """Pixel size for an "W:H" ratio: the long side fixed, both sides multiples of 16."""
    width_part, height_part = (int(part) for part in aspect_ratio.split(":"))
    width: float = long_side
    height: float = long_side
    if width_part >= height_part:
        height = long_side * height_part / width_part
    else:
        width = long_side * width_part / height_part
    return (max(16, round(width / 16) * 16), max(16, round(height / 16) * 16))


def _scene(size: tuple[int, int], prompt: str, seed: int, index: int) -> Image.Image:
    """Sky, sun, hills, blocks and bubbles; colours, shapes and layout all from the hash."""
    rng = _rng("scene", prompt, seed, index)
    width, height = size
    horizon = round(height * rng.uniform(0.45, 0.72))
    image = _gradient(
        (width, horizon), _colour(rng, lightness=0.25), _colour(rng, lightness=0.75)
    ).resize((width, horizon))
    canvas = Image.new("RGB", size)
    canvas.paste(image, (0, 0))
    canvas.paste(
        _gradient(
            (width, height - horizon), _colour(rng, lightness=0.4), _colour(rng, lightness=0.15)
        ),
        (0, horizon),
    )
    draw = ImageDraw.Draw(canvas, "RGBA")
    radius = round(min(width, height) * rng.uniform(0.06, 0.14))
    sun_x, sun_y = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.6) * horizon
    draw.ellipse(
        (sun_x - radius, sun_y - radius, sun_x + radius, sun_y + radius),
        fill=(*_colour(rng, lightness=0.8, saturation=0.9), 255),
    )
    # A ridge of hills: a polygon through random peaks along the horizon.
    peaks = [(0.0, float(horizon))]
    for step in range(rng.randint(4, 9) + 1):
        x = width * step / 8
        peaks.append((x, horizon - rng.uniform(0.02, 0.25) * height))
    peaks += [
        (float(width), float(horizon)),
        (float(width), float(horizon + 2)),
        (0.0, float(horizon + 2)),
    ]
    draw.polygon(peaks, fill=(*_colour(rng, lightness=0.3), 255))
    for _ in range(rng.randint(2, 6)):
        block_w = rng.uniform(0.04, 0.12) * width
        block_h = rng.uniform(0.08, 0.3) * height
        left = rng.uniform(0, width - block_w)
        draw.rectangle(
            (left, horizon - block_h, left + block_w, horizon + block_h * 0.1),
            fill=(*_colour(rng, lightness=0.35), 235),
        )
    for _ in range(rng.randint(3, 7)):
        bubble = rng.uniform(0.02, 0.08) * min(width, height)
        x, y = rng.uniform(0, width), rng.uniform(horizon, height)
        draw.ellipse(
            (x - bubble, y - bubble, x + bubble, y + bubble),
            fill=(*_colour(rng, lightness=0.6, saturation=0.8), 150),
        )
    return canvas


def _caption(image: Image.Image, text: str) -> None:
    """The prompt, small, in the bottom-left corner, on a translucent band."""
    draw = ImageDraw.Draw(image, "RGBA")
    size = max(10, image.height // 40)
    font = _font(size)
    text = text if len(text) <= 70 else text[:69] + "\u2026"
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    margin = size // 2
    y = image.height - (bottom - top) - 3 * margin
    draw.rectangle((0, y, right - left + 2 * margin, image.height), fill=(0, 0, 0, 110))
    draw.text((margin, y + margin - top), text, font=font, fill=(255, 255, 255, 230))


def encode_image(image: Image.Image, output_format: ImageFormat, quality: int) -> bytes:
    """Encode without metadata or timestamps, so equal pixels give equal bytes."""
    buffer = io.BytesIO()
    if output_format == "png":
        image.save(buffer, format="PNG", compress_level=3)
    elif output_format == "jpg":
        image.save(buffer, format="JPEG", quality=max(1, min(quality, 95)))
    else:
        image.save(buffer, format="WEBP", quality=quality, method=2)
    return buffer.getvalue()


def render_image(
    prompt: str,
    seed: int,
    index: int,
    size: tuple[int, int],
    output_format: ImageFormat = "webp",
    quality: int = 80,
) -> bytes:
    """A text-to-image output: distinct per (prompt, seed, index), identical when repeated.

    `size` is (width, height) in pixels; `quality` is for WebP and JPEG (JPEG's capped at 95).
    """
    image = _scene(size, prompt, seed, index)
    _caption(image, prompt)
    return encode_image(image, output_format, quality)


def decode_image(data: bytes) -> Image.Image:
    """Bytes to an RGB image no larger than the working size; `MediaError` if unusable."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            if opened.width * opened.height > _MAX_INPUT_PIXELS:
                raise MediaError(f"the image is too large ({opened.width}x{opened.height})")
            image = ImageOps.exif_transpose(opened).convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise MediaError(f"the file is not a readable image ({error})") from error
    image.thumbnail((_MAX_INPUT_SIDE, _MAX_INPUT_SIDE))
    return image


def _even_fit(size: tuple[int, int], long_side: int, multiple: int) -> tuple[int, int]:
    width, height = size
    scale = long_side / max(width, height)
    return (
        max(multiple, round(width * scale / multiple) * multiple),
        max(multiple, round(height * scale / multiple) * multiple),
    )


def _shift_hue(image: Image.Image, shift: int) -> Image.Image:
    hue, saturation, value = image.convert("HSV").split()
    hue = hue.point(lambda level: (level + shift) % 256)
    return Image.merge("HSV", (hue, saturation, value)).convert("RGB")


def transform_image(
    source: Image.Image,
    prompt: str,
    seed: int,
    index: int,
    prompt_strength: float,
    output_format: ImageFormat = "webp",
    quality: int = 80,
) -> bytes:
    """An image-to-image output: clearly the input, recoloured and overlaid by the prompt.

    `prompt_strength` (0..1) sets how far it moves from the input, as on the real
    model; even at 1 the input's layout still shows through, so a person (or a test)
    can see which picture it came from.
    """
    rng = _rng("img2img", prompt, seed, index)
    size = _even_fit(source.size, 768, 16)
    base = source.resize(size, Image.Resampling.BILINEAR)
    strength = max(0.0, min(1.0, prompt_strength))
    base = _shift_hue(base, round(rng.uniform(-18, 18) * strength))
    overlay = _scene(size, prompt, seed, index)
    blended = Image.blend(base, overlay, 0.08 + 0.27 * strength)
    draw = ImageDraw.Draw(blended, "RGBA")
    for _ in range(rng.randint(2, 4)):
        radius = rng.uniform(0.03, 0.08) * min(size)
        x, y = rng.uniform(0, size[0]), rng.uniform(0, size[1])
        draw.ellipse(
            (x - radius, y - radius, x + radius, y + radius),
            fill=(*_colour(rng, lightness=0.6, saturation=0.8), round(40 + 60 * strength)),
        )
    _caption(blended, prompt)
    return encode_image(blended, output_format, quality)


def scene_image(prompt: str, seed: int, size: tuple[int, int]) -> Image.Image:
    """A text-to-image picture as a Pillow image (the first frame of a text-to-video clip)."""
    return _scene(size, prompt, seed, 0)


def video_size_for(image_size: tuple[int, int], long_side: int = 512) -> tuple[int, int]:
    """The clip size closest to the image's shape among 16:9, 1:1 and 9:16 (even sides)."""
    width, height = image_size
    ratio = width / height
    if ratio > 1.3:
        aspect = "16:9"
    elif ratio < 1 / 1.3:
        aspect = "9:16"
    else:
        aspect = "1:1"
    if aspect == "1:1":
        side = round(long_side * 0.9375 / 16) * 16  # 480 for 512: a square that is quick to encode
        return (side, side)
    return size_for_aspect_ratio(aspect, long_side)


def _cover(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale and centre-crop `image` to fill `size` exactly."""
    return ImageOps.fit(image, size, Image.Resampling.BILINEAR)


def render_video(
    source: Image.Image,
    prompt: str,
    seed: int,
    spec: VideoSpec,
    end_image: Image.Image | None = None,
) -> bytes:
    """An MP4 (H.264, yuv420p, faststart) animating `source`: slow zoom and pan, a fade-in,
    a shape drifting across, and a cross-fade to `end_image` at the end if one is given."""
    rng = _rng("video", prompt, seed)
    size = (spec.width, spec.height)
    zoom_end = rng.uniform(1.12, 1.25)
    # Work on a copy 1.3x the frame size: frames are cut from it and scaled down, so
    # zooming in (a smaller cut) never upsamples much.
    work = _cover(source, (round(spec.width * 1.3), round(spec.height * 1.3)))
    last = _cover(end_image, size) if end_image is not None else None
    pan_x, pan_y = rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5)
    dot = _colour(rng, lightness=0.6, saturation=0.9)
    dot_y = rng.uniform(0.2, 0.8) * spec.height
    radius = max(4, spec.height // 14)
    fade_frames = max(1, spec.fps // 2)
    black = Image.new("RGB", size)
    with tempfile.TemporaryDirectory(prefix="emulator-video-") as scratch:
        target = Path(scratch) / "out.mp4"
        errors_path = Path(scratch) / "ffmpeg.log"
        command = [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{spec.width}x{spec.height}",
            "-r",
            str(spec.fps),
            "-i",
            "pipe:0",
            "-an",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-crf",
            "26",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
            "-y",
            str(target),
        ]
        with errors_path.open("wb") as errors:
            process = subprocess.Popen(  # noqa: S603 - a fixed command, no shell
                command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors
            )
            assert process.stdin is not None
            try:
                for number in range(spec.frames):
                    progress = number / max(1, spec.frames - 1)
                    zoom = 1 + (zoom_end - 1) * progress
                    crop_w, crop_h = work.width / zoom, work.height / zoom
                    centre_x = work.width / 2 + pan_x * (work.width - crop_w) * progress
                    centre_y = work.height / 2 + pan_y * (work.height - crop_h) * progress
                    box = (
                        centre_x - crop_w / 2,
                        centre_y - crop_h / 2,
                        centre_x + crop_w / 2,
                        centre_y + crop_h / 2,
                    )
                    frame = work.resize(size, Image.Resampling.BILINEAR, box=box)
                    if last is not None and progress > 0.8:
                        frame = Image.blend(frame, last, (progress - 0.8) / 0.2)
                    draw = ImageDraw.Draw(frame)
                    x = -radius + (spec.width + 2 * radius) * progress
                    draw.ellipse((x - radius, dot_y - radius, x + radius, dot_y + radius), fill=dot)
                    if number < fade_frames:
                        frame = Image.blend(black, frame, (number + 1) / fade_frames)
                    process.stdin.write(frame.tobytes())
            except BrokenPipeError:
                pass  # ffmpeg stopped early; its exit code and log say why, below.
            finally:
                process.stdin.close()
                code = process.wait()
        if code != 0:
            raise MediaError(f"ffmpeg failed ({code}): {errors_path.read_text(errors='replace')}")
        return target.read_bytes()


_OUTLINE_BEATS: Final = (
    "an establishing shot that sets the place and the mood",
    "the main character enters with a clear goal",
    "a detail in close-up that hints at what is coming",
    "an obstacle that forces a choice",
    "a turn that changes what the audience expects",
    "the moment of decision, held a beat longer",
    "a wide shot that shows the consequences",
    "a quiet resolution and a final image to remember",
)
_TOKEN = re.compile(r"\s*\S+|\s+")


def compose_reply(prompt: str, system_prompt: str, seed: int) -> list[str]:
    """A plausible, deterministic reply: a short outline derived from the prompt, as tokens.

    Tokens carry their leading whitespace, as a streaming language model's do, so
    `"".join(tokens)` is the reply text.
    """
    rng = _rng("reply", prompt, system_prompt, seed)
    topic = " ".join(prompt.split()[:12]).rstrip(".?!") or "your story"
    beats = rng.sample(_OUTLINE_BEATS, k=rng.randint(3, 5))
    lines = [f'Here is a short outline for "{topic}":', ""]
    lines += [f"{number}. {beat[0].upper()}{beat[1:]}." for number, beat in enumerate(beats, 1)]
    lines += ["", "Each beat can become one scene; tell me which one to expand."]
    return _TOKEN.findall("\n".join(lines))
