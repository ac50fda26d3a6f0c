"""Shared by the scene iterator's browser tests: a `studio serve` whose Replicate is an
emulator of our own (so a test can make predictions slow or fail on purpose), a
project set up over the API, and the page's tiles as locators.

    with iterator_studio(tmp) as studio:
        studio.faults(failure_rate=1.0)   # every prediction made from now on fails
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Locator, Page, expect

from tests.servers import StudioServer, studio_env
from tests.web_harness import Person, graphql, mutation, sign_up

API_TOKEN = "r8_" + secrets.token_urlsafe(24)
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"iterator browser tests webhook key").decode()
LATENCY_MS = 1500
"""How long the emulator takes per prediction: long enough to see tiles in progress."""
START = 90.0
"""Seconds a server may take to start: a busy shared machine took over 30."""
LIVE = 30_000
"""How long a tile may take to reach its final state on screen (ms)."""


@dataclass
class Studio:
    """The editor's server and the emulator it generates with."""

    server: StudioServer
    replicate: StudioServer

    @property
    def base(self) -> str:
        return self.server.base_url

    def faults(self, **settings: Any) -> None:
        """Change the emulator's behaviour (failure_rate, latency_ms...) from now on."""
        response = httpx.post(
            f"{self.replicate.base_url}/_emulator/faults",
            json=settings,
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            timeout=10,
            trust_env=False,
        )
        assert response.status_code == 200, response.text


@contextmanager
def iterator_studio(tmp: Path) -> Iterator[Studio]:
    """An emulator (LATENCY_MS per prediction) and a `studio serve` using it, in `tmp`
    (as `editor_server` makes it: SQLite, data in `tmp`/data)."""
    replicate = StudioServer(
        env=studio_env(
            EMULATOR_LATENCY_MS=str(LATENCY_MS),
            REPLICATE_WEBHOOK_SECRET=WEBHOOK_SECRET,
            REPLICATE_API_TOKEN=API_TOKEN,
        ),
        cwd=tmp,
        name="iterator-emulator",
        command="emulator",
        ready_path="/_emulator/health",
    )
    replicate.start(timeout=START)
    server = StudioServer(
        env=studio_env(STUDIO_DATA_DIR=str(tmp / "data"), **studio_settings(replicate)),
        cwd=tmp,
        name="web-iterator",
    )
    try:
        server.start(timeout=START)
        yield Studio(server, replicate)
    finally:
        server.stop()
        replicate.stop()


def studio_settings(replicate: StudioServer) -> dict[str, str]:
    """The settings of a `studio serve` that generates with `replicate`, polling often."""
    return {
        "REPLICATE_BASE_URL": replicate.base_url,
        "REPLICATE_API_TOKEN": API_TOKEN,
        "REPLICATE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "GENERATION_POLL_SECONDS": "0.3",
    }


# -- set-up over the API ---------------------------------------------------------------------


@dataclass
class Board:
    """A project with two scenes: scene 1 has shots 1 (with a prompt) and 2 (without)."""

    project_id: str
    shots: list[str]

    def path(self, shot: int | None = None) -> str:
        tail = f"/{self.shots[shot]}" if shot is not None else ""
        return f"/projects/{self.project_id}/shots{tail}"


def board(base: str, person: Person) -> Board:
    """A new project of `person`'s team (Person.team_id) with the scenes Board describes."""
    project = mutation(
        base,
        "mutation($i: CreateProjectInput!) { createProject(input: $i) {"
        " project { id } userErrors { code message } } }",
        {"i": {"title": "Harbour at Dawn", "teamId": person.team_id}},
        token=person.token,
    )["project"]["id"]
    shots: list[str] = []
    for title, drafts in (
        (
            "The harbour",
            [
                {"description": "Boats at rest", "initialPrompt": "fishing boats at dawn, mist"},
                {"description": "The quay"},
            ],
        ),
        ("The lighthouse", [{"description": "Beam", "initialPrompt": "a lighthouse beam"}]),
    ):
        scene = mutation(
            base,
            "mutation($i: CreateSceneInput!) { createScene(input: $i) {"
            " scene { shots { id } } userErrors { code message } } }",
            {"i": {"projectId": project, "title": title, "shots": drafts}},
            token=person.token,
        )["scene"]
        shots += [shot["id"] for shot in scene["shots"]]
    return Board(project, shots)


def images_of(base: str, person: Person, shot_id: str) -> list[dict[str, Any]]:
    """The shot's images over the API, by iteration then variant."""
    shot = graphql(
        base,
        "query($id: ID!) { node(id: $id) { ... on Shot { images { id status isFavorite"
        " iterationNumber variantNumber metadata parentImage { id } } } } }",
        {"id": shot_id},
        token=person.token,
    )["node"]
    images: list[dict[str, Any]] = shot["images"]
    return images


def master_of(base: str, person: Person, shot_id: str) -> str | None:
    """The ID of the shot's master image, over the API."""
    shot = graphql(
        base,
        "query($id: ID!) { node(id: $id) { ... on Shot { selectedImage { id } } } }",
        {"id": shot_id},
        token=person.token,
    )["node"]
    return shot["selectedImage"]["id"] if shot["selectedImage"] else None


def crew(base: str, owner: Person, name: str) -> tuple[Person, Person]:
    """`owner` and a new person `name`, both in a new team of `owner`'s (as Persons
    working in it); the new person joins by invitation as an editor."""
    team = mutation(
        base,
        "mutation($i: CreateTeamInput!) { createTeam(input: $i) {"
        " team { id } userErrors { code message } } }",
        {"i": {"name": "Harbour crew"}},
        token=owner.token,
    )["team"]["id"]
    code = mutation(
        base,
        "mutation($i: InviteTeamMemberInput!) { inviteTeamMember(input: $i) {"
        " code userErrors { code message } } }",
        {"i": {"teamId": team, "role": "EDITOR"}},
        token=owner.token,
    )["code"]
    other = sign_up(base, name)
    mutation(
        base,
        "mutation($i: AcceptInvitationInput!) { acceptInvitation(input: $i) {"
        " userErrors { code message } } }",
        {"i": {"code": code}},
        token=other.token,
    )
    return (
        Person(owner.token, owner.user_id, owner.email, owner.name, team),
        Person(other.token, other.user_id, other.email, name, team),
    )


# -- on the page ---------------------------------------------------------------------------------


def tiles(page: Page, iteration: int | None = None) -> Locator:
    """The tiles of the iteration numbered `iteration` in the API (from 0), or all."""
    if iteration is None:
        return page.locator("li.tile")
    return page.locator(f'section[data-iteration="{iteration}"] li.tile')


def tile(page: Page, iteration: int, variant: int) -> Locator:
    """The tile of iteration `iteration`, variant `variant` (counted from 1, as shown)."""
    return page.locator("li.tile").filter(
        has=page.get_by_role("group", name=f"Iteration {iteration}, variant {variant}", exact=True)
    )


async def all_complete(page: Page, iteration: int, count: int = 6) -> None:
    """Waits until the API's iteration `iteration` shows `count` tiles, all COMPLETE."""
    await expect(tiles(page, iteration)).to_have_count(count, timeout=LIVE)
    await expect(
        tiles(page, iteration).and_(page.locator('[data-status="COMPLETE"]'))
    ).to_have_count(count, timeout=LIVE)


async def generate(page: Page) -> None:
    """Asks for six with the generate form as it is."""
    await page.get_by_role("button", name="Generate 6").click()
