"""Generation across real processes: `studio serve` talking to `studio emulator` over HTTP.

A server killed with SIGKILL while predictions are in flight finishes them
after a restart; webhooks are verified, idempotent and safe in any order.
"""

from __future__ import annotations

import base64
import io
import json
import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from services.replicate.signatures import sign
from tests.factories import PASSWORD
from tests.servers import StudioServer, free_port, studio_env

pytestmark = pytest.mark.e2e

SECRET_KEY = "end-to-end generation tests secret key, long enough"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"generation end-to-end webhook key").decode()
# The emulator, like Replicate, answers only with its API token; the server sends it.
API_TOKEN = "r8_" + secrets.token_urlsafe(24)
DEADLINE = 90.0


def emulator(tmp: Path, *, latency_ms: int) -> StudioServer:
    env = studio_env(
        EMULATOR_LATENCY_MS=str(latency_ms),
        REPLICATE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        REPLICATE_API_TOKEN=API_TOKEN,
    )
    return StudioServer(
        env=env, cwd=tmp, name="emulator", command="emulator", ready_path="/_emulator/health"
    )


def server(tmp: Path, replicate: StudioServer, *, webhooks: bool) -> StudioServer:
    """A studio server on SQLite using the emulator; with webhooks, PUBLIC_URL names it."""
    port = free_port()
    settings = {"PUBLIC_URL": f"http://127.0.0.1:{port}"} if webhooks else {}
    env = studio_env(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp / 'studio.db'}",
        SECRET_KEY=SECRET_KEY,
        REPLICATE_BASE_URL=replicate.base_url,
        REPLICATE_API_TOKEN=API_TOKEN,
        REPLICATE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        # Slow polling, so that with webhooks on it is the webhooks that do the work.
        GENERATION_POLL_SECONDS="30" if webhooks else "0.3",
        MEDIA_ROOT=str(tmp / "media"),
        **settings,
    )
    return StudioServer(env=env, cwd=tmp, name="studio", port=port)


