"""Library search figures for `studio bench`: 1,000,000 assets across 100 teams on PostgreSQL.

On a scratch database (made and dropped here): the schema up to the library's
foundation (0010), then assets, users, teams, projects and shares seeded with
set-based SQL (`generate_series`, vocabularies of a few dozen words, so words,
tags and moods repeat as they do in a real library), then the remaining
migrations (which build the search column and its indexes over the seeded rows,
and are timed), then VACUUM (ANALYZE), as autovacuum would after a bulk load. It
then times, through the real schema (`schema.execute`, token check included, HTTP
not):

- `library` with text and 4 more filters (tags, moods, categories, a date range),
  first page of 24 with `totalCount` (goal: p95 <= 50 ms);
- the same sorted by RELEVANCE, a browse of a team without text (CREATED), and one
  of every team the viewer sees (no filter at all);
- `libraryFilters(teamId)` (goal: p95 <= 100 ms);

and prints EXPLAIN (ANALYZE) of the SQL each one sent, to show the indexes used.

Run alone: `python -m api.bench.library postgresql+asyncpg://postgres@127.0.0.1/postgres`.
"""

# ruff: noqa: S608  (the SQL here is built from this module's constants and integers only)
from __future__ import annotations

import asyncio
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import strawberry
from sqlalchemy import event
from sqlalchemy.engine import make_url

import migrations
from api.graphql import build_context
from api.schema import schema
from schema.context import Resources
from schema.library_search import LibraryFilterInput
from services.database import Database, scratch_postgres_database
from services.library import facets as facets_service
from services.library import search as search_service
from services.library.search import LibrarySort
from services.media.storage import MediaLinks

ASSETS = 1_000_000
TEAMS = 100
USERS_PER_TEAM = 10
PROJECTS_PER_TEAM = 20
SHARES = 20_000
SEARCH_GOAL_MS = 50.0
FACETS_GOAL_MS = 100.0
RUNS = 200

SUBJECTS = [
    "lantern",
    "dragon",
    "harbour",
    "lighthouse",
    "market",
    "samurai",
    "robot",
    "astronaut",
    "fox",
    "owl",
    "whale",
    "train",
    "bridge",
    "castle",
    "forest",
    "desert",
    "glacier",
    "volcano",
    "city",
    "alley",
    "rooftop",
    "garden",
    "temple",
    "library",
    "subway",
    "carnival",
    "orchard",
    "canyon",
    "reef",
    "village",
    "factory",
    "stadium",
    "cathedral",
    "bazaar",
    "caravan",
    "monastery",
    "observatory",
    "greenhouse",
    "shipyard",
    "waterfall",
]
SETTINGS = [
    "at night",
    "in the rain",
    "at dawn",
    "at dusk",
    "in fog",
    "under neon",
    "in snow",
    "at noon",
    "by moonlight",
    "in a storm",
    "in autumn",
    "in spring",
]
STYLES = [
    "cinematic",
    "watercolor",
    "noir",
    "anime",
    "photoreal",
    "painterly",
    "minimalist",
    "retro",
    "surreal",
    "documentary",
    "vintage",
    "pastel",
]
TAGS = [
    "night",
    "rain",
    "neon",
    "fog",
    "snow",
    "sunset",
    "sunrise",
    "crowd",
    "solitude",
    "reflection",
    "silhouette",
    "portrait",
    "landscape",
    "interior",
    "exterior",
    "aerial",
    "closeup",
    "motion",
    "stillness",
    "warm",
    "cold",
    "vibrant",
    "muted",
    "contrast",
    "symmetry",
    "texture",
    "water",
    "fire",
    "smoke",
    "light",
    "shadow",
    "street",
    "nature",
    "urban",
    "vintage",
    "futuristic",
    "character",
    "prop",
    "vehicle",
    "animal",
    "architecture",
]
CATEGORY_LIST = [
    "street",
    "nature",
    "portrait",
    "architecture",
    "action",
    "interior",
    "product",
    "fantasy",
    "scifi",
    "documentary",
    "abstract",
    "travel",
]
MOODS = [
    "calm",
    "tense",
    "joyful",
    "melancholic",
    "eerie",
    "romantic",
    "epic",
    "playful",
    "somber",
    "hopeful",
]
SCENE_TYPES = [
    "WIDE",
    "ESTABLISHING",
    "MEDIUM",
    "CLOSE_UP",
    "EXTREME_CLOSE_UP",
    "OVER_THE_SHOULDER",
    "POINT_OF_VIEW",
    "TRACKING",
    "AERIAL",
    "STATIC",
]
MODELS = [
    "black-forest-labs/flux-schnell",
    "black-forest-labs/flux-dev",
    "kwaivgi/kling-v2.1",
    "minimax/video-01",
    "wavespeedai/wan-2.1-i2v",
    "stability-ai/stable-video-diffusion",
]


