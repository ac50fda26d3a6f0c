"""How the server spends its time per request: start-up objects frozen out of the
garbage collector's sight, no round trip to the database a read does not need, one
connection per operation, and several worker processes."""

from __future__ import annotations

import gc
from pathlib import Path

from api.app import create_app
from api.settings import Settings


async def test_the_started_app_keeps_its_start_up_objects_out_of_the_collectors_sight(
    tmp_path: Path,
) -> None:
    settings = Settings(_env_file=None, studio_data_dir=tmp_path, secret_key="k" * 32)
    app = create_app(settings)
    assert gc.get_freeze_count() == 0
    async with app.router.lifespan_context(app):
        frozen = gc.get_freeze_count()
        # The schema and the modules alone are tens of thousands of objects.
        assert frozen > 10_000
    assert gc.get_freeze_count() == 0  # unfrozen at shutdown: a later app can collect them