class Client:
    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30.0, trust_env=False)
        self.token = ""

    def run(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body
        data: dict[str, Any] = body["data"]
        return data

    @classmethod
    def signed_up(cls, base_url: str) -> Client:
        """A client of the studio at `base_url`, signed up as a new user of its own."""
        client = cls(base_url)
        client.sign_up()
        return client

    def sign_up(self) -> None:
        data = self.run(
            "mutation($i: SignUpInput!) { signUp(input: $i) { token } }",
            {
                "i": {
                    "email": f"gen-{secrets.token_hex(4)}@example.com",
                    "password": PASSWORD,
                    "name": "G",
                }
            },
        )
        self.token = data["signUp"]["token"]

    def shot_with_images(self, count: int) -> tuple[str, list[str]]:
        project = self.run(
            'mutation { createProject(input: {title: "Restart"}) { project { id } } }'
        )["createProject"]["project"]["id"]
        shot = self.run(
            'mutation($p: ID!) { createScene(input: {projectId: $p, title: "S", '
            'shots: [{initialPrompt: "harbour at night"}]}) { scene { shots { id } } } }',
            {"p": project},
        )["createScene"]["scene"]["shots"][0]["id"]
        started = self.run(
            "mutation($s: ID!, $n: Int!) { generateShotImages(input: {shotId: $s, variantCount: $n}) "
            "{ images { id } userErrors { code message } } }",
            {"s": shot, "n": count},
        )["generateShotImages"]
        assert started["userErrors"] == [], started
        return shot, [image["id"] for image in started["images"]]

    def images(self, shot_id: str) -> list[dict[str, Any]]:
        data = self.run(
            "query($id: ID!) { node(id: $id) { ... on Shot { images { id status predictionId imageUrl error } } } }",
            {"id": shot_id},
        )
        images: list[dict[str, Any]] = data["node"]["images"]
        return images

    def wait(self, shot_id: str, done: Any, within: float = DEADLINE) -> list[dict[str, Any]]:
        """The shot's images once `done(images)` holds; fails after `within` seconds."""
        deadline = time.monotonic() + within
        while True:
            images = self.images(shot_id)
            if done(images):
                return images
            assert time.monotonic() < deadline, images
            time.sleep(0.2)


def finished(images: list[dict[str, Any]]) -> bool:
    return all(image["status"] not in ("PENDING", "PROCESSING") for image in images)


def assert_served_as_images(images: list[dict[str, Any]]) -> None:
    """Each image's `imageUrl` answers 200 with bytes PIL decodes as a whole image."""
    for image in images:
        response = httpx.get(image["imageUrl"], timeout=10, trust_env=False)
        assert response.status_code == 200, image
        Image.open(io.BytesIO(response.content)).load()


@pytest.fixture
def replicate(tmp_path: Path) -> Iterator[StudioServer]:
    # Slow enough that a kill always lands while predictions are still running.
    with emulator(tmp_path, latency_ms=4000) as running:
        yield running


def test_a_server_killed_mid_flight_finishes_everything_after_a_restart(
    tmp_path: Path, replicate: StudioServer
) -> None:
    studio = server(tmp_path, replicate, webhooks=False)
    with studio:
        client = Client.signed_up(studio.base_url)
        shot_id, _ = client.shot_with_images(6)
        # Wait until the predictions exist at the provider, then kill without warning.
        client.wait(shot_id, lambda images: all(image["predictionId"] for image in images))
        assert not finished(client.images(shot_id))
        os.kill(studio.process.pid, signal.SIGKILL)
        studio.process.wait(timeout=10)

        studio.start()  # same database, same token
        done = client.wait(shot_id, finished)
        assert [image["status"] for image in done] == ["COMPLETE"] * 6, done
        assert_served_as_images(done)  # our stored copies, served by signed URL


def deliver(
    studio: StudioServer,
    prediction: dict[str, Any],
    *,
    webhook_id: str | None = None,
    timestamp: int | None = None,
    secret: str = WEBHOOK_SECRET,
) -> httpx.Response:
    body = json.dumps(prediction).encode()
    webhook_id = webhook_id or f"msg_{secrets.token_hex(8)}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    headers = {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, webhook_id, timestamp, body),
    }
    return httpx.post(
        f"{studio.base_url}/webhooks/replicate",
        content=body,
        headers=headers,
        timeout=10,
        trust_env=False,
    )


def test_webhooks_are_verified_idempotent_and_safe_in_any_order(
    tmp_path: Path, replicate: StudioServer
) -> None:
    studio = server(tmp_path, replicate, webhooks=True)
    with studio:
        client = Client.signed_up(studio.base_url)
        shot_id, _ = client.shot_with_images(2)
        done = client.wait(shot_id, finished)  # the emulator's own, signed webhooks did this
        assert [image["status"] for image in done] == ["COMPLETE"] * 2, done
        prediction_id = done[0]["predictionId"]
        upstream = httpx.get(
            f"{replicate.base_url}/v1/predictions/{prediction_id}",
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            timeout=10,
            trust_env=False,
        ).json()
        assert upstream["status"] == "succeeded"

        late = {**upstream, "status": "processing", "output": None, "completed_at": None}
        forged = deliver(
            studio, late, secret="whsec_" + base64.b64encode(b"not the secret").decode()
        )
        assert forged.status_code == 401
        expired = deliver(studio, late, timestamp=int(time.time()) - 600)
        assert expired.status_code == 401
        unsigned = httpx.post(
            f"{studio.base_url}/webhooks/replicate", json=late, timeout=10, trust_env=False
        )
        assert unsigned.status_code == 401

        # A genuine but late "processing" never undoes "succeeded".
        assert deliver(studio, late).status_code == 200
        replayed_id = f"msg_{secrets.token_hex(8)}"
        first = deliver(studio, upstream, webhook_id=replayed_id)
        second = deliver(studio, upstream, webhook_id=replayed_id)
        assert first.json() == {"status": "ok"}
        assert second.json() == {"status": "duplicate"}
        after = client.images(shot_id)
        assert [image["status"] for image in after] == ["COMPLETE"] * 2
        assert after[0]["imageUrl"] == done[0]["imageUrl"]


