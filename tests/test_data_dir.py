"""The embedded default keeps its data to its user: STUDIO_DATA_DIR is 0700, and the
SQLite database (with its journal files), the generated secret key and media are
0600, whatever umask `studio` was started with; an older, readable install is
narrowed at the next start."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import StudioServer, run_studio, studio_env

pytestmark = pytest.mark.e2e


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Run `studio` as a user whose umask leaves new files readable by everyone."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("open_umask")
def test_the_embedded_data_directory_is_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = studio_env(STUDIO_DATA_DIR=str(data))
    migrated = run_studio(["migrate"], env=env, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert mode(data) == 0o700
    assert mode(data / "studio.db") == 0o600

    with StudioServer(env=env, cwd=tmp_path, name="private-data"):
        created = sorted(path for path in data.rglob("*") if path.is_file())
        assert data / "studio.db" in created
        assert data / "secret_key" in created
        for path in created:
            assert mode(path) & 0o077 == 0, (path, oct(mode(path)))
        for path in (p for p in data.rglob("*") if p.is_dir()):
            assert mode(path) & 0o077 == 0, (path, oct(mode(path)))


@pytest.mark.usefixtures("open_umask")
def test_an_older_readable_install_is_narrowed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = studio_env(STUDIO_DATA_DIR=str(data))
    assert run_studio(["migrate"], env=env, cwd=tmp_path).returncode == 0
    data.chmod(0o755)
    (data / "studio.db").chmod(0o644)
    migrated = run_studio(["migrate"], env=env, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert mode(data) == 0o700
    assert mode(data / "studio.db") == 0o600


@pytest.mark.usefixtures("open_umask")
def test_a_read_only_install_stays_read_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = studio_env(STUDIO_DATA_DIR=str(data))
    assert run_studio(["migrate"], env=env, cwd=tmp_path).returncode == 0
    (data / "studio.db").chmod(0o444)
    data.chmod(0o555)
    try:
        run_studio(["migrate"], env=env, cwd=tmp_path)
        # Group and other bits go; the owner's write bits are not added back.
        assert mode(data) == 0o500
        assert mode(data / "studio.db") == 0o400
    finally:
        data.chmod(0o700)


@pytest.mark.usefixtures("open_umask")
def test_a_database_that_cannot_be_narrowed_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = studio_env(STUDIO_DATA_DIR=str(data))
    assert run_studio(["migrate"], env=env, cwd=tmp_path).returncode == 0
    database = data / "studio.db"
    database.chmod(0o644)
    if subprocess.run(["chattr", "+i", str(database)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not permitted here")
    try:
        migrated = run_studio(["migrate"], env=env, cwd=tmp_path)
    finally:
        subprocess.run(["chattr", "-i", str(database)], check=True)
    assert migrated.returncode == 1, migrated.stderr
    assert migrated.stderr == (
        f"studio: cannot keep the data directory private: {database}: Operation not "
        "permitted. It must be this user's own: check STUDIO_DATA_DIR and its permissions.\n"
    )
