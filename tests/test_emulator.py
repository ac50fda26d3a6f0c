"""The Replicate emulator, over real HTTP, driven by the official `replicate` client.

One emulator (300 ms latency) and one webhook receiver serve the module; tests that
change settings change them in-process or over the admin API, and every setting is
restored after each test. Each test's client has its own API token, so the per-token
rate windows of one test never touch another's. Tests needing another identity
(a required token, a mount, a separate process) start their own emulator.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import imageio_ffmpeg
import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat
from replicate.client import Client
from replicate.exceptions import ReplicateError
from replicate.prediction import Prediction
from replicate.webhook import InvalidSignatureError, Webhooks, WebhookSigningSecret
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp

from api.ports import free_port
from services.replicate.emulator import (
    EmulatorConfig,
    create_emulator_app,
    find_model,
    sign_webhook,
)
from services.replicate.emulator.faults import FaultDice, apply_settings, settings_snapshot
from services.replicate.emulator.ratelimit import SlidingWindowLimiter
from tests.emulator_harness import (
    EmulatorServer,
    Received,
    ThreadedServer,
    WebhookReceiver,
    eventually,
)

LATENCY_MS = 300
REPO_ROOT = Path(__file__).resolve().parent.parent
SVD_VERSION = "3f0457e4619daac51203dedb472816fd4af51f3149fa7a9e0b5ffcf1b8172438"


# -- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(latency_ms=LATENCY_MS) as running:
        yield running


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


@pytest.fixture(autouse=True)
def _restore_settings(request: pytest.FixtureRequest) -> Iterator[None]:
    """Whatever a test changes on the shared emulator is put back afterwards."""
    if "server" not in request.fixturenames:
        yield
        return
    shared: EmulatorServer = request.getfixturevalue("server")
    before = settings_snapshot(shared.config)
    yield
    assert apply_settings(shared.config, before) == []


def make_client(base_url: str, token: str | None = None) -> Client:
    client = Client(api_token=token or f"r8_test_{uuid.uuid4().hex}", base_url=base_url)
    client.poll_interval = 0.05
    return client


@pytest.fixture
async def client(server: EmulatorServer) -> AsyncIterator[Client]:
    made = make_client(server.url)
    yield made
    await made._async_client.aclose()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=30.0) as made:
        yield made


def auth(client: Client) -> dict[str, str]:
    """The headers the client sends, for calls made with plain httpx."""
    return {"authorization": f"Bearer {client._api_token}"}


# -- helpers ---------------------------------------------------------------------------


async def finish(prediction: Prediction, seconds: float = 30.0) -> Any:
    """Wait (bounded) until the prediction ends, polling as the client does.

    Typed `Any` so that a status checked before the wait is not taken as fixed after it.
    """
    async with asyncio.timeout(seconds):
        await prediction.async_wait()
    return prediction


async def fetch(http: httpx.AsyncClient, url: str) -> httpx.Response:
    response = await http.get(url)
    assert response.status_code == 200, (url, response.status_code, response.text[:200])
    assert response.headers["content-length"] == str(len(response.content))
    return response


def first_output(prediction: Prediction) -> str:
    """The first output URL of an image prediction."""
    assert isinstance(prediction.output, list)
    assert prediction.output
    url = prediction.output[0]
    assert isinstance(url, str)
    return url


def video_output(prediction: Prediction) -> str:
    """The output URL of a video prediction (one string, not a list)."""
    assert isinstance(prediction.output, str)
    return prediction.output


def get_url(prediction: Prediction) -> str:
    assert prediction.urls is not None
    return prediction.urls["get"]


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def data_uri(data: bytes, content_type: str = "image/png") -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"


def source_picture(size: tuple[int, int] = (640, 360)) -> Image.Image:
    """A picture unlike anything the emulator draws: saturated quadrants and a band."""
    width, height = size
    image = Image.new("RGB", size, (220, 20, 30))
    draw = ImageDraw.Draw(image)
    draw.rectangle((width // 2, 0, width, height // 2), fill=(20, 40, 230))
    draw.rectangle((0, height // 2, width // 2, height), fill=(250, 230, 20))
    draw.rectangle((width // 2, height // 2, width, height), fill=(10, 200, 60))
    draw.line((0, 0, width, height), fill=(255, 255, 255), width=max(4, height // 12))
    return image


def mean_distance(first: Image.Image, second: Image.Image) -> float:
    """Mean absolute per-channel difference (0..255) of the two pictures at 32x32."""
    small = (32, 32)
    a = first.convert("RGB").resize(small, Image.Resampling.BILINEAR)
    b = second.convert("RGB").resize(small, Image.Resampling.BILINEAR)
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


@dataclass(frozen=True)
class DecodedVideo:
    codec: str
    size: tuple[int, int]
    fps: float
    frames: int


def decode_video(path: Path) -> DecodedVideo:
    """Decode every frame with imageio-ffmpeg's ffmpeg; what it reports and how many frames.

    (`imageio_ffmpeg.read_frames` leaves its pipes open when ffmpeg exits on its own,
    so the frames are read here with one plain `subprocess.run`.)
    """
    result = subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            *("-hide_banner", "-nostdin", "-i", str(path)),
            *("-f", "rawvideo", "-pix_fmt", "rgb24", "-"),
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    header = result.stderr.decode(errors="replace")
    stream = re.search(r"Stream #\S+.*?Video: (\w+).*?, (\d+)x(\d+).*?, ([\d.]+) fps", header)
    assert stream is not None, header
    width, height = int(stream[2]), int(stream[3])
    frame_bytes = width * height * 3
    assert len(result.stdout) % frame_bytes == 0
    return DecodedVideo(
        stream[1], (width, height), float(stream[4]), len(result.stdout) // frame_bytes
    )


def parse_time(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def webhook_log(
    http: httpx.AsyncClient, server: EmulatorServer, prediction_id: str
) -> list[dict[str, Any]]:
    response = await http.get(f"{server.url}/_emulator/predictions/{prediction_id}/webhooks")
    assert response.status_code == 200
    log: list[dict[str, Any]] = response.json()
    return log


async def settled_webhooks(
    http: httpx.AsyncClient, server: EmulatorServer, prediction_id: str
) -> list[dict[str, Any]]:
    """The delivery log once the prediction is done and no delivery is pending."""

    async def probe() -> list[dict[str, Any]] | None:
        log = await webhook_log(http, server, prediction_id)
        completed = any(entry["event"] == "completed" for entry in log)
        settled = all(entry["outcome"] != "pending" for entry in log)
        return log if completed and settled else None

    return await eventually(probe, what=f"webhooks of {prediction_id} to settle")


def validate_webhook(item: Received, secret: str) -> None:
    Webhooks.validate(
        headers=item.headers,
        body=item.body.decode(),
        secret=WebhookSigningSecret(key=secret),
        tolerance=300,
    )


# -- text to image -------------------------------------------------------------------------


async def test_text_to_image_makes_distinct_decodable_images(
    client: Client, http: httpx.AsyncClient
) -> None:
    prediction = await client.models.predictions.async_create(
        model="black-forest-labs/flux-schnell",
        input={
            "prompt": "a lighthouse in a storm",
            "num_outputs": 3,
            "seed": 1234,
            "output_format": "png",
        },
    )
    assert prediction.status == "starting"
    assert prediction.model == "black-forest-labs/flux-schnell"
    assert len(prediction.version) == 64
    assert get_url(prediction).endswith(f"/v1/predictions/{prediction.id}")
    assert len(prediction.id) == 26

    prediction = await finish(prediction)
    assert prediction.status == "succeeded", prediction.error
    assert prediction.error is None
    assert "Using seed: 1234" in (prediction.logs or "")
    assert prediction.progress is not None
    assert prediction.progress.percentage == 1.0
    assert prediction.metrics["predict_time"] > 0
    created, started, completed = (
        parse_time(prediction.created_at),
        parse_time(prediction.started_at),
        parse_time(prediction.completed_at),
    )
    assert created <= started <= completed

    assert isinstance(prediction.output, list)
    assert len(prediction.output) == 3
    bodies = []
    pictures = []
    for url in prediction.output:
        response = await fetch(http, url)
        assert response.headers["content-type"] == "image/png"
        picture = Image.open(io.BytesIO(response.content))
        assert picture.format == "PNG"
        assert picture.size == (768, 768)
        picture.load()
        bodies.append(response.content)
        pictures.append(picture)
    assert len(set(bodies)) == 3
    for index, picture in enumerate(pictures):
        for other in pictures[index + 1 :]:
            assert mean_distance(picture, other) > 10


async def test_same_prompt_and_seed_give_identical_bytes(
    client: Client, http: httpx.AsyncClient
) -> None:
    async def run(**extra: Any) -> tuple[bytes, Any]:
        prediction = await client.models.predictions.async_create(
            model="black-forest-labs/flux-schnell",
            input={"prompt": "a red kite over dunes", "aspect_ratio": "16:9", **extra},
            wait=True,
        )
        assert prediction.status == "succeeded"
        return (await fetch(http, first_output(prediction))).content, prediction

    first, _ = await run(seed=99)
    again, _ = await run(seed=99)
    other_seed, _ = await run(seed=100)
    unseeded, prediction = await run()
    assert first == again
    assert first != other_seed
    picture = Image.open(io.BytesIO(first))
    assert picture.format == "WEBP"
    assert picture.size == (768, 432)
    # No seed given: one is picked and reported, as the real model logs it.
    assert "Using seed: " in prediction.logs
    assert unseeded != first


# -- image to image and uploads ------------------------------------------------------------


async def test_image_to_image_is_derived_from_an_uploaded_input(
    client: Client, http: httpx.AsyncClient
) -> None:
    source = source_picture()
    uploaded = await client.files.async_create(
        io.BytesIO(png_bytes(source)), filename="source.png", content_type="image/png"
    )
    assert uploaded.urls["get"].endswith(f"/v1/files/{uploaded.id}")

    derived = await client.models.predictions.async_create(
        model="black-forest-labs/flux-dev",
        input={
            "prompt": "the same scene at night, neon",
            "image": uploaded.urls["get"],
            "prompt_strength": 0.8,
            "seed": 5,
        },
        wait=True,
    )
    assert derived.status == "succeeded", derived.error
    unrelated = await client.models.predictions.async_create(
        model="black-forest-labs/flux-dev",
        input={
            "prompt": "a quiet forest lake",
            "aspect_ratio": "16:9",
            "seed": 6,
            "num_inference_steps": 4,
        },
        wait=True,
    )
    assert unrelated.status == "succeeded"
    output = Image.open(io.BytesIO((await fetch(http, first_output(derived))).content))
    other = Image.open(io.BytesIO((await fetch(http, first_output(unrelated))).content))

    # The output keeps the input's shape (16:9 here) and is visibly made from it:
    # much closer to the input than an unrelated picture is, yet not a copy.
    assert abs(output.width / output.height - 16 / 9) < 0.05
    to_source = mean_distance(output, source)
    assert to_source > 5
    assert to_source < 0.5 * mean_distance(other, source)
    assert to_source < 0.75 * mean_distance(output, other)


async def test_file_uploads_round_trip(client: Client, http: httpx.AsyncClient) -> None:
    content = png_bytes(source_picture((64, 48)))
    created = await client.files.async_create(
        io.BytesIO(content), filename="tiny.png", content_type="image/png", metadata={"shot": 7}
    )
    assert created.size == len(content)
    assert created.name == "tiny.png"
    assert created.content_type == "image/png"
    assert created.metadata == {"shot": 7}
    assert created.checksums["sha256"] == hashlib.sha256(content).hexdigest()
    assert created.expires_at is not None
    assert parse_time(created.expires_at) > parse_time(created.created_at)

    fetched = await client.files.async_get(created.id)
    assert fetched.id == created.id
    assert created.id in [item.id for item in await client.files.async_list()]
    download = await http.get(f"{created.urls['get']}/download", headers=auth(client))
    assert download.status_code == 200
    assert download.content == content

    assert await client.files.async_delete(created.id)
    with pytest.raises(ReplicateError) as missing:
        await client.files.async_get(created.id)
    assert missing.value.status == 404


async def test_data_uri_input_works_and_garbage_does_not(client: Client) -> None:
    prediction = await client.models.predictions.async_create(
        model="black-forest-labs/flux-dev",
        input={
            "prompt": "storybook style",
            "image": data_uri(png_bytes(source_picture((300, 300)))),
            "num_inference_steps": 2,
        },
        wait=True,
    )
    assert prediction.status == "succeeded"
    with pytest.raises(ReplicateError) as raised:
        await client.models.predictions.async_create(
            model="black-forest-labs/flux-dev",
            input={"prompt": "x", "image": data_uri(b"not a picture at all", "image/png")},
        )
    assert raised.value.status == 422
    assert "input.image" in (raised.value.detail or "")


# -- video -------------------------------------------------------------------------------------


async def test_image_to_video_makes_a_playable_mp4(
    client: Client, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    still = await client.models.predictions.async_create(
        model="black-forest-labs/flux-schnell",
        input={"prompt": "a train crossing a bridge", "aspect_ratio": "16:9", "seed": 3},
        wait=True,
    )
    assert still.status == "succeeded"
    # The studio's own flow: an output URL of one prediction is the next one's input.
    clip = await client.models.predictions.async_create(
        model="kwaivgi/kling-v2.1",
        input={"prompt": "the train speeds up", "start_image": first_output(still), "duration": 5},
    )
    clip = await finish(clip)
    assert clip.status == "succeeded", clip.error
    assert isinstance(clip.output, str)
    assert clip.output.endswith(".mp4")

    response = await fetch(http, clip.output)
    assert response.headers["content-type"] == "video/mp4"
    data = response.content
    assert data[4:8] == b"ftyp"
    assert 0 < data.find(b"moov") < data.find(b"mdat")  # +faststart: playable while loading
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)
    video = decode_video(path)
    assert video.codec == "h264"
    assert video.size == (512, 288)
    assert video.fps == 24
    assert video.frames == 5 * 24


@pytest.mark.parametrize(
    ("how", "inputs", "frames", "size"),
    [
        ("stability-ai/stable-video-diffusion:" + SVD_VERSION, {}, 14, (480, 480)),
        (
            SVD_VERSION,
            {"video_length": "25_frames_with_svd_xt", "sizing_strategy": "crop_to_16_9"},
            25,
            (512, 288),
        ),
        (
            "model:wavespeedai/wan-2.1-i2v-480p",
            {"prompt": "waves", "aspect_ratio": "9:16"},
            81,
            (288, 512),
        ),
        ("model:minimax/video-01", {"prompt": "a comet over a city"}, 150, (512, 288)),
    ],
    ids=["svd-by-version", "svd-by-bare-id", "wan", "minimax-text-to-video"],
)
async def test_other_video_models(
    client: Client,
    http: httpx.AsyncClient,
    tmp_path: Path,
    how: str,
    inputs: dict[str, Any],
    frames: int,
    size: tuple[int, int],
) -> None:
    picture = data_uri(png_bytes(source_picture((400, 400))))
    if how.startswith("model:"):
        ref = how.removeprefix("model:")
        spec = find_model(*ref.split("/"))
        assert spec is not None
        if spec.image_input is not None and ref != "minimax/video-01":
            inputs = {spec.image_input: picture, **inputs}
        prediction = await client.models.predictions.async_create(
            model=ref, input=inputs, wait=True
        )
    else:
        prediction = await client.predictions.async_create(
            version=how, input={"input_image": picture, **inputs}, wait=True
        )
    assert prediction.status == "succeeded", prediction.error
    path = tmp_path / "clip.mp4"
    path.write_bytes((await fetch(http, video_output(prediction))).content)
    video = decode_video(path)
    assert video.size == size
    assert video.frames == frames


async def test_video_supports_range_requests(client: Client, http: httpx.AsyncClient) -> None:
    clip = await client.models.predictions.async_create(
        model="wavespeedai/wan-2.1-i2v-480p",
        input={"prompt": "drift", "image": data_uri(png_bytes(source_picture()))},
        wait=True,
    )
    assert clip.status == "succeeded"
    url = video_output(clip)
    whole = (await fetch(http, url)).content
    size = len(whole)

    head = await http.head(url)
    assert head.status_code == 200
    assert head.headers["content-length"] == str(size)
    assert head.headers["accept-ranges"] == "bytes"
    assert head.content == b""

    first = await http.get(url, headers={"range": "bytes=0-99"})
    assert first.status_code == 206
    assert first.headers["content-range"] == f"bytes 0-99/{size}"
    assert first.headers["content-length"] == "100"
    assert first.content == whole[:100]

    rest = await http.get(url, headers={"range": "bytes=100-"})
    assert rest.status_code == 206
    assert rest.headers["content-range"] == f"bytes 100-{size - 1}/{size}"
    assert rest.content == whole[100:]

    tail = await http.get(url, headers={"range": "bytes=-10"})
    assert tail.status_code == 206
    assert tail.content == whole[-10:]

    beyond = await http.get(url, headers={"range": f"bytes={size}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{size}"

    stale = await http.get(url, headers={"range": "bytes=0-9", "if-range": '"other"'})
    assert stale.status_code == 200
    assert stale.content == whole
    fresh = await http.get(url, headers={"range": "bytes=0-9", "if-range": head.headers["etag"]})
    assert (fresh.status_code, fresh.content) == (206, whole[:10])

    # Several ranges at once: one multipart/byteranges answer (RFC 9110 section 14.6).
    several = await http.get(url, headers={"range": "bytes=0-0,5-10"})
    assert several.status_code == 206
    assert several.headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert f"bytes 0-0/{size}".encode() in several.content
    assert f"bytes 5-10/{size}".encode() in several.content
    assert whole[5:11] in several.content
    assert "last-modified" in head.headers


# -- text --------------------------------------------------------------------------------------


async def test_language_model_replies_with_deterministic_tokens(client: Client) -> None:
    prompt = "Outline a short film about a lighthouse keeper"
    first = await client.models.predictions.async_create(
        model="meta/meta-llama-3-8b-instruct", input={"prompt": prompt}, wait=True
    )
    again = await client.models.predictions.async_create(
        model="meta/meta-llama-3-8b-instruct", input={"prompt": prompt}, wait=True
    )
    assert first.status == again.status == "succeeded"
    assert isinstance(first.output, list)
    assert all(isinstance(token, str) for token in first.output)
    text = "".join(first.output)
    assert "lighthouse keeper" in text
    assert "1." in text
    assert first.output == again.output
    assert first.metrics is not None
    assert first.metrics["output_token_count"] == len(first.output)

    short = await client.models.predictions.async_create(
        model="meta/meta-llama-3-8b-instruct", input={"prompt": prompt, "max_tokens": 5}, wait=True
    )
    assert short.output == first.output[:5]


# -- waiting, canceling, failing ----------------------------------------------------------------


async def test_prefer_wait_holds_the_response(
    server: EmulatorServer, client: Client, http: httpx.AsyncClient
) -> None:
    done = await client.models.predictions.async_create(
        model="black-forest-labs/flux-schnell", input={"prompt": "held"}, wait=True
    )
    assert done.status == "succeeded"
    assert done.output

    server.config.latency_ms = 10_000
    partial = await client.models.predictions.async_create(
        model="black-forest-labs/flux-schnell", input={"prompt": "not yet"}, wait=1
    )
    assert partial.status in ("starting", "processing")
    assert partial.output is None
    await client.predictions.async_cancel(partial.id)

    invalid = await http.post(
        f"{server.url}/v1/models/black-forest-labs/flux-schnell/predictions",
        json={"input": {"prompt": "x"}},
        headers={**auth(client), "prefer": "wait=100"},
    )
    assert invalid.status_code == 400
    assert invalid.json()["status"] == 400


@pytest.mark.parametrize(
    "body",
    [
        b'{"input": {"prompt": "x", "seed": NaN}}',
        b'{"input": {"prompt": "x", "seed": Infinity}}',
        b'{"input": {"prompt": "x", "extra": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
    ],
    ids=["nan", "infinity", "100000-deep"],
)
async def test_malformed_json_bodies_are_400(
    server: EmulatorServer, client: Client, http: httpx.AsyncClient, body: bytes
) -> None:
    response = await http.post(
        f"{server.url}/v1/models/black-forest-labs/flux-schnell/predictions",
        content=body,
        headers={**auth(client), "content-type": "application/json"},
    )
    assert response.status_code == 400, response.text


@pytest.mark.parametrize("wait", ["9" * 5000, "\u00b2", "\u0663", "0", "-1"])
async def test_prefer_wait_out_of_range_is_400(
    server: EmulatorServer, client: Client, http: httpx.AsyncClient, wait: str
) -> None:
    response = await http.post(
        f"{server.url}/v1/models/black-forest-labs/flux-schnell/predictions",
        json={"input": {"prompt": "x"}},
        headers=[
            *((name.encode(), value.encode()) for name, value in auth(client).items()),
            (b"prefer", f"wait={wait}".encode()),
        ],
    )
    assert response.status_code == 400, response.text


async def test_a_list_cursor_that_is_not_ours_is_refused(
    server: EmulatorServer, client: Client, http: httpx.AsyncClient
) -> None:
    deep = base64.urlsafe_b64encode(b"[" * 5000 + b"]" * 5000).decode()
    for cursor in (deep, "x" * 10_000, base64.urlsafe_b64encode(b'{"after": true}').decode()):
        response = await http.get(
            f"{server.url}/v1/predictions", params={"cursor": cursor}, headers=auth(client)
        )
        assert 400 <= response.status_code < 500, response.text


async def test_the_clients_run_helper_works_unchanged(
    server: EmulatorServer, client: Client
) -> None:
    urls = await client.async_run(
        "black-forest-labs/flux-schnell", input={"prompt": "run", "num_outputs": 2}
    )
    assert isinstance(urls, list)
    assert len(urls) == 2
    assert all(url.startswith(server.url) for url in urls)

    # A version reference makes the client fetch the version, see that the output is
    # a token iterator, and hand back an async iterator of tokens.
    llama = find_model("meta", "meta-llama-3-8b-instruct")
    assert llama is not None
    tokens = await client.async_run(
        f"{llama.ref}:{llama.version}", input={"prompt": "rain on a window"}
    )
    text = "".join([token async for token in tokens])
    assert "rain on a window" in text

    # A blocking create that runs out of time: the client must see it as unfinished
    # and poll until the output is there.
    server.config.latency_ms = 2000
    late = await client.async_run(
        "black-forest-labs/flux-schnell", input={"prompt": "late"}, wait=1
    )
    assert isinstance(late, list)
    assert len(late) == 1


async def test_cancel_stops_a_running_prediction(
    server: EmulatorServer, receiver: WebhookReceiver, client: Client
) -> None:
    server.config.latency_ms = 10_000
    name = uuid.uuid4().hex
    prediction = await client.models.predictions.async_create(
        model="black-forest-labs/flux-dev",
        input={"prompt": "never finished"},
        webhook=receiver.hook_url(name),
        webhook_events_filter=["completed"],
    )
    canceled = await client.predictions.async_cancel(prediction.id)
    assert canceled.status == "canceled"
    assert canceled.completed_at is not None
    assert canceled.output is None

    again = await client.predictions.async_get(prediction.id)
    assert again.status == "canceled"
    # Canceling an ended prediction changes nothing.
    assert (await client.predictions.async_cancel(prediction.id)).status == "canceled"

    async def delivered() -> list[Received]:
        return receiver.received(name)

    hooks = await eventually(delivered, what="the completed webhook")
    assert [json.loads(item.body)["status"] for item in hooks] == ["canceled"]


async def test_failure_injection_fails_predictions(server: EmulatorServer, client: Client) -> None:
    server.config.failure_rate = 1.0
    prediction = await client.models.predictions.async_create(
        model="black-forest-labs/flux-schnell", input={"prompt": "doomed"}
    )
    prediction = await finish(prediction)
    assert prediction.status == "failed"
    assert prediction.error
    assert prediction.output is None
    assert "Traceback" in prediction.logs

    server.config.failure_rate = 0.0
    fine = await client.models.predictions.async_create(
        model="black-forest-labs/flux-schnell", input={"prompt": "fine"}, wait=True
    )
    assert fine.status == "succeeded"


# -- validation and errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "inputs", "expected"),
    [
        ("black-forest-labs/flux-schnell", {}, [("required", "input")]),
        (
            "black-forest-labs/flux-schnell",
            {"prompt": "x", "num_outputs": 5},
            [("number_lte", "input.num_outputs")],
        ),
        (
            "black-forest-labs/flux-schnell",
            {"prompt": "x", "num_outputs": "two"},
            [("invalid_type", "input.num_outputs")],
        ),
        (
            "black-forest-labs/flux-schnell",
            {"prompt": "x", "aspect_ratio": "7:3"},
            [("enum", "input.aspect_ratio")],
        ),
        (
            "black-forest-labs/flux-schnell",
            {"prompt": 5, "output_format": "gif"},
            [("invalid_type", "input.prompt"), ("enum", "input.output_format")],
        ),
        (
            "black-forest-labs/flux-dev",
            {"prompt": "x", "prompt_strength": 1.5},
            [("number_lte", "input.prompt_strength")],
        ),
        (
            "black-forest-labs/flux-dev",
            {"prompt": "x", "prompt_strength": -0.1},
            [("number_gte", "input.prompt_strength")],
        ),
        (
            "black-forest-labs/flux-dev",
            {"prompt": "x", "image": "http://127.0.0.1:9/missing.png"},
            [("invalid_file", "input.image")],
        ),
        (
            "kwaivgi/kling-v2.1",
            {"prompt": "x", "duration": 7},
            [("required", "input"), ("enum", "input.duration")],
        ),
        (
            "wavespeedai/wan-2.1-i2v-480p",
            {
                "prompt": "x",
                "aspect_ratio": "1:1",
                "sample_steps": 41,
                "sample_shift": 2.5,
                "sample_guide_scale": 0.5,
            },
            [
                ("enum", "input.aspect_ratio"),
                ("required", "input"),
                ("number_gte", "input.sample_guide_scale"),
                ("number_lte", "input.sample_steps"),
                ("invalid_type", "input.sample_shift"),
            ],
        ),
        (
            "minimax/video-01",
            {"prompt": "x", "prompt_optimizer": "yes"},
            [("invalid_type", "input.prompt_optimizer")],
        ),
    ],
    ids=[
        "missing-prompt",
        "too-many-outputs",
        "wrong-type",
        "unknown-ratio",
        "two-problems",
        "strength-high",
        "strength-low",
        "unreachable-image",
        "kling",
        "wan",
        "minimax",
    ],
)
async def test_invalid_input_is_422_and_creates_nothing(
    server: EmulatorServer,
    client: Client,
    http: httpx.AsyncClient,
    model: str,
    inputs: dict[str, Any],
    expected: list[tuple[str, str]],
) -> None:
    count = len(server.emulator.predictions)
    with pytest.raises(ReplicateError) as raised:
        await client.models.predictions.async_create(model=model, input=inputs)
    assert raised.value.status == 422
    assert raised.value.title == "Input validation failed"
    assert raised.value.detail

    response = await http.post(
        f"{server.url}/v1/models/{model}/predictions", json={"input": inputs}, headers=auth(client)
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 422
    assert [(item["type"], item["field"]) for item in body["invalid_fields"]] == expected
    assert all(item["description"] for item in body["invalid_fields"])
    assert len(server.emulator.predictions) == count


async def test_unknown_things_are_404(
    server: EmulatorServer, client: Client, http: httpx.AsyncClient
) -> None:
    with pytest.raises(ReplicateError) as model:
        await client.models.predictions.async_create(model="nobody/nothing", input={"prompt": "x"})
    assert model.value.status == 404
    assert model.value.title

    with pytest.raises(ReplicateError) as prediction:
        await client.predictions.async_get("doesnotexist")
    assert prediction.value.status == 404

    with pytest.raises(ReplicateError) as version:
        await client.predictions.async_create(version="0" * 64, input={"prompt": "x"})
    assert version.value.status == 422

    community = await http.post(
        f"{server.url}/v1/models/stability-ai/stable-video-diffusion/predictions",
        json={"input": {}},
        headers=auth(client),
    )
    assert community.status_code == 404

    route = await http.get(f"{server.url}/v1/no/such/route", headers=auth(client))
    assert route.status_code == 404
    assert route.json()["status"] == 404
    wrong_method = await http.delete(f"{server.url}/v1/predictions", headers=auth(client))
    assert wrong_method.status_code == 405
    assert "GET" in wrong_method.headers["allow"]


async def test_api_token_is_required_when_configured(http: httpx.AsyncClient) -> None:
    with EmulatorServer(latency_ms=100, api_token="r8_sekret") as locked:
        listing = f"{locked.url}/v1/predictions"
        missing = await http.get(listing)
        assert missing.status_code == 401
        assert missing.json() == {
            "type": missing.json()["type"],
            "title": "Unauthenticated",
            "status": 401,
            "detail": "You did not pass a valid authentication token",
        }
        assert (
            await http.get(listing, headers={"authorization": "Bearer nope"})
        ).status_code == 401
        assert (
            await http.get(listing, headers={"authorization": "Bearer r8_sekret"})
        ).status_code == 200
        assert (
            await http.get(listing, headers={"authorization": "Token r8_sekret"})
        ).status_code == 200
        assert (await http.get(f"{locked.url}/_emulator/faults")).status_code == 401

        wrong = make_client(locked.url, token="nope")
        try:
            with pytest.raises(ReplicateError) as raised:
                await wrong.models.predictions.async_create(
                    model="black-forest-labs/flux-schnell", input={"prompt": "x"}
                )
            assert raised.value.status == 401
        finally:
            await wrong._async_client.aclose()

        right = make_client(locked.url, token="r8_sekret")
        try:
            prediction = await right.models.predictions.async_create(
                model="black-forest-labs/flux-schnell", input={"prompt": "x"}, wait=True
            )
            assert prediction.status == "succeeded"
            # Output files are served like a CDN's: no token needed.
            assert (await http.get(first_output(prediction))).status_code == 200
        finally:
            await right._async_client.aclose()


# -- rate limits ---------------------------------------------------------------------------------


async def test_rate_limit_window_answers_429_with_retry_after(
    server: EmulatorServer, client: Client, http: httpx.AsyncClient
) -> None:
    server.config.create_limit_per_minute = 2
    server.config.other_limit_per_minute = 3
    create_url = f"{server.url}/v1/models/meta/meta-llama-3-8b-instruct/predictions"
    for _ in range(2):
        accepted = await http.post(
            create_url, json={"input": {"prompt": "hi"}}, headers=auth(client)
        )
        assert accepted.status_code == 201
    refused = await http.post(create_url, json={"input": {"prompt": "hi"}}, headers=auth(client))
    assert refused.status_code == 429
    retry_after = refused.headers["retry-after"]
    assert retry_after.isdigit()
    assert 1 <= int(retry_after) <= 60
    body = refused.json()
    assert body["title"] == "Too Many Requests"
    assert body["status"] == 429
    assert "throttled" in body["detail"]
    with pytest.raises(ReplicateError) as raised:
        await client.models.predictions.async_create(
            model="meta/meta-llama-3-8b-instruct", input={"prompt": "hi"}
        )
    assert raised.value.status == 429

    # Other calls have their own window.
    listing = f"{server.url}/v1/predictions"
    for _ in range(3):
        assert (await http.get(listing, headers=auth(client))).status_code == 200
    limited = await http.get(listing, headers=auth(client))
    assert limited.status_code == 429
    assert limited.headers["retry-after"].isdigit()

    # Another token is not affected.
    other = {"authorization": f"Bearer r8_other_{uuid.uuid4().hex}"}
    assert (await http.get(listing, headers=other)).status_code == 200
    assert (
        await http.post(create_url, json={"input": {"prompt": "hi"}}, headers=other)
    ).status_code == 201


async def test_a_seeded_emulator_makes_the_same_random_choices_every_run(
    http: httpx.AsyncClient,
) -> None:
    """Which creates are throttled and the seeds models pick follow `seed` alone."""

    async def one_run(seed: int) -> list[tuple[int, str]]:
        with EmulatorServer(latency_ms=0, throttle_rate=0.5, seed=seed) as emulator:
            answers = []
            for _ in range(16):
                response = await http.post(
                    f"{emulator.url}/v1/models/black-forest-labs/flux-schnell/predictions",
                    json={"input": {"prompt": "a kite"}},
                    headers={"prefer": "wait"},
                )
                picked = re.search(r"Using seed: (\d+)", response.json().get("logs") or "")
                answers.append((response.status_code, picked[1] if picked else ""))
            return answers

    first = await one_run(seed=7)
    assert {status for status, _ in first} == {201, 429}, first
    assert all(seed for status, seed in first if status == 201), first
    assert await one_run(seed=7) == first
    assert await one_run(seed=8) != first


async def test_throttle_rate_injects_429s_on_creates(
    server: EmulatorServer, client: Client, http: httpx.AsyncClient
) -> None:
    server.config.throttle_rate = 1.0
    with pytest.raises(ReplicateError) as raised:
        await client.models.predictions.async_create(
            model="black-forest-labs/flux-schnell", input={"prompt": "x"}
        )
    assert raised.value.status == 429
    response = await http.post(
        f"{server.url}/v1/models/black-forest-labs/flux-schnell/predictions",
        json={"input": {"prompt": "x"}},
        headers=auth(client),
    )
    assert response.status_code == 429
    assert response.headers["retry-after"].isdigit()
    # Only creates are throttled.
    assert (await http.get(f"{server.url}/v1/predictions", headers=auth(client))).status_code == 200

    server.config.throttle_rate = 0.0
    prediction = await client.models.predictions.async_create(
        model="black-forest-labs/flux-schnell", input={"prompt": "x"}
    )
    assert prediction.status == "starting"


# -- webhooks --------------------------------------------------------------------------------------


async def test_webhooks_are_signed_and_follow_the_prediction(
    server: EmulatorServer,
    receiver: WebhookReceiver,
    client: Client,
    http: httpx.AsyncClient,
) -> None:
    # This emulator has no API token, so it hands its secret to no one (tests/test_secrets.py).
    secret = server.config.webhook_secret
    assert secret.startswith("whsec_")
    name = uuid.uuid4().hex
    prediction = await client.models.predictions.async_create(
        model="black-forest-labs/flux-schnell",
        input={"prompt": "signed", "num_outputs": 2},
        webhook=receiver.hook_url(name),
    )
    prediction = await finish(prediction)
    log = await settled_webhooks(http, server, prediction.id)
    hooks = receiver.received(name)
    assert [item.webhook_id for item in hooks] == [entry["webhook_id"] for entry in log]
    assert len({item.webhook_id for item in hooks}) == len(hooks)

    bodies = [json.loads(item.body) for item in hooks]
    events = [entry["event"] for entry in log]
    assert events[0] == "start"
    assert events[-1] == "completed"
    assert {"logs", "output"} <= set(events)
    assert bodies[0]["status"] == "starting"
    assert bodies[-1]["status"] == "succeeded"
    assert any(body["status"] == "processing" for body in bodies)
    assert bodies[-1]["output"] == prediction.output
    assert all(body["id"] == prediction.id for body in bodies)
    for item in hooks:
        assert item.headers["content-type"] == "application/json"
        validate_webhook(item, secret)
        expected = sign_webhook(
            secret, item.webhook_id, int(item.headers["webhook-timestamp"]), item.body
        )
        assert item.headers["webhook-signature"] == expected

    tampered = hooks[-1]
    with pytest.raises(InvalidSignatureError):
        Webhooks.validate(
            headers=tampered.headers,
            body=tampered.body.decode().replace("succeeded", "failed"),
            secret=WebhookSigningSecret(key=secret),
        )


@pytest.mark.parametrize(
    ("events", "statuses"),
    [
        (["completed"], ["succeeded"]),
        (["start", "completed"], ["starting", "succeeded"]),
        (["output", "completed"], ["processing", "succeeded"]),
        (["start"], ["starting", "succeeded"]),
    ],
    ids=["completed", "start+completed", "output+completed", "start-only-still-completes"],
)
async def test_webhook_events_filter_is_honoured(
    server: EmulatorServer,
    receiver: WebhookReceiver,
    client: Client,
    http: httpx.AsyncClient,
    events: list[str],
    statuses: list[str],
) -> None:
    name = uuid.uuid4().hex
    prediction = await client.models.predictions.async_create(
        model="black-forest-labs/flux-schnell",
        input={"prompt": "filtered"},
        webhook=receiver.hook_url(name),
        webhook_events_filter=events,
    )
    prediction = await finish(prediction)
    await settled_webhooks(http, server, prediction.id)
    bodies = [json.loads(item.body) for item in receiver.received(name)]
    assert [body["status"] for body in bodies] == statuses
    if "output" in events:
        assert bodies[0]["output"]


async def test_failed_webhook_deliveries_are_retried_with_the_same_id(
    server: EmulatorServer,
    receiver: WebhookReceiver,
    client: Client,
    http: httpx.AsyncClient,
) -> None:
    server.config.webhook_retry_seconds = 0.05
    name = uuid.uuid4().hex
    receiver.fail_first[name] = 2
    prediction = await client.models.predictions.async_create(
        model="black-forest-labs/flux-schnell",
        input={"prompt": "retry"},
        webhook=receiver.hook_url(name),
        webhook_events_filter=["completed"],
    )
    prediction = await finish(prediction)
    (entry,) = await settled_webhooks(http, server, prediction.id)
    assert entry["outcome"] == "delivered"
    assert entry["attempts"] == 3
    attempts = receiver.received(name, accepted_only=False)
    assert [item.status for item in attempts] == [500, 500, 200]
    assert {item.webhook_id for item in attempts} == {entry["webhook_id"]}
    for item in attempts:
        validate_webhook(item, server.config.webhook_secret)


async def test_duplicate_fault_delivers_each_event_twice(
    server: EmulatorServer,
    receiver: WebhookReceiver,
    client: Client,
    http: httpx.AsyncClient,
) -> None:
    server.config.webhook_duplicate_rate = 1.0
    name = uuid.uuid4().hex
    prediction = await client.models.predictions.async_create(
        model="black-forest-labs/flux-schnell",
        input={"prompt": "twice"},
        webhook=receiver.hook_url(name),
        webhook_events_filter=["start", "completed"],
    )
    prediction = await finish(prediction)
    log = await settled_webhooks(http, server, prediction.id)
    assert [entry["copies"] for entry in log] == [2, 2]
    hooks = receiver.received(name)
    assert len(hooks) == 4
    for entry in log:
        copies = [item for item in hooks if item.webhook_id == entry["webhook_id"]]
        assert len(copies) == 2
        assert copies[0].body == copies[1].body


async def test_drop_fault_never_delivers(
    server: EmulatorServer,
    receiver: WebhookReceiver,
    client: Client,
    http: httpx.AsyncClient,
) -> None:
    server.config.webhook_drop_rate = 1.0
    name = uuid.uuid4().hex
    prediction = await client.models.predictions.async_create(
        model="black-forest-labs/flux-schnell",
        input={"prompt": "lost"},
        webhook=receiver.hook_url(name),
    )
    prediction = await finish(prediction)
    assert prediction.status == "succeeded"
    log = await settled_webhooks(http, server, prediction.id)
    assert len(log) >= 2
    assert {entry["outcome"] for entry in log} == {"dropped"}
    assert receiver.received(name, accepted_only=False) == []


async def test_shuffle_fault_delivers_out_of_order(
    server: EmulatorServer,
    receiver: WebhookReceiver,
    client: Client,
    http: httpx.AsyncClient,
) -> None:
    server.config.webhook_shuffle = True
    server.config.latency_ms = 1600  # long enough for several throttled `logs` events
    name = uuid.uuid4().hex
    prediction = await client.models.predictions.async_create(
        model="black-forest-labs/flux-dev",
        input={"prompt": "scrambled"},
        webhook=receiver.hook_url(name),
    )
    prediction = await finish(prediction)
    log = await settled_webhooks(http, server, prediction.id)
    assert len(log) >= 3
    sent_order = [entry["webhook_id"] for entry in log]
    received_order = [item.webhook_id for item in receiver.received(name)]
    assert sorted(received_order) == sorted(sent_order)
    assert received_order != sent_order


# -- expiry --------------------------------------------------------------------------------------


async def test_outputs_expire_after_the_ttl(
    server: EmulatorServer, client: Client, http: httpx.AsyncClient
) -> None:
    server.config.output_ttl_seconds = 0.5
    prediction = await client.models.predictions.async_create(
        model="black-forest-labs/flux-schnell", input={"prompt": "ephemeral"}, wait=True
    )
    assert prediction.status == "succeeded"
    url = first_output(prediction)
    assert (await http.get(url)).status_code == 200

    async def removed() -> dict[str, Any] | None:
        response = await http.get(get_url(prediction), headers=auth(client))
        body: dict[str, Any] = response.json()
        return body if body["data_removed"] else None

    body = await eventually(removed, what="the output to expire")
    assert body["output"] is None
    assert body["status"] == "succeeded"
    gone = await http.get(url)
    assert gone.status_code == 404
    assert gone.json()["status"] == 404


# -- listing, models, admin -----------------------------------------------------------------------


async def test_predictions_are_listed_newest_first_in_pages(
    server: EmulatorServer, client: Client
) -> None:
    server.config.page_size = 2
    created = [
        await client.models.predictions.async_create(
            model="meta/meta-llama-3-8b-instruct", input={"prompt": f"page {index}"}
        )
        for index in range(3)
    ]
    first = await client.predictions.async_list()
    assert [item.id for item in first.results] == [created[2].id, created[1].id]
    assert first.next is not None
    second = await client.predictions.async_list(first.next)
    assert second.results[0].id == created[0].id
    assert second.previous is not None
    back = await client.predictions.async_list(second.previous)
    assert [item.id for item in back.results] == [created[2].id, created[1].id]


async def test_models_versions_and_account(
    server: EmulatorServer, client: Client, http: httpx.AsyncClient
) -> None:
    model = await client.models.async_get("black-forest-labs/flux-schnell")
    assert model.owner == "black-forest-labs"
    assert model.latest_version is not None
    schema = model.latest_version.openapi_schema["components"]["schemas"]["Input"]
    assert schema["required"] == ["prompt"]
    assert schema["properties"]["num_outputs"]["maximum"] == 4
    assert "16:9" in schema["properties"]["aspect_ratio"]["enum"]

    version = await http.get(
        f"{server.url}/v1/models/stability-ai/stable-video-diffusion/versions/{SVD_VERSION}",
        headers=auth(client),
    )
    assert version.status_code == 200
    assert version.json()["id"] == SVD_VERSION
    account = await http.get(f"{server.url}/v1/account", headers=auth(client))
    assert account.status_code == 200
    assert account.json()["username"]


async def test_admin_endpoint_changes_faults_on_a_running_emulator(
    server: EmulatorServer, client: Client, http: httpx.AsyncClient
) -> None:
    faults = f"{server.url}/_emulator/faults"
    assert (await http.get(faults)).json()["failure_rate"] == 0.0

    changed = await http.post(faults, json={"failure_rate": 1.0})
    assert changed.status_code == 200
    assert changed.json()["failure_rate"] == 1.0
    assert server.config.failure_rate == 1.0
    failed = await client.models.predictions.async_create(
        model="black-forest-labs/flux-schnell", input={"prompt": "x"}, wait=True
    )
    assert failed.status == "failed"

    rejected = await http.post(faults, json={"failure_rate": 0.0, "webhook_drop_rate": 2})
    assert rejected.status_code == 422
    assert [item["field"] for item in rejected.json()["invalid_fields"]] == ["webhook_drop_rate"]
    assert server.config.failure_rate == 1.0  # all or nothing
    assert (await http.post(faults, json={"api_token": "x"})).status_code == 422

    assert (await http.post(faults, json={"down": True, "failure_rate": 0.0})).status_code == 200
    down = await http.get(f"{server.url}/v1/predictions", headers=auth(client))
    assert down.status_code == 503
    assert down.json()["status"] == 503
    with pytest.raises(ReplicateError) as raised:
        await client.models.predictions.async_create(
            model="black-forest-labs/flux-schnell", input={"prompt": "x"}
        )
    assert raised.value.status == 503
    assert (await http.get(f"{server.url}/_emulator/health")).status_code == 200

    reset = await http.post(f"{server.url}/_emulator/reset")
    assert reset.json()["down"] is False
    assert (await http.get(f"{server.url}/v1/predictions", headers=auth(client))).status_code == 200


async def test_fault_settings_of_any_size_are_422_not_500(
    server: EmulatorServer, http: httpx.AsyncClient
) -> None:
    faults = f"{server.url}/_emulator/faults"
    before = (await http.get(faults)).json()
    huge = 10**400
    for name in ("latency_ms", "failure_rate", "output_ttl_seconds", "page_size"):
        # A 401-digit integer was a 500 (float() overflows); 1e300 ms was accepted.
        for value in (huge, -huge, 1e300, -1e300, 10**9 + 1, 10**7 + 0.5):
            response = await http.post(faults, json={name: value})
            assert response.status_code == 422, (name, value, response.text)
            assert [f["field"] for f in response.json()["invalid_fields"]] == [name]
        assert (await http.post(faults, json={name: before[name]})).status_code == 200
    assert (await http.get(faults)).json() == before


# -- embedding and running alone --------------------------------------------------------------------


async def test_mounted_inside_another_app(http: httpx.AsyncClient) -> None:
    holder: dict[str, Any] = {}

    def build(url: str) -> ASGIApp:
        config = EmulatorConfig(latency_ms=100, public_url=f"{url}/replicate")
        inner = create_emulator_app(config)
        holder["emulator"] = inner.state.emulator

        @asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            # A mounted app's lifespan does not run: the host starts and stops it.
            async with inner.state.emulator.running():
                yield

        return Starlette(routes=[Mount("/replicate", app=inner)], lifespan=lifespan)

    with ThreadedServer(build, name="host") as host:
        mounted = make_client(f"{host.url}/replicate")
        try:
            prediction = await mounted.models.predictions.async_create(
                model="black-forest-labs/flux-schnell", input={"prompt": "mounted"}, wait=True
            )
            assert prediction.status == "succeeded"
            assert get_url(prediction).startswith(f"{host.url}/replicate/v1/predictions/")
            assert (await http.get(first_output(prediction))).status_code == 200
            again = await mounted.predictions.async_get(prediction.id)
            assert again.id == prediction.id
        finally:
            await mounted._async_client.aclose()
        assert holder["emulator"].started
    assert not holder["emulator"].started


async def test_shutdown_cancels_work_in_flight(receiver: WebhookReceiver) -> None:
    running = EmulatorServer(latency_ms=60_000).start()
    try:
        slow = make_client(running.url)
        try:
            prediction = await slow.models.predictions.async_create(
                model="kwaivgi/kling-v2.1",
                input={"prompt": "x", "start_image": data_uri(png_bytes(source_picture((64, 64))))},
                webhook=receiver.hook_url(uuid.uuid4().hex),
            )
        finally:
            await slow._async_client.aclose()
        record = running.emulator.predictions[prediction.id]
        assert record.task is not None
        assert not record.task.done()
    finally:
        running.stop()
    assert record.task.done()
    assert not running.emulator.started


async def test_runs_as_a_separate_process(tmp_path: Path, http: httpx.AsyncClient) -> None:
    port = free_port()
    launcher = (
        "import asyncio\n"
        "from services.replicate.emulator import EmulatorConfig, serve_emulator\n"
        f"asyncio.run(serve_emulator('127.0.0.1', {port}, EmulatorConfig(latency_ms=200), log_level='warning'))\n"
    )
    log_path = tmp_path / "emulator.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", launcher, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:

        async def healthy() -> bool:
            assert process.returncode is None, log_path.read_text()
            try:
                return (await http.get(f"{base}/_emulator/health")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(healthy, within=30, what="the emulator process to answer")
        assert (
            await http.post(f"{base}/_emulator/faults", json={"failure_rate": 1.0})
        ).status_code == 200
        separate = make_client(base)
        try:
            failed = await separate.models.predictions.async_create(
                model="black-forest-labs/flux-schnell", input={"prompt": "x"}, wait=True
            )
            assert failed.status == "failed"
            assert get_url(failed).startswith(base)
            assert (
                await http.post(f"{base}/_emulator/faults", json={"failure_rate": 0.0})
            ).status_code == 200
            fine = await separate.models.predictions.async_create(
                model="black-forest-labs/flux-schnell", input={"prompt": "x"}, wait=True
            )
            assert fine.status == "succeeded"
        finally:
            await separate._async_client.aclose()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(15):
                code = await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
    # uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert code in (0, -signal.SIGTERM), log_path.read_text()
    assert "Traceback" not in log_path.read_text()


# -- the pieces on their own -------------------------------------------------------------------


def test_sliding_window_counts_only_accepted_requests() -> None:
    now = [1000.0]
    limiter = SlidingWindowLimiter(window=60.0, clock=lambda: now[0])
    assert limiter.acquire("t", 2) is None
    now[0] += 10
    assert limiter.acquire("t", 2) is None
    assert limiter.acquire("t", 2) == 50  # the first request leaves the window at +60
    now[0] += 49.5
    assert limiter.acquire("t", 2) == 1
    now[0] += 1
    assert limiter.acquire("t", 2) is None  # refusals did not push recovery back
    assert limiter.acquire("other", 2) is None
    assert limiter.acquire("t", 0) == 60


def test_shuffled_deliveries_never_keep_their_order() -> None:
    dice = FaultDice(seed=1)
    for length in range(2, 7):
        for _ in range(50):
            items = list(range(length))
            dice.derange(items)
            assert items != list(range(length))
            assert sorted(items) == list(range(length))
