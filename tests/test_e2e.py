"""End-to-end tests: real `studio` processes, spoken to over HTTP on 127.0.0.1.

Servers are started by fixtures (see `tests/servers.py`) and always stopped in
their teardown. Servers whose state is safe to share are module-scoped; those
that a test breaks on purpose belong to that test alone.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from services.database import scratch_postgres_database
from tests.conftest import ADMIN_URL
from tests.servers import StudioServer, free_port, run_studio, studio_env, studio_executable

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
SECRET_KEY = secrets.token_urlsafe(48)
PASSWORD = "correct horse battery"
MASKED = "Something went wrong on our side; it has been logged."
MAX_BODY = 2 * 1024 * 1024


# -- a small GraphQL client ------------------------------------------------------------


@dataclass
class Api:
    """GraphQL over HTTP against one server."""

    http: httpx.Client

    def post(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )

    def execute(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> dict[str, Any]:
        """The JSON result of an operation that got an HTTP 200."""
        response = self.post(query, variables, token=token)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def data(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> dict[str, Any]:
        """The data of an operation that must succeed without top-level errors."""
        result = self.execute(query, variables, token=token)
        assert "errors" not in result, result["errors"]
        data: dict[str, Any] = result["data"]
        return data

    def mutate(self, name: str, input: dict[str, Any], selection: str, *, token: str | None) -> Any:
        """The payload of `name(input:)`, which must have no userErrors."""
        input_type = name[0].upper() + name[1:] + "Input"
        query = (
            f"mutation($input: {input_type}!) {{ {name}(input: $input) "
            f"{{ {selection} userErrors {{ code field message }} }} }}"
        )
        payload = self.data(query, {"input": input}, token=token)[name]
        assert payload["userErrors"] == [], payload["userErrors"]
        return payload

    def sign_up(self, name: str = "Ann") -> str:
        email = f"{name.lower()}-{secrets.token_hex(4)}@example.com"
        payload = self.mutate(
            "signUp",
            {"email": email, "password": PASSWORD, "name": name},
            "token user { id email }",
            token=None,
        )
        assert payload["user"]["email"] == email
        token: str = payload["token"]
        return token


def http_client(server: StudioServer) -> httpx.Client:
    # trust_env=False: never route 127.0.0.1 through a proxy from the environment.
    return httpx.Client(base_url=server.base_url, timeout=30.0, trust_env=False)


@pytest.fixture
def api(engine_server: StudioServer) -> Iterator[Api]:
    with http_client(engine_server) as http:
        yield Api(http)


PROJECT_QUERY = """
query($id: ID!) {
  project(id: $id) {
    id title status
    scenes { title shots { shotNumber selectedImage { id } images { id status } } }
    progress {
      totalScenes totalShots shotsWithSelections selectionProgress isSelectionComplete
    }
  }
}
"""


def storyboard_workflow(api: Api, token: str) -> str:
    """A project taken to STORYBOARD_FINAL over HTTP: 1 scene, 2 shots, 6 images each."""
    project = api.mutate(
        "createProject",
        {"title": "Night Market", "prompt": "A rainy night market"},
        "project { id title status }",
        token=token,
    )["project"]
    assert project["status"] == "PROMPT_PLANNING"
    project_id: str = project["id"]

    scene = api.mutate(
        "createScene",
        {
            "projectId": project_id,
            "title": "Arrival",
            "shots": [{"description": f"Shot {n}", "initialPrompt": f"prompt {n}"} for n in (1, 2)],
        },
        "scene { id sceneNumber shots { id shotNumber } }",
        token=token,
    )["scene"]
    assert scene["sceneNumber"] == 1
    assert [shot["shotNumber"] for shot in scene["shots"]] == [1, 2]

    for shot in scene["shots"]:
        images = [
            {
                "variantNumber": n,
                "status": "COMPLETE",
                "imageUrl": f"https://images.example.com/{secrets.token_hex(4)}-{n}.png",
                "metadata": {"seed": 1000 + n},
            }
            for n in range(6)
        ]
        batch = api.mutate(
            "addShotImages",
            {"shotId": shot["id"], "iterationPrompt": "neon reflections", "images": images},
            "iteration { iterationNumber status } images { id variantNumber status }",
            token=token,
        )
        assert batch["iteration"] == {"iterationNumber": 0, "status": "COMPLETE"}
        assert [image["variantNumber"] for image in batch["images"]] == [0, 1, 2, 3, 4, 5]
        assert {image["status"] for image in batch["images"]} == {"COMPLETE"}
        chosen = batch["images"][2]["id"]
        selection = api.mutate(
            "selectMasterShot",
            {"shotId": shot["id"], "imageId": chosen},
            "selection { shot { id } selectedImage { id } }",
            token=token,
        )["selection"]
        assert selection == {"shot": {"id": shot["id"]}, "selectedImage": {"id": chosen}}

    result = api.data(PROJECT_QUERY, {"id": project_id}, token=token)["project"]
    assert result["status"] == "STORYBOARD_FINAL"
    assert result["progress"] == {
        "totalScenes": 1,
        "totalShots": 2,
        "shotsWithSelections": 2,
        "selectionProgress": 100.0,
        "isSelectionComplete": True,
    }
    shots = result["scenes"][0]["shots"]
    assert all(len(shot["images"]) == 6 for shot in shots)
    assert all(shot["selectedImage"] is not None for shot in shots)
    return project_id


def assert_refused(result: dict[str, Any], code: str = "UNAUTHENTICATED") -> None:
    errors = result.get("errors")
    assert errors, result
    assert [error.get("extensions", {}).get("code") for error in errors] == [code]


# -- PostgreSQL databases of a single test ------------------------------------------------


@pytest.fixture
async def fresh_postgresql() -> AsyncIterator[str]:
    """A brand-new, empty (un-migrated) PostgreSQL database, dropped afterwards."""
    async with scratch_postgres_database(ADMIN_URL, prefix="studio_e2e") as url:
        yield url


async def drop_database(url: str) -> None:
    """Drop a database from under whoever is using it."""
    target, admin_url = make_url(url), make_url(ADMIN_URL)
    admin = await asyncpg.connect(
        host=admin_url.host,
        port=admin_url.port or 5432,
        user=admin_url.username,
        password=admin_url.password,
        database=admin_url.database or "postgres",
        timeout=5,
    )
    try:
        await admin.execute(f'DROP DATABASE "{target.database}" WITH (FORCE)')
    finally:
        await admin.close()


def migrate(database_url: str, cwd: Path) -> str:
    """Run `studio migrate` as a user would; return its stdout."""
    result = run_studio(
        ["migrate"], env=studio_env(DATABASE_URL=database_url, SECRET_KEY=SECRET_KEY), cwd=cwd
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


# -- servers shared by a module -------------------------------------------------------------


@pytest.fixture(scope="module")
def engine_server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StudioServer]:
    """A server on each engine (migrated first on PostgreSQL, as a user does)."""
    cwd = tmp_path_factory.mktemp("engine")
    if not database_url.startswith("sqlite"):
        migrate(database_url, cwd)
    server = StudioServer(
        env=studio_env(DATABASE_URL=database_url, SECRET_KEY=SECRET_KEY), cwd=cwd, name="engine"
    )
    with server:
        yield server


# -- the embedded default -------------------------------------------------------------------


def test_embedded_default_needs_no_configuration_and_keeps_its_data(tmp_path: Path) -> None:
    cwd = tmp_path / "empty"
    cwd.mkdir()
    server = StudioServer(env=studio_env(), cwd=cwd, log_dir=tmp_path, name="embedded")
    try:
        server.start()
        data_dir = cwd / ".studio"
        output = server.output()
        assert str(data_dir.resolve() / "studio.db") in output, output
        assert f"{server.base_url}/graphql" in output, output
        assert (data_dir / "studio.db").is_file()
        key_file = data_dir / "secret_key"
        key = key_file.read_text()
        assert len(key.strip()) >= 32

        with http_client(server) as http:
            assert http.get("/healthz").status_code == 200
            ready = http.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["checks"]["database"] == "ok"

            home = http.get("/")
            assert home.status_code == 200
            assert home.headers["content-type"].startswith("text/html")
            assert "Storyboard Studio" in home.text

            ide = http.get("/graphql", headers={"Accept": "text/html"})
            assert ide.status_code == 200
            assert ide.headers["content-type"].startswith("text/html")
            assert "graphiql" in ide.text.lower()

            api = Api(http)
            token = api.sign_up()
            project_id = storyboard_workflow(api, token)

        # A graceful stop: uvicorn finishes the lifespan, then re-raises SIGTERM.
        assert server.stop() in (0, -signal.SIGTERM), server.output()
        assert "Application shutdown complete" in server.output()
        server.start()
        assert key_file.read_text() == key, "the generated secret key was replaced"
        with http_client(server) as http:
            api = Api(http)
            project = api.data(PROJECT_QUERY, {"id": project_id}, token=token)["project"]
            assert project is not None, "the token or the data did not survive a restart"
            assert project["id"] == project_id
            assert project["status"] == "STORYBOARD_FINAL"
            assert project["progress"]["shotsWithSelections"] == 2
            viewer = api.data("{ viewer { id } }", token=token)["viewer"]
            assert viewer is not None
    finally:
        server.stop()


# -- both engines ---------------------------------------------------------------------------


def test_workflow_over_http(api: Api) -> None:
    token = api.sign_up()
    project_id = storyboard_workflow(api, token)
    listed = api.data("{ projects { totalCount nodes { id } } }", token=token)["projects"]
    assert listed["totalCount"] == 1
    assert listed["nodes"] == [{"id": project_id}]


def test_operations_need_a_valid_token(api: Api) -> None:
    assert_refused(api.execute("{ viewer { id } }"))
    assert_refused(api.execute("{ projects { totalCount } }"))
    # A token that signs no one in says so: sign in again.
    assert_refused(api.execute("{ viewer { id } }", token="not-a-real-token"), "TOKEN_INVALID")
    assert_refused(
        api.execute(
            'mutation { createProject(input: {title: "x"}) { project { id } } }',
            token=secrets.token_urlsafe(32),
        ),
        "TOKEN_INVALID",
    )

    # logIn hands out a token that works.
    email = f"bob-{secrets.token_hex(4)}@example.com"
    api.mutate("signUp", {"email": email, "password": PASSWORD, "name": "Bob"}, "token", token=None)
    token = api.mutate("logIn", {"email": email, "password": PASSWORD}, "token", token=None)[
        "token"
    ]
    assert api.data("{ viewer { email } }", token=token)["viewer"] == {"email": email}


def test_another_users_project_is_null(api: Api) -> None:
    ann, bob = api.sign_up("Ann"), api.sign_up("Bob")
    project_id = api.mutate("createProject", {"title": "Ann's"}, "project { id }", token=ann)[
        "project"
    ]["id"]
    assert api.data(PROJECT_QUERY, {"id": project_id}, token=ann)["project"]["id"] == project_id
    assert api.data(PROJECT_QUERY, {"id": project_id}, token=bob) == {"project": None}
    assert api.data("{ projects { totalCount } }", token=bob)["projects"]["totalCount"] == 0


# -- guard rails ----------------------------------------------------------------------------


def nested_query(depth: int) -> str:
    """`{ viewer { teams { members { user { teams ... } } } } }` with its leaf at `depth`.

    Depth is counted as the depth limiter does: the root field (`viewer`) is at 0.
    """
    cycle = ["teams", "members", "user"]
    fields = ["viewer", *(cycle[n % 3] for n in range(depth - 1))]
    leaf = {"viewer": "id", "teams": "id", "members": "role", "user": "id"}[fields[-1]]
    return "{ " + " { ".join(fields) + " { " + leaf + " }" * len(fields) + " }"


def aliased_query(count: int) -> str:
    return "{ " + " ".join(f"a{n}: viewer {{ id }}" for n in range(count)) + " }"


def error_messages(result: dict[str, Any]) -> str:
    return " ".join(error["message"] for error in result.get("errors", []))


def test_query_depth_is_limited(api: Api) -> None:
    token = api.sign_up()
    allowed = api.execute(nested_query(12), token=token)
    assert "errors" not in allowed, allowed
    refused = api.execute(nested_query(13), token=token)
    assert refused.get("data") is None, refused
    assert "depth" in error_messages(refused).lower(), refused


def test_aliases_are_limited(api: Api) -> None:
    token = api.sign_up()
    allowed = api.execute(aliased_query(30), token=token)
    assert "errors" not in allowed, allowed
    assert len(allowed["data"]) == 30
    refused = api.execute(aliased_query(31), token=token)
    assert refused.get("data") is None, refused
    assert "alias" in error_messages(refused).lower(), refused


def test_tokens_are_limited(api: Api) -> None:
    token = api.sign_up()
    query = "{ viewer { " + "id " * 4100 + "} }"
    refused = api.execute(query, token=token)
    assert refused.get("data") is None, refused
    assert "token" in error_messages(refused).lower(), refused


def test_oversized_bodies_are_refused(api: Api) -> None:
    padding = "x" * (MAX_BODY + 1)
    body = json.dumps({"query": "{ __typename }", "variables": {"padding": padding}}).encode()
    declared = api.http.post("/graphql", content=body, headers={"Content-Type": "application/json"})
    assert declared.status_code == 413, declared.text

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    streamed = api.http.post(
        "/graphql", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413, streamed.text

    # Just under the cap is a normal request.
    small = json.dumps({"query": "{ __typename }", "variables": {"p": "x" * 1000}}).encode()
    ok = api.http.post("/graphql", content=small, headers={"Content-Type": "application/json"})
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b"[1, 2", b'{"query": 42}', b"\xff\xfe"],
    ids=["broken", "empty", "truncated", "query-not-a-string", "not-utf8"],
)
def test_malformed_bodies_are_client_errors(api: Api, body: bytes) -> None:
    response = api.http.post("/graphql", content=body, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, (response.status_code, response.text)


# -- PostgreSQL needs `studio migrate` ------------------------------------------------------


def test_postgresql_refuses_an_unmigrated_database_until_migrate(
    fresh_postgresql: str, tmp_path: Path
) -> None:
    env = studio_env(DATABASE_URL=fresh_postgresql, SECRET_KEY=SECRET_KEY)
    refused = run_studio(
        ["serve", "--host", "127.0.0.1", "--port", str(free_port())],
        env=env,
        cwd=tmp_path,
        timeout=30,
    )
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0, output
    assert "studio migrate" in output, output

    assert "is at migration" in migrate(fresh_postgresql, tmp_path)
    with (
        StudioServer(env=env, cwd=tmp_path, name="migrated") as server,
        http_client(server) as http,
    ):
        ready = http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert Api(http).sign_up()


# -- SECRET_KEY -----------------------------------------------------------------------------


def test_a_configured_server_without_a_secret_key_says_so_and_does_not_start(
    tmp_path: Path,
) -> None:
    """The CLI's side of the check (every refused key: tests/test_secrets.py)."""
    settings = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'studio.db'}"}
    result = run_studio(
        ["serve", "--port", str(free_port())], env=studio_env(**settings), cwd=tmp_path, timeout=30
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "SECRET_KEY" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "Uvicorn running" not in result.stdout + result.stderr


# -- studio schema --------------------------------------------------------------------------


def test_schema_command_prints_the_committed_schema(tmp_path: Path) -> None:
    result = run_studio(["schema"], env=studio_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    committed = (REPO / "schema.graphql").read_text()
    assert result.stdout.strip() == committed.strip()


def test_schema_command_into_a_pipe_closed_early_prints_no_traceback(tmp_path: Path) -> None:
    # As `studio schema | head -1`: the reader takes one line and goes away.
    reader_out, writer = os.pipe()
    process = subprocess.Popen(
        [str(studio_executable()), "schema"],
        env=studio_env(),
        cwd=tmp_path,
        stdout=writer,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(writer)
    with os.fdopen(reader_out) as reader:
        assert reader.readline()
    _, stderr = process.communicate(timeout=60)
    assert "Traceback" not in stderr, stderr
    assert process.returncode == 1


# -- faults are masked for clients and logged in full ----------------------------------------


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[tuple[StudioServer, Path]]:
    """A server of this test alone on its own SQLite file, which the test may break."""
    path = tmp_path / "faults.db"
    env = studio_env(DATABASE_URL=f"sqlite+aiosqlite:///{path}", SECRET_KEY=SECRET_KEY)
    with StudioServer(env=env, cwd=tmp_path, name="faults") as server:
        yield server, path


def test_faults_are_masked_for_clients_and_logged_in_full(
    sqlite_server: tuple[StudioServer, Path],
) -> None:
    server, path = sqlite_server
    with http_client(server) as http:
        api = Api(http)
        token = api.sign_up()
        project_id = api.mutate(
            "createProject", {"title": "Doomed"}, "project { id }", token=token
        )["project"]["id"]
        shot_id = api.mutate(
            "createScene",
            {"projectId": project_id, "title": "One", "shots": [{"description": "only"}]},
            "scene { shots { id } }",
            token=token,
        )["scene"]["shots"][0]["id"]
        api.mutate(
            "addShotImages",
            {
                "shotId": shot_id,
                "iterationPrompt": "p",
                "images": [
                    {"variantNumber": 0, "status": "COMPLETE", "imageUrl": "https://x.test/0.png"}
                ],
            },
            "images { id }",
            token=token,
        )
        query = "query($id: ID!) { project(id: $id) { scenes { shots { images { id } } } } }"
        assert api.data(query, {"id": project_id}, token=token)["project"] is not None

        with sqlite3.connect(path) as connection:
            connection.execute("PRAGMA foreign_keys = OFF")
            connection.execute("DROP TABLE shot_images")
        connection.close()

        response = api.post(query, {"id": project_id}, token=token)

    assert response.status_code == 200, response.text
    result = response.json()
    assert [error["message"] for error in result["errors"]] == [MASKED], result
    text = response.text.lower()
    for leak in ("shot_images", "select", "sqlite", "no such table", "traceback"):
        assert leak not in text, f"{leak!r} leaked to the client: {response.text}"

    log = server.output()
    assert "Traceback" in log, log
    assert "no such table: shot_images" in log, log
    assert "studio.graphql" in log, log


# -- readiness follows the database ---------------------------------------------------------


@pytest.fixture
def fresh_postgresql_server(fresh_postgresql: str, tmp_path: Path) -> Iterator[StudioServer]:
    migrate(fresh_postgresql, tmp_path)
    env = studio_env(DATABASE_URL=fresh_postgresql, SECRET_KEY=SECRET_KEY)
    with StudioServer(env=env, cwd=tmp_path, name="doomed-pg") as server:
        yield server


async def test_readyz_reports_a_lost_database_while_healthz_stays_up(
    fresh_postgresql: str, fresh_postgresql_server: StudioServer
) -> None:
    async with httpx.AsyncClient(
        base_url=fresh_postgresql_server.base_url, timeout=30.0, trust_env=False
    ) as http:
        before = await http.get("/readyz")
        assert before.status_code == 200, before.text
        assert before.json()["checks"] == {"database": "ok", "eventBus": "ok"}

        await drop_database(fresh_postgresql)

        after = await http.get("/readyz")
        assert after.status_code == 503, after.text
        assert after.json() == {
            "status": "unavailable",
            "checks": {"database": "unavailable", "eventBus": "ok"},
        }
        health = await http.get("/healthz")
        assert health.status_code == 200
        assert health.json() == {"status": "ok"}
