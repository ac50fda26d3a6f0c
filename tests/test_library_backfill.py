"""Assets of what was stored before the library: migration 0011, then thumbnails.

Rows are written at revision 0010 as the storyboard stored them, the database is
upgraded, and the assets are read back; then `fill_missing` (the start-up task's
and `studio thumbnails`' work) makes their thumbnails and measurements from real
files. On both engines (`empty_database_url`), plus the command and a server start.
"""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import pytest
from alembic import command
from PIL import Image
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

import migrations
from api.cli import main
from api.settings import Settings
from services.database import Database
from services.library.thumbnails import fill_missing
from services.media.storage import LocalStorage
from tests.media_harness import media_server


def _to(revision: str, direction: str = "upgrade") -> Callable[[Connection], None]:
    def run(connection: Connection) -> None:
        getattr(command, direction)(migrations.alembic_config(connection), revision)

    return run


def _inserter(connection: Connection) -> Callable[..., int]:
    tables = MetaData()
    tables.reflect(connection)
    now = datetime.now(UTC)

    def insert(table: str, **values: Any) -> int:
        result = connection.execute(
            tables.tables[table].insert().values(created_at=now, updated_at=now, **values)
        )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    return insert


ASSET_DEFAULTS: dict[str, Any] = {
    "kind": "IMAGE",
    "status": "READY",
    "share_level": "TEAM",
    "tags": [],
    "can_duplicate": True,
    "can_remix": True,
    "version": 1,
    "branch_name": "main",
    "evolution_type": "ORIGINAL",
    "views": 0,
    "duplicate_count": 0,
    "remix_count": 0,
    "position_pinned": False,
    "failed_tries": 0,
    "resubmissions": 0,
    "copy_attempts": 0,
}


IMAGE_NAMES = {"a", "b", "failed", "running", "c", "g", "imported", "copying", "added", "d", "m"}


def _seed(connection: Connection) -> dict[str, int]:
    """A storyboard as stored before 0011 (see the test for what each row stands for)."""
    insert = _inserter(connection)
    ids: dict[str, int] = {}
    ids["ann"] = user = insert("users", email="ann@example.com", name="Ann", password_hash="x")
    ids["team"] = team = insert("teams", name="Ann", is_personal=True)
    ids["project"] = project = insert(
        "projects",
        team_id=team,
        owner_id=user,
        title="Night Market",
        workflow_version="V2_REDESIGN",
        status="ANIMATION_COMPLETE",
    )
    scene = insert("scenes", project_id=project, scene_number=1, title="Arrival")
    first = insert("shots", scene_id=scene, project_id=project, shot_number=1)
    second = insert(
        "shots", scene_id=scene, project_id=project, shot_number=2, description="A tram at night"
    )
    ids["library"] = insert(
        "assets",
        **{**ASSET_DEFAULTS, "version": 2, "branch_name": "coast"},
        team_id=team,
        creator_id=user,
        name="From the library",
        prompt="a lighthouse",
        storage_key="library/lighthouse.png",
    )

    def image(
        name: str, shot: int, iteration: int, variant: int, *, status: str = "COMPLETE", **more: Any
    ) -> int:
        values: dict[str, Any] = {
            "iteration_prompt": "a lighthouse at dusk",
            "model": "black-forest-labs/flux-schnell",
            "metadata": {"model": "black-forest-labs/flux-schnell", "seed": variant},
            "is_favorite": False,
            "imported": False,
            "copy_attempts": 0,
            "failed_tries": 0,
            "resubmissions": 0,
            **more,
        }
        ids[name] = insert(
            "shot_images",
            shot_id=shot,
            iteration_number=iteration,
            variant_number=variant,
            status=status,
            **values,
        )
        return ids[name]

    image("a", first, 0, 0, storage_key="images/1/a.png")
    image("b", first, 0, 1, storage_key="images/1/b.jpg")
    image("failed", first, 0, 2, status="FAILED")
    image("running", first, 0, 3, status="PROCESSING")
    image(
        "c",
        first,
        1,
        0,
        storage_key="images/1/c.png",
        parent_image_id=ids["b"],
        iteration_prompt="the same lighthouse in a storm",
        model="black-forest-labs/flux-dev",
    )
    image(
        "g",
        first,
        2,
        0,
        storage_key="images/1/g.webp",
        parent_image_id=ids["c"],
        iteration_prompt="a lighthouse in a storm at night",
    )
    image(
        "imported",
        first,
        3,
        0,
        storage_key="images/1/imported.gif",
        imported=True,
        image_url="https://example.com/x.gif",
        model="camera",
        metadata={"model": "camera", "iso": 400},
    )
    image("copying", first, 3, 1, imported=True, image_url="https://example.com/y.gif")
    image(
        "added",
        first,
        4,
        0,
        storage_key="library/lighthouse.png",
        source_asset_id=ids["library"],
        imported=True,
        iteration_prompt="a lighthouse",
    )
    image(
        "d",
        first,
        5,
        0,
        storage_key="images/1/d.png",
        parent_image_id=ids["added"],
        iteration_prompt="a lighthouse at dawn",
    )
    image("m", second, 0, 0, storage_key="images/2/m.png", iteration_prompt="master prompt")

    def selection(shot: int, master: int, **more: Any) -> int:
        return insert(
            "storyboard_selections",
            project_id=project,
            shot_id=shot,
            selected_image_id=master,
            copy_attempts=0,
            failed_tries=0,
            resubmissions=0,
            **more,
        )

    selection(first, ids["a"], animation_status="FAILED", error="no")
    ids["clip"] = selection(
        second,
        ids["m"],
        animation_status="COMPLETE",
        video_storage_key="videos/1/clip.mp4",
        model="kwaivgi/kling-v2.1",
        animation_metadata={"model": "kwaivgi/kling-v2.1", "duration": 5},
    )
    return ids