def _array(words: tuple[str, ...] | list[str]) -> str:
    quoted = ",".join("'" + w.replace("'", "''") + "'" for w in words)
    return f"ARRAY[{quoted}]::text[]"


def _pick(words: tuple[str, ...] | list[str]) -> str:
    return f"({_array(words)})[1 + floor(random() * {len(words)})::int]"


def seed_statements(assets: int) -> list[str]:
    """The SQL that seeds `assets` assets (and the users, teams, projects and shares)."""
    return [
        "SELECT setseed(0.42)",
        # Rows are consistent by construction; skipping the foreign-key triggers halves the time.
        "SET session_replication_role = replica",
        f"""INSERT INTO users (id, email, name, password_hash, created_at, updated_at)
            SELECT g, 'bench-' || g || '@example.com', 'User ' || g, 'x', now(), now()
            FROM generate_series(1, {TEAMS * USERS_PER_TEAM}) g""",
        f"""INSERT INTO teams (id, name, is_personal, created_at, updated_at)
            SELECT g, 'Team ' || g, false, now(), now() FROM generate_series(1, {TEAMS}) g""",
        f"""INSERT INTO team_members (team_id, user_id, role, created_at)
            SELECT (g - 1) / {USERS_PER_TEAM} + 1, g,
                   CASE WHEN g % {USERS_PER_TEAM} = 1 THEN 'OWNER'
                        WHEN g % {USERS_PER_TEAM} < 6 THEN 'EDITOR' ELSE 'VIEWER' END, now()
            FROM generate_series(1, {TEAMS * USERS_PER_TEAM}) g""",
        f"""INSERT INTO projects (id, team_id, owner_id, title, workflow_version, status,
                                  created_at, updated_at)
            SELECT g, (g - 1) / {PROJECTS_PER_TEAM} + 1,
                   ((g - 1) / {PROJECTS_PER_TEAM}) * {USERS_PER_TEAM} + 1,
                   'Project ' || g, 'V2_REDESIGN', 'SHOT_ITERATION', now(), now()
            FROM generate_series(1, {TEAMS * PROJECTS_PER_TEAM}) g""",
        f"""INSERT INTO assets (id, team_id, creator_id, project_id, kind, name, description,
                prompt, model, tags, category, mood, scene_type, status, share_level,
                can_duplicate, can_remix, parent_id, root_id, version, branch_name,
                evolution_type, views, duplicate_count, remix_count, position_pinned,
                failed_tries, resubmissions, copy_attempts, duration, width, height, mime_type,
                created_at, updated_at)
            SELECT g, team,
                (team - 1) * {USERS_PER_TEAM} + 1 + floor(random() * {USERS_PER_TEAM})::int,
                CASE WHEN random() < 0.8
                     THEN (team - 1) * {PROJECTS_PER_TEAM} + 1
                          + floor(random() * {PROJECTS_PER_TEAM})::int END,
                CASE WHEN video THEN 'VIDEO' ELSE 'IMAGE' END,
                initcap(subject) || ' ' || setting || ' #' || g,
                'A ' || style || ' shot of a ' || subject || ' ' || setting || '.',
                style || ' ' || subject || ' ' || setting || ', ' || {_pick(SUBJECTS)}
                    || ' in the background, ' || {_pick(STYLES)} || ' lighting',
                {_pick(MODELS)},
                jsonb_build_array({_pick(TAGS[:14])}, {_pick(TAGS[14:28])}, {_pick(TAGS[28:])}),
                {_pick(CATEGORY_LIST)}, {_pick(MOODS)}, {_pick(SCENE_TYPES)}, 'READY',
                CASE WHEN level < 0.7 THEN 'TEAM' WHEN level < 0.9 THEN 'PRIVATE' ELSE 'PUBLIC' END,
                true, true,
                CASE WHEN g > {TEAMS} AND random() < 0.1 THEN g - {TEAMS} END, NULL, 1, 'main',
                'ORIGINAL', floor(power(random(), 3) * 1000)::int, 0, 0, false, 0, 0, 0,
                CASE WHEN video THEN round((2 + random() * 8)::numeric, 1)::float END,
                1344, 768, CASE WHEN video THEN 'video/mp4' ELSE 'image/png' END,
                now() - ({assets} - g) * interval '30 seconds',
                now() - ({assets} - g) * interval '30 seconds'
            FROM (
                SELECT g, (g - 1) % {TEAMS} + 1 AS team, random() < 0.25 AS video,
                       random() AS level, {_pick(SUBJECTS)} AS subject,
                       {_pick(SETTINGS)} AS setting, {_pick(STYLES)} AS style
                FROM generate_series(1, {assets}) g
            ) seeded""",
        f"""INSERT INTO asset_shares (asset_id, user_id, permission, created_at, updated_at,
                                      expires_at)
            SELECT DISTINCT ON (asset_id, user_id) asset_id, user_id, 'VIEW', now(), now(),
                   CASE WHEN random() < 0.2 THEN now() - interval '1 day' END
            FROM (SELECT 1 + floor(random() * {assets})::int AS asset_id,
                         1 + floor(random() * {TEAMS * USERS_PER_TEAM})::int AS user_id
                  FROM generate_series(1, {SHARES})) pairs""",
        "SET session_replication_role = origin",
        "SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT max(id) FROM users))",
        "SELECT setval(pg_get_serial_sequence('teams', 'id'), (SELECT max(id) FROM teams))",
        "SELECT setval(pg_get_serial_sequence('projects', 'id'), (SELECT max(id) FROM projects))",
        "SELECT setval(pg_get_serial_sequence('assets', 'id'), (SELECT max(id) FROM assets))",
    ]


