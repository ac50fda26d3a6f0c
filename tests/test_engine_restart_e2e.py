"""Crashes of real `studio serve` processes (SIGKILL), and what a restart makes of them.

- With the built-in emulator, a crash takes the provider's memory with it: every
  in-flight prediction is unknown after the restart, and each is submitted again
  once instead of being polled forever.
- With a provider that outlives the crash, a kill between sending a create and
  recording its answer leaves a prediction we never heard of: the restart adopts
  it instead of creating a second one, and resumes at once instead of waiting
  out the two-minute claim of the dead process.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import StudioServer, free_port, studio_env
from tests.test_generation_e2e import API_TOKEN, Client, emulator, finished, server

pytestmark = pytest.mark.e2e

# Well under the two-minute claim timeout a dead process's claims used to hold.
RESUME_WITHIN = 60.0


def kill(studio: StudioServer) -> None:
    os.kill(studio.process.pid, signal.SIGKILL)
    studio.process.wait(timeout=10)


def test_after_a_crash_with_the_built_in_emulator_every_image_finishes(tmp_path: Path) -> None:
    studio = StudioServer(
        env=studio_env(EMULATOR_LATENCY_MS="4000", GENERATION_POLL_SECONDS="0.3"),
        cwd=tmp_path,
        name="embedded-crash",
        port=free_port(),  # the same address after the restart
    )
    with studio:
        client = Client(studio.base_url)
        client.sign_up()
        shot_id, _ = client.shot_with_images(6)
        client.wait(shot_id, lambda images: all(i["predictionId"] for i in images), within=60)
        assert not finished(client.images(shot_id))
        before = {image["predictionId"] for image in client.images(shot_id)}
        kill(studio)

        studio.start()  # a new emulator inside, which knows none of those predictions
        began = time.monotonic()
        done = client.wait(shot_id, finished, within=RESUME_WITHIN)
        took = time.monotonic() - began
    assert [image["status"] for image in done] == ["COMPLETE"] * 6, done
    assert not before & {image["predictionId"] for image in done}  # each submitted again
    assert took < RESUME_WITHIN
    log = studio.output()  # the restarted process's log
    # One warning per lost prediction, not one per poll.
    assert log.count("is unknown to the provider: submitting it again") == 6, log
    assert "unknown to the provider again" not in log


def test_a_kill_mid_submission_adopts_the_orphan_and_resumes_at_once(tmp_path: Path) -> None:
    with emulator(tmp_path, latency_ms=1500) as replicate:
        provider = httpx.Client(
            base_url=replicate.base_url,
            timeout=10,
            trust_env=False,
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        )
        # The provider makes each prediction at once but answers 3 s later: a kill in
        # that window leaves a prediction whose id we never recorded.
        held = provider.post("/_emulator/faults", json={"create_response_delay_ms": 3000})
        assert held.status_code == 200, held.text
        studio = server(tmp_path, replicate, webhooks=False)
        with studio:
            client = Client(studio.base_url)
            client.sign_up()
            shot_id, _ = client.shot_with_images(6)
            deadline = time.monotonic() + 30
            while provider.get("/_emulator/health").json()["predictions"] < 1:
                assert time.monotonic() < deadline, "no create reached the provider"
                time.sleep(0.05)
            kill(studio)  # the first create's answer is still on its way
            assert all(image["predictionId"] is None for image in client_images(studio, shot_id))
            orphan = provider.get("/v1/predictions").json()["results"]
            assert len(orphan) == 1
            released = provider.post("/_emulator/faults", json={"create_response_delay_ms": 0})
            assert released.status_code == 200

            studio.start()
            began = time.monotonic()
            done = client.wait(shot_id, finished, within=RESUME_WITHIN)
            took = time.monotonic() - began
        made = provider.get("/v1/predictions").json()["results"]
    assert [image["status"] for image in done] == ["COMPLETE"] * 6, done
    assert took < RESUME_WITHIN
    assert len(made) == 6, [p["id"] for p in made]  # six images, six predictions
    assert orphan[0]["id"] in {image["predictionId"] for image in done}  # adopted


def client_images(studio: StudioServer, shot_id: str) -> list[dict[str, Any]]:
    """The shot's images read straight from the database (the server is down)."""
    import sqlite3

    from schema import ids

    shot = ids.decode(shot_id, "Shot")
    with sqlite3.connect(studio.cwd / "studio.db") as connection:
        rows = connection.execute(
            "SELECT id, prediction_id FROM shot_images WHERE shot_id = ?", (shot,)
        ).fetchall()
    return [{"id": row_id, "predictionId": prediction_id} for row_id, prediction_id in rows]
