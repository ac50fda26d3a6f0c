"""A `studio serve` whose media directory already holds the files a test reads over `/media`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tests.servers import StudioServer, studio_env


def media_server(
    cwd: Path, name: str, files: Mapping[str, bytes], *, secret_key: str, **settings: str
) -> StudioServer:
    """`studio serve` in `cwd` on an SQLite file there, not started yet.

    `files` (storage key: bytes) are written under `cwd/media`, its `MEDIA_ROOT`;
    media links are signed with `secret_key`; `settings` are further settings.
    """
    for key, data in files.items():
        path = cwd / "media" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    env = studio_env(
        DATABASE_URL=f"sqlite+aiosqlite:///{cwd / 'studio.db'}",
        SECRET_KEY=secret_key,
        MEDIA_ROOT=str(cwd / "media"),
        **settings,
    )
    return StudioServer(env=env, cwd=cwd, name=name)