def _assets(connection: Connection) -> dict[str, dict[str, Any]]:
    """Every asset by the seed name of its source (an image's, "clip", or "library")."""
    rows = connection.execute(text("SELECT * FROM assets")).mappings().all()
    return {f"{row['id']}": dict(row) for row in rows}


async def _upgrade_seeded(url: str) -> tuple[Database, dict[str, int]]:
    db = Database(url)
    async with db.schema_change() as connection:
        await connection.run_sync(_to("0010"))
        seeded = await connection.run_sync(_seed)
    # To the head, not just 0011: later revisions add columns the models (and the
    # second upgrade of the round trip below) have.
    await migrations.upgrade_to_head(db)
    return db, seeded


def _by_source(
    rows: dict[str, dict[str, Any]], seeded: dict[str, int]
) -> dict[str, dict[str, Any]]:
    names = {seeded[n]: n for n in seeded if n in IMAGE_NAMES}  # ids of other tables collide
    found: dict[str, dict[str, Any]] = {}
    for row in rows.values():
        if row["shot_image_id"] is not None:
            key = names[row["shot_image_id"]]
        elif row["selection_id"] is not None:
            key = "clip"
        else:
            key = "library"
        assert key not in found, f"two assets for {key}"
        found[key] = row
    return found


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def test_0011_makes_the_assets_of_stored_images_and_clips_with_lineage(
    empty_database_url: str,
) -> None:
    db, seeded = await _upgrade_seeded(empty_database_url)
    try:
        async with db.engine.connect() as connection:
            assets = _by_source(await connection.run_sync(_assets), seeded)
        # Not: a FAILED or PROCESSING image, an import whose copy has not landed, an image
        # added from the library (it has its asset), a failed animation.
        assert set(assets) == {"library", "a", "b", "c", "g", "imported", "d", "m", "clip"}
        project, team, ann = seeded["project"], seeded["team"], seeded["ann"]
        for key, asset in assets.items():
            if key == "library":
                continue
            assert (asset["team_id"], asset["creator_id"], asset["project_id"]) == (
                team,
                ann,
                project,
            )
            assert asset["status"] == "READY"
            assert asset["share_level"] == "TEAM"
            assert _json(asset["tags"]) == []
            assert asset["thumbnail_key"] is None  # made later, from the files
        a, b, c, g = assets["a"], assets["b"], assets["c"], assets["g"]
        assert a["name"] == "Night Market · Scene 1 · Shot 1 · Iteration 0 · Variant 0"
        assert c["name"] == "Night Market · Scene 1 · Shot 1 · Iteration 1 · Variant 0"
        assert assets["m"]["name"] == "Night Market · Scene 1 · Shot 2 · Iteration 0 · Variant 0"
        assert assets["clip"]["name"] == "Night Market · Scene 1 · Shot 2 · Animation"
        assert (a["kind"], a["mime_type"], a["storage_key"]) == (
            "IMAGE",
            "image/png",
            "images/1/a.png",
        )
        assert b["mime_type"] == "image/jpeg"
        assert g["mime_type"] == "image/webp"
        assert assets["imported"]["mime_type"] == "image/gif"
        assert a["prompt"] == "a lighthouse at dusk"
        assert a["model"] == "black-forest-labs/flux-schnell"
        assert _json(a["generation_params"]) == {
            "model": "black-forest-labs/flux-schnell",
            "seed": 0,
        }
        assert assets["imported"]["model"] == "camera"
        assert assets["imported"]["generation_params"] is None
        for root in (a, b, assets["imported"], assets["m"]):
            assert (root["evolution_type"], root["parent_id"], root["root_id"]) == (
                "ORIGINAL",
                None,
                None,
            )
            assert root["version"] == 1
            assert root["prompt_delta"] is None
        assert (c["evolution_type"], c["parent_id"], c["root_id"], c["version"]) == (
            "EVOLVE",
            b["id"],
            b["id"],
            2,
        )
        assert _json(c["prompt_delta"]) == {
            "added": ["the", "same", "in", "storm"],
            "removed": ["at", "dusk"],
        }
        assert (g["evolution_type"], g["parent_id"], g["root_id"], g["version"]) == (
            "EVOLVE",
            c["id"],
            b["id"],
            3,
        )
        assert _json(g["prompt_delta"]) == {"added": ["at", "night"], "removed": ["the", "same"]}
        d, library = assets["d"], assets["library"]
        assert (d["parent_id"], d["root_id"], d["version"], d["branch_name"]) == (
            library["id"],
            library["id"],
            3,
            "coast",
        )
        assert _json(d["prompt_delta"]) == {"added": ["at", "dawn"], "removed": []}
        clip, master = assets["clip"], assets["m"]
        assert (clip["kind"], clip["mime_type"], clip["selection_id"]) == (
            "VIDEO",
            "video/mp4",
            seeded["clip"],
        )
        assert clip["prompt"] == "A tram at night"  # the shot's description
        assert clip["model"] == "kwaivgi/kling-v2.1"
        assert _json(clip["generation_params"])["duration"] == 5
        assert (clip["evolution_type"], clip["parent_id"], clip["root_id"], clip["version"]) == (
            "ANIMATE",
            master["id"],
            master["id"],
            2,
        )
        assert _json(clip["prompt_delta"]) == {
            "added": ["a", "tram", "at", "night"],
            "removed": ["master", "prompt"],
        }

        # Again (down, then up): nothing is made twice, nothing is lost.
        async with db.schema_change() as connection:
            await connection.run_sync(_to("0010", "downgrade"))
        await migrations.upgrade_to_head(db)
        async with db.engine.connect() as connection:
            again = _by_source(await connection.run_sync(_assets), seeded)
        assert again == assets
    finally:
        await db.dispose()


