"""What an asset's file measures, and its thumbnail, made from the file's bytes.

Images are read with Pillow (dimensions from the header; the thumbnail from the
decoded picture), videos with the ffmpeg binary that imageio-ffmpeg ships
(duration, frame rate and dimensions from the container; the poster is the frame
at the middle of the clip). Every thumbnail is a WebP whose longest side is at most
`THUMBNAIL_SIDE` pixels, never enlarged.

Decoding is CPU work: `measure` runs it in a worker thread, so the event loop
serves requests meanwhile. Nothing here raises for a file it cannot read: what could
not be measured is None and the reason is logged, so a bad thumbnail never costs
an asset.

    facts = await measure(data, AssetKind.IMAGE)
    facts.width, facts.height, facts.thumbnail  # 1024, 576, b"RIFF....WEBP..."
"""

from __future__ import annotations

import asyncio
import io
import logging
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imageio_ffmpeg
from PIL import Image, ImageOps

from services.library.tables import AssetKind

logger = logging.getLogger("studio.library")

THUMBNAIL_SIDE = 320
"""The longest side of a thumbnail, in pixels."""
THUMBNAIL_QUALITY = 80
"""WebP quality of thumbnails (0..100)."""
FFMPEG_TIMEOUT = 60.0
"""Seconds ffmpeg may take to read a clip's header or cut its poster frame."""
MAX_PIXELS = 100_000_000
"""Pictures larger than this (width x height) are measured but not decoded."""


@dataclass(frozen=True)
class Measurements:
    """A file's facts: width and height (px), duration (s) and fps (video only),
    and its thumbnail (WebP bytes); each None when it could not be found."""

    width: int | None = None
    height: int | None = None
    duration: float | None = None
    fps: float | None = None
    thumbnail: bytes | None = None


async def measure(data: bytes, kind: AssetKind) -> Measurements:
    """Measure `data` (an image or a video, as `kind` says) in a worker thread.

    Never raises for unreadable bytes: the facts it could not find are None (logged).
    Other kinds (AUDIO, OVERLAY) have no measurements here yet.
    """
    if kind is AssetKind.IMAGE:
        return await asyncio.to_thread(measure_image, data)
    if kind is AssetKind.VIDEO:
        return await asyncio.to_thread(measure_video, data)
    return Measurements()


def measure_image(data: bytes) -> Measurements:
    """An image's width and height (px) and its WebP thumbnail (see the module)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            picture = Image.open(io.BytesIO(data))
            width, height = picture.size
    except Exception as error:  # any undecodable header: Pillow raises many kinds
        logger.warning("an image could not be measured: %r", error)
        return Measurements()
    if width * height > MAX_PIXELS:
        logger.warning("an image of %dx%d px is too large for a thumbnail", width, height)
        return Measurements(width=width, height=height)
    try:
        thumbnail = _thumbnail(picture)
    except Exception as error:  # a truncated or corrupt body
        logger.warning("no thumbnail for an image of %dx%d px: %r", width, height, error)
        thumbnail = None
    return Measurements(width=width, height=height, thumbnail=thumbnail)


def _thumbnail(picture: Image.Image) -> bytes:
    """A WebP of `picture` (its first frame) at most THUMBNAIL_SIDE px on its longest side."""
    picture.draft("RGB", (THUMBNAIL_SIDE, THUMBNAIL_SIDE))  # JPEG: decode at a smaller scale
    picture.seek(0)
    small = ImageOps.exif_transpose(picture.copy())
    small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    if small.mode not in ("RGB", "RGBA"):
        small = small.convert("RGBA" if "A" in small.getbands() else "RGB")
    out = io.BytesIO()
    small.save(out, format="WEBP", quality=THUMBNAIL_QUALITY, method=4)
    return out.getvalue()


def measure_video(data: bytes) -> Measurements:
    """A clip's width and height (px), duration (s), fps, and its poster frame as a
    WebP thumbnail (the frame at the middle of the clip)."""
    with tempfile.TemporaryDirectory(prefix="studio-measure-") as scratch:
        path = Path(scratch) / "clip"
        path.write_bytes(data)
        try:
            meta = _video_header(path)
        except Exception as error:  # ffmpeg could not read it
            # ffmpeg's own banner fills most of its message: its last lines say why.
            logger.warning("a video could not be measured: %s", str(error)[-300:])
            return Measurements()
        size = meta.get("size") or meta.get("source_size")
        width, height = (int(size[0]), int(size[1])) if size else (None, None)
        duration = _positive(meta.get("duration"))
        fps = _positive(meta.get("fps"))
        try:
            poster = _poster(path, at=(duration or 0.0) / 2)
            thumbnail = _thumbnail(Image.open(io.BytesIO(poster)))
        except Exception as error:
            logger.warning("no poster frame for a video: %r", error)
            thumbnail = None
    return Measurements(width=width, height=height, duration=duration, fps=fps, thumbnail=thumbnail)


def _video_header(path: Path) -> dict[str, Any]:
    """imageio-ffmpeg's reading of the clip's header: size, fps, duration (its `meta`)."""
    frames = imageio_ffmpeg.read_frames(str(path))
    try:
        meta: dict[str, Any] = next(frames)
    finally:
        frames.close()  # stops ffmpeg: no frame is decoded for the header
    return meta


def _poster(path: Path, *, at: float) -> bytes:
    """The frame `at` seconds into the clip (the first one if that fails) as PNG bytes."""
    for offset in (at, 0.0) if at > 0 else (0.0,):
        command = [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-ss",
            f"{offset:.3f}",
            "-i",
            str(path),
            "-frames:v",
            "1",
            "-f",
            "image2pipe",
            "-vcodec",
            "png",
            "pipe:1",
        ]
        done = subprocess.run(  # noqa: S603 - a fixed command, no shell
            command, capture_output=True, timeout=FFMPEG_TIMEOUT, check=False
        )
        if done.returncode == 0 and done.stdout:
            return done.stdout
    raise RuntimeError(f"ffmpeg cut no frame: {done.stderr[-500:].decode(errors='replace')}")


def _positive(value: Any) -> float | None:
    """`value` as a float if it is a finite positive number, else None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if 0 < number < float("inf") else None
