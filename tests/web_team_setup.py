"""Teams, members and projects set up over the public API for the editor's browser tests."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from tests.web_harness import Person, graphql, mutation

ERRORS = "userErrors { code field message }"


def new_team(base: str, owner: Person, name: str) -> str:
    """A team `owner` creates (and owns); its global ID."""
    payload = mutation(
        base,
        f"mutation($input: CreateTeamInput!) {{ createTeam(input: $input) {{ team {{ id }} {ERRORS} }} }}",
        {"input": {"name": name}},
        token=owner.token,
    )
    team_id: str = payload["team"]["id"]
    return team_id


def invitation_code(base: str, manager: Person, team_id: str, role: str = "EDITOR") -> str:
    """A fresh single-use invitation code (sbi_...) to `team_id` for `role`."""
    payload = mutation(
        base,
        "mutation($input: InviteTeamMemberInput!) {"
        f" inviteTeamMember(input: $input) {{ code {ERRORS} }} }}",
        {"input": {"teamId": team_id, "role": role}},
        token=manager.token,
    )
    code: str = payload["code"]
    return code


def accept(base: str, person: Person, code: str) -> dict[str, Any]:
    """The acceptInvitation payload for `person` and `code` (userErrors not checked)."""
    data = graphql(
        base,
        "mutation($input: AcceptInvitationInput!) {"
        f" acceptInvitation(input: $input) {{ team {{ id }} {ERRORS} }} }}",
        {"input": {"code": code}},
        token=person.token,
    )
    payload: dict[str, Any] = data["acceptInvitation"]
    return payload


def join(base: str, manager: Person, person: Person, team_id: str, role: str = "EDITOR") -> Person:
    """`person` invited by `manager` and joined; the same person working in `team_id`."""
    payload = accept(base, person, invitation_code(base, manager, team_id, role))
    assert payload["userErrors"] == [], payload["userErrors"]
    return in_team(person, team_id)


def in_team(person: Person, team_id: str) -> Person:
    """`person` with `team_id` as the team the editor opens in."""
    return replace(person, team_id=team_id)


def member_ids(base: str, person: Person, team_id: str) -> list[str]:
    """The user IDs of the team's members, as `person` sees them."""
    data = graphql(
        base,
        "query($id: ID!) { team(id: $id) { members { user { id } } } }",
        {"id": team_id},
        token=person.token,
    )
    return [m["user"]["id"] for m in data["team"]["members"]]


def new_project(base: str, person: Person, team_id: str, title: str) -> str:
    """A project made over the API; its global ID."""
    payload = mutation(
        base,
        "mutation($input: CreateProjectInput!) {"
        f" createProject(input: $input) {{ project {{ id }} {ERRORS} }} }}",
        {"input": {"teamId": team_id, "title": title}},
        token=person.token,
    )
    project_id: str = payload["project"]["id"]
    return project_id


def new_scene(base: str, person: Person, project_id: str, title: str, shots: int) -> list[str]:
    """A scene with `shots` shots appended to the project; the shots' IDs."""
    payload = mutation(
        base,
        "mutation($input: CreateSceneInput!) {"
        f" createScene(input: $input) {{ scene {{ shots {{ id }} }} {ERRORS} }} }}",
        {
            "input": {
                "projectId": project_id,
                "title": title,
                "shots": [{"description": f"{title}, shot {n + 1}"} for n in range(shots)],
            }
        },
        token=person.token,
    )
    return [shot["id"] for shot in payload["scene"]["shots"]]


def wait_for(check: Any, what: str, timeout: float = 30.0) -> Any:
    """Polls check() every 0.2 s until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def generated_images(base: str, person: Person, shot_id: str) -> list[str]:
    """Generates the shot's first iteration of six (built-in emulator) and waits until
    every image is COMPLETE; their IDs."""
    mutation(
        base,
        "mutation($input: GenerateShotImagesInput!) {"
        f" generateShotImages(input: $input) {{ images {{ id }} {ERRORS} }} }}",
        {"input": {"shotId": shot_id, "prompt": "A harbour at dawn, lanterns on the water"}},
        token=person.token,
    )

    def complete() -> list[str] | None:
        data = graphql(
            base,
            "query($id: ID!) { node(id: $id) { ... on Shot { images { id status } } } }",
            {"id": shot_id},
            token=person.token,
        )
        images = data["node"]["images"]
        statuses = {image["status"] for image in images}
        assert "FAILED" not in statuses, images
        return [image["id"] for image in images] if statuses == {"COMPLETE"} else None

    ids: list[str] = wait_for(complete, "the images to complete")
    return ids


def animated_master(base: str, person: Person, shot_id: str, image_id: str) -> None:
    """Makes `image_id` the shot's master and animates it; waits for the clip."""
    payload = mutation(
        base,
        "mutation($input: SelectMasterShotInput!) {"
        f" selectMasterShot(input: $input) {{ selection {{ id }} {ERRORS} }} }}",
        {"input": {"shotId": shot_id, "imageId": image_id}},
        token=person.token,
    )
    selection = payload["selection"]["id"]
    mutation(
        base,
        "mutation($input: AnimateShotInput!) {"
        f" animateShot(input: $input) {{ selection {{ id }} {ERRORS} }} }}",
        {"input": {"selectionId": selection}},
        token=person.token,
    )

    def done() -> bool:
        data = graphql(
            base,
            "query($id: ID!) { node(id: $id) { ... on StoryboardSelection { animationStatus } } }",
            {"id": selection},
            token=person.token,
        )
        status = data["node"]["animationStatus"]
        assert status != "FAILED"
        return bool(status == "COMPLETE")

    wait_for(done, "the clip")