def test_duplicated_and_shuffled_webhooks_still_end_complete(
    tmp_path: Path, replicate: StudioServer
) -> None:
    faults = {"webhook_duplicate_rate": 1.0, "webhook_shuffle": True}
    response = httpx.post(
        f"{replicate.base_url}/_emulator/faults",
        json=faults,
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        timeout=10,
        trust_env=False,
    )
    assert response.status_code == 200, response.text
    studio = server(tmp_path, replicate, webhooks=True)
    with studio:
        client = Client.signed_up(studio.base_url)
        shot_id, _ = client.shot_with_images(4)
        done = client.wait(shot_id, finished)
    assert [image["status"] for image in done] == ["COMPLETE"] * 4, done
    log = studio.output()
    assert "webhook refused" not in log, log


def test_media_urls_are_signed_expiring_and_stream_video_by_range(
    tmp_path: Path, replicate: StudioServer
) -> None:
    studio = server(tmp_path, replicate, webhooks=False)
    with studio:
        client = Client.signed_up(studio.base_url)
        shot_id, images = client.shot_with_images(1)
        done = client.wait(shot_id, finished)
        selection = client.run(
            "mutation($s: ID!, $i: ID!) { selectMasterShot(input: {shotId: $s, imageId: $i}) "
            "{ selection { id } } }",
            {"s": shot_id, "i": images[0]},
        )["selectMasterShot"]["selection"]["id"]
        started = client.run(
            "mutation($s: ID!) { animateShot(input: {selectionId: $s}) { userErrors { code } } }",
            {"s": selection},
        )["animateShot"]
        assert started["userErrors"] == []
        deadline = time.monotonic() + DEADLINE
        while True:
            node = client.run(
                "query($s: ID!) { node(id: $s) { ... on StoryboardSelection { animationStatus animatedVideoUrl } } }",
                {"s": selection},
            )["node"]
            if node["animationStatus"] not in ("PENDING", "PROCESSING"):
                break
            assert time.monotonic() < deadline, node
            time.sleep(0.2)
        assert node["animationStatus"] == "COMPLETE", node
        video_url = node["animatedVideoUrl"]
        assert video_url.startswith(f"{studio.base_url}/media/videos/")

        whole = httpx.get(video_url, timeout=10, trust_env=False)
        assert whole.status_code == 200
        assert whole.headers["content-type"] == "video/mp4"
        assert whole.headers["accept-ranges"] == "bytes"
        size = len(whole.content)
        assert whole.content[4:8] == b"ftyp"

        part = httpx.get(
            video_url, headers={"Range": "bytes=100-1099"}, timeout=10, trust_env=False
        )
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes 100-1099/{size}"
        assert part.content == whole.content[100:1100]
        tail = httpx.get(video_url, headers={"Range": "bytes=-10"}, timeout=10, trust_env=False)
        assert tail.status_code == 206
        assert tail.content == whole.content[-10:]
        beyond = httpx.get(
            video_url, headers={"Range": f"bytes={size}-"}, timeout=10, trust_env=False
        )
        assert beyond.status_code == 416

        image_url = done[0]["imageUrl"]
        tampered = image_url.replace("signature=", "signature=0")
        assert httpx.get(tampered, timeout=10, trust_env=False).status_code == 404
        expired = (
            image_url.split("?")[0] + "?expires=1000&signature=" + image_url.split("signature=")[1]
        )
        assert httpx.get(expired, timeout=10, trust_env=False).status_code == 404
        unsigned = image_url.split("?")[0]
        assert httpx.get(unsigned, timeout=10, trust_env=False).status_code == 404


def test_the_embedded_default_generates_offline_with_its_own_emulator(tmp_path: Path) -> None:
    """No configuration at all (only a shorter latency): `studio serve` makes real images."""
    studio = StudioServer(
        env=studio_env(EMULATOR_LATENCY_MS="200"), cwd=tmp_path, name="embedded-generation"
    )
    with studio:
        client = Client.signed_up(studio.base_url)
        shot_id, _ = client.shot_with_images(2)
        done = client.wait(shot_id, finished)
        assert [image["status"] for image in done] == ["COMPLETE"] * 2, done
        assert_served_as_images(done)
        assert (tmp_path / ".studio" / "media").is_dir()
    assert "built-in Replicate emulator" in studio.output()