SEARCH = """query($f: LibraryFilter, $s: LibrarySort) {
  library(filter: $f, sort: $s, first: 24) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { id name kind tags category mood duration views createdAt } } } }"""

FACETS = """query($t: ID!) { libraryFilters(teamId: $t) {
  totalCount tags { value count } categories { value count }
  moods { value count } sceneTypes { value count } kinds { value count }
  models { value count } creators { value label count } projects { value label count }
  shareLevels { value count } durationRange { min max } createdRange { earliest latest } } }"""


async def _connect(url: str) -> asyncpg.Connection:
    """A raw asyncpg connection to the database of a SQLAlchemy URL (bulk loads and VACUUM
    go past the ORM); the caller closes it."""
    parsed = make_url(url)
    return await asyncpg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
    )


async def _seed(url: str, assets: int) -> float:
    connection = await _connect(url)
    start = time.perf_counter()
    try:
        async with connection.transaction():
            for statement in seed_statements(assets):
                await connection.execute(statement)
    finally:
        await connection.close()
    return time.perf_counter() - start


async def _vacuum(url: str) -> None:
    """VACUUM (ANALYZE), as autovacuum would after a bulk load: statistics for the planner,
    and the visibility map that lets index-only scans skip the heap."""
    connection = await _connect(url)
    try:
        await connection.execute("VACUUM (ANALYZE)")
    finally:
        await connection.close()