def png(size: tuple[int, int], colour: tuple[int, int, int] = (200, 40, 90)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def mp4(tmp_path: Path, *, size: str = "160x90", rate: int = 12, seconds: int = 2) -> bytes:
    target = tmp_path / "clip.mp4"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            f"testsrc=size={size}:rate={rate}",
            "-t",
            str(seconds),
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-y",
            str(target),
        ],
        check=True,
        capture_output=True,
    )
    return target.read_bytes()


async def test_fill_missing_makes_thumbnails_and_measurements_once(
    empty_database_url: str, tmp_path: Path
) -> None:
    db, seeded = await _upgrade_seeded(empty_database_url)
    storage = LocalStorage(tmp_path / "media")
    files = {
        "library/lighthouse.png": png((64, 64)),
        "images/1/a.png": png((1024, 576)),
        "images/1/b.jpg": b"",
        "images/1/c.png": png((600, 800)),
        "images/1/imported.gif": b"GIF89a, but broken",
        "images/1/d.png": png((10, 5)),
        "images/2/m.png": png((640, 360)),
        "videos/1/clip.mp4": mp4(tmp_path),
    }
    for key, data in files.items():
        if key == "images/1/b.jpg":
            continue  # its file is gone
        await storage.put(key, data, content_type="application/octet-stream")
    try:
        report = await fill_missing(db, storage, batch=3)
        # g's file was never written either: b and g are missing, the broken GIF incomplete.
        assert (report.seen, report.completed, report.incomplete, report.missing) == (9, 6, 1, 2)
        async with db.engine.connect() as connection:
            assets = _by_source(await connection.run_sync(_assets), seeded)
        a = assets["a"]
        assert (a["width"], a["height"], a["file_size"]) == (
            1024,
            576,
            len(files["images/1/a.png"]),
        )
        thumbnail = b"".join([c async for c in storage.read(a["thumbnail_key"])])
        small = Image.open(io.BytesIO(thumbnail))
        assert (small.format, small.size) == ("WEBP", (320, 180))
        assert a["thumbnail_key"].startswith("thumbnails/images/1/a-")
        assert (assets["c"]["width"], assets["c"]["height"]) == (600, 800)
        assert (assets["library"]["width"], assets["library"]["height"]) == (64, 64)
        clip = assets["clip"]
        assert (clip["width"], clip["height"], clip["duration"], clip["fps"]) == (
            160,
            90,
            2.0,
            12.0,
        )
        poster = b"".join([c async for c in storage.read(clip["thumbnail_key"])])
        assert Image.open(io.BytesIO(poster)).size == (160, 90)
        broken = assets["imported"]
        assert broken["file_size"] == len(files["images/1/imported.gif"])
        assert (broken["thumbnail_key"], broken["width"]) == (None, None)
        assert (assets["b"]["thumbnail_key"], assets["b"]["file_size"]) == (None, None)

        # Idempotent: what is complete is never read again; only the rest is tried again.
        thumbnails_before = sorted(p.name for p in (tmp_path / "media" / "thumbnails").rglob("*"))
        again = await fill_missing(db, storage)
        assert (again.seen, again.completed, again.incomplete, again.missing) == (3, 0, 1, 2)
        thumbnails_after = sorted(p.name for p in (tmp_path / "media" / "thumbnails").rglob("*"))
        assert thumbnails_after == thumbnails_before
        async with db.engine.connect() as connection:
            assert _by_source(await connection.run_sync(_assets), seeded)["a"] == a

        limited = await fill_missing(db, storage, limit=1)
        assert limited.seen == 1
    finally:
        await db.dispose()


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No studio setting in this process's environment: only the data dir, under tmp_path."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def _add_asset(database: Path, key: str, *, kind: str = "IMAGE") -> int:
    """An asset whose file is at `key` and that has no thumbnail nor measurements."""
    now = datetime.now(UTC).isoformat(sep=" ")
    with sqlite3.connect(database) as connection:
        user = connection.execute(
            "INSERT INTO users (email, name, password_hash, created_at, updated_at) "
            "VALUES (?, 'Ann', 'x', ?, ?)",
            (f"ann-{time.monotonic_ns()}@example.com", now, now),
        ).lastrowid
        team = connection.execute(
            "INSERT INTO teams (name, is_personal, created_at, updated_at) VALUES ('Ann', 1, ?, ?)",
            (now, now),
        ).lastrowid
        values = {
            **ASSET_DEFAULTS,
            "kind": kind,
            "tags": "[]",
            "team_id": team,
            "creator_id": user,
            "name": "Lantern",
            "storage_key": key,
            "created_at": now,
            "updated_at": now,
        }
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        asset = connection.execute(
            f"INSERT INTO assets ({columns}) VALUES ({marks})",  # noqa: S608 - fixed names
            list(values.values()),
        ).lastrowid
    assert asset is not None
    return asset