async def _viewer(db: Database, resources: Resources) -> str:
    """A signed-up user made EDITOR of teams 1..3, with shares of some of team 4's assets."""
    result = await schema.execute(
        "mutation($i: SignUpInput!) { signUp(input: $i) { token user { id } } }",
        {
            "i": {
                "email": f"viewer-{secrets.token_hex(4)}@example.com",
                "password": "bench pw 1",
                "name": "Viewer",
            }
        },
        context_value=await build_context(resources, None),
    )
    assert result.data is not None, result.errors
    token: str = result.data["signUp"]["token"]
    async with db.engine.begin() as connection:
        user_id = (await connection.exec_driver_sql("SELECT max(id) FROM users")).scalar_one()
        for team in (1, 2, 3):
            await connection.exec_driver_sql(
                "INSERT INTO team_members (team_id, user_id, role, created_at) "
                f"VALUES ({team}, {int(user_id)}, 'EDITOR', now())"
            )
        await connection.exec_driver_sql(
            "INSERT INTO asset_shares (asset_id, user_id, permission, created_at, updated_at) "
            f"SELECT id, {int(user_id)}, 'VIEW', now(), now() FROM assets "
            "WHERE team_id = 4 AND share_level = 'PRIVATE' LIMIT 200"
        )
    return token


async def _timed(runs: int, action: Callable[[int], Awaitable[Any]]) -> list[float]:
    samples = []
    for n in range(runs):
        start = time.perf_counter()
        await action(n)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _line(name: str, samples: list[float], goal: float | None = None) -> str:
    verdict = ""
    if goal is not None:
        verdict = f"   goal <= {goal:.0f} ms: {'met' if _p(samples, 0.95) <= goal else 'MISSED'}"
    return (
        f"  {name:<46} p50 {_p(samples, 0.5):7.2f} ms   p95 {_p(samples, 0.95):7.2f} ms"
        f"   (n={len(samples)}){verdict}"
    )


def _filters(n: int) -> dict[str, Any]:
    """Text and 4 more filters, varied run by run (team, word, tags, moods, categories)."""
    team = ["VGVhbTox", "VGVhbToy", "VGVhbToz"][n % 3]  # Team:1..3
    return {
        "teamId": team,
        "text": SUBJECTS[n % len(SUBJECTS)],
        "tags": [TAGS[n % 14], TAGS[14 + n % 14]],
        "moods": [MOODS[n % 10], MOODS[(n + 3) % 10], MOODS[(n + 6) % 10]],
        "categories": CATEGORY_LIST[n % 6 : n % 6 + 6],
        "createdAfter": (datetime.now(UTC) - timedelta(days=200)).isoformat(),
    }


def _snake(variables: dict[str, Any]) -> dict[str, Any]:
    """GraphQL argument names as the input class's attribute names (createdAfter: a datetime)."""
    names = {"teamId": "team_id", "createdAfter": "created_after"}
    found = {names.get(k, k): v for k, v in variables.items()}
    found["created_after"] = datetime.fromisoformat(found["created_after"])
    found["team_id"] = strawberry.ID(found["team_id"])
    return found


async def _explain(db: Database, run: Callable[[], Awaitable[Any]], title: str) -> list[str]:
    """EXPLAIN (ANALYZE) of each statement `run` sends, but the sign-in's."""
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        await run()
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
    lines = [f"EXPLAIN (ANALYZE) of {title}:"]
    async with db.engine.connect() as connection:
        for statement, parameters in sent:
            if "FROM assets" not in statement:
                continue  # the token check, memberships, shares of the page
            plan = await connection.exec_driver_sql(
                "EXPLAIN (ANALYZE, BUFFERS OFF, COSTS OFF) " + statement, parameters
            )
            lines.append("  ---")
            lines.extend("  " + row[0] for row in plan)
    return lines