def _row(database: Path, asset: int) -> dict[str, Any]:
    with sqlite3.connect(database) as connection:
        connection.row_factory = sqlite3.Row
        found = connection.execute("SELECT * FROM assets WHERE id = ?", (asset,)).fetchone()
    return dict(found)


def test_studio_thumbnails_fills_what_is_missing_and_says_so(
    environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["migrate"])
    media = environment / "media" / "library"
    media.mkdir(parents=True)
    (media / "lantern.png").write_bytes(png((400, 200)))
    asset = _add_asset(environment / "studio.db", "library/lantern.png")
    capsys.readouterr()

    main(["thumbnails"])
    out, _ = capsys.readouterr()
    assert out == "1 assets completed, 0 still incomplete, 0 without their file (1 looked at).\n"
    row = _row(environment / "studio.db", asset)
    assert (row["width"], row["height"]) == (400, 200)
    assert (environment / "media" / row["thumbnail_key"]).is_file()

    main(["thumbnails"])
    out, _ = capsys.readouterr()
    assert out == "0 assets completed, 0 still incomplete, 0 without their file (0 looked at).\n"


def test_a_server_fills_missing_thumbnails_in_the_background_at_start_up(
    tmp_path: Path,
) -> None:
    database = tmp_path / "studio.db"
    db_url = f"sqlite+aiosqlite:///{database}"

    async def migrate() -> None:
        made = Database(db_url)
        try:
            await migrations.upgrade_to_head(made)
        finally:
            await made.dispose()

    asyncio.run(migrate())
    asset = _add_asset(database, "library/lantern.png")
    server = media_server(
        tmp_path, "library-thumbnails", {"library/lantern.png": png((90, 160))}, secret_key="s" * 40
    )
    with server:
        deadline = time.monotonic() + 30
        while _row(database, asset)["thumbnail_key"] is None:
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.1)
    row = _row(database, asset)
    assert (row["width"], row["height"]) == (90, 160)
    thumbnail = Image.open(tmp_path / "media" / row["thumbnail_key"])
    assert (thumbnail.format, thumbnail.size) == ("WEBP", (90, 160))  # never enlarged