async def bench_library(url: str, assets: int = ASSETS) -> list[str]:
    """Seed, migrate, measure; the lines to print (plans included)."""
    db = Database(url, pool_size=4)
    try:
        await migrations.migrate(db, "0010")
        seed_s = await _seed(url, assets)
        start = time.perf_counter()
        await migrations.upgrade_to_head(db)
        index_s = time.perf_counter() - start
        await _vacuum(url)
        resources = Resources(db=db, media=MediaLinks(secrets.token_urlsafe(32), "http://bench"))
        token = await _viewer(db, resources)

        async def run(query: str, variables: dict[str, Any]) -> Any:
            result = await schema.execute(
                query, variables, context_value=await build_context(resources, token)
            )
            if result.errors:
                raise RuntimeError(result.errors[0].message)
            return result.data

        def search(n: int, sort: str = "CREATED") -> Awaitable[Any]:
            return run(SEARCH, {"f": _filters(n), "s": {"field": sort}})

        for n in range(20):  # warm the caches and the parser
            await search(n)
            await run(FACETS, {"t": "VGVhbTox"})
        sample = await search(0)
        searched = await _timed(RUNS, search)
        relevance = await _timed(RUNS, lambda n: search(n, "RELEVANCE"))
        browsed = await _timed(RUNS, lambda n: run(SEARCH, {"f": {"teamId": "VGVhbTox"}}))
        everywhere = await _timed(RUNS // 4, lambda n: run(SEARCH, {"f": {}}))
        teams = ["VGVhbTox", "VGVhbToy", "VGVhbToz"]
        faceted = await _timed(RUNS, lambda n: run(FACETS, {"t": teams[n % 3]}))
        actor = (await build_context(resources, token)).require_actor()

        async def search_sql(n: int) -> None:
            wanted = LibraryFilterInput(**_snake(_filters(n))).to_filter()
            async with db.session() as session:
                await search_service.search(
                    session, actor, wanted, LibrarySort(), first=24, after=None
                )

        async def facets_sql(n: int) -> None:
            async with db.session() as session:
                await facets_service.facets(session, actor, 1 + n % 3)

        searched_sql = await _timed(RUNS, search_sql)
        faceted_sql = await _timed(RUNS, facets_sql)
        load = os.getloadavg()  # other work on the machine inflates every figure above
        count = sample["library"]["totalCount"]
        lines = [
            f"  {f'seed {assets:,} assets (set-based SQL)':<46} {seed_s:7.1f} s",
            f"  {'migrations after 0010 (search column, indexes)':<46} {index_s:7.1f} s",
            _line("library: text + 4 filters, 24 + totalCount", searched, SEARCH_GOAL_MS),
            f"  {'  (first variant matched':<46} {count} assets)",
            _line("library: the same by RELEVANCE", relevance, SEARCH_GOAL_MS),
            _line("library: a team, no filter, CREATED", browsed),
            _line("library: no filter at all (every team), CREATED", everywhere),
            _line("libraryFilters(teamId), ~10,000 assets", faceted, FACETS_GOAL_MS),
            _line("  the search's service call alone (SQL)", searched_sql),
            _line("  libraryFilters' service call alone (SQL)", faceted_sql),
            f"  {'load average (1, 5, 15 min) after the runs':<46} "
            + ", ".join(f"{x:.1f}" for x in load)
            + f" on {os.cpu_count()} CPUs",
        ]
        lines += await _explain(db, lambda: search(0), "the search (text + 4 filters)")
        lines += await _explain(db, lambda: search(0, "RELEVANCE"), "the search by RELEVANCE")
        lines += await _explain(db, lambda: run(FACETS, {"t": "VGVhbTox"}), "libraryFilters")
        lines += await _explain(db, lambda: run(SEARCH, {"f": {}}), "the search of every team")
        return lines
    finally:
        await db.dispose()


async def run_all(admin_url: str | None, assets: int = ASSETS) -> list[str]:
    """The library figures, or one "not measured" line saying why."""
    name = "library search, 1,000,000 assets"
    if not admin_url:
        return [f"  {name:<46} not measured (needs --postgres ADMIN_URL)"]
    try:
        async with scratch_postgres_database(admin_url, prefix="studio_bench_library") as url:
            return await bench_library(url, assets)
    except (OSError, asyncpg.PostgresError, RuntimeError) as error:
        return [f"  {name:<46} not measured ({error})"]


if __name__ == "__main__":
    count = int(sys.argv[2]) if len(sys.argv) > 2 else ASSETS
    lines = asyncio.run(run_all(sys.argv[1] if len(sys.argv) > 1 else None, count))
    sys.stdout.write("\n".join(lines) + "\n")
    sys.exit(1 if any("not measured" in line for line in lines) else 0)
