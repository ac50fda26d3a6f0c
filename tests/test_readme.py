"""The README's examples are valid against the schema, so they cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

from graphql import DocumentNode, OperationDefinitionNode, parse, validate

from api.schema import schema

README = Path(__file__).resolve().parent.parent / "README.md"


def graphql_blocks() -> list[str]:
    return re.findall(r"```graphql\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_has_examples() -> None:
    assert len(graphql_blocks()) >= 5


def test_every_readme_example_is_valid_against_the_schema() -> None:
    for block in graphql_blocks():
        document = parse(block)
        for definition in document.definitions:
            single = DocumentNode(definitions=(definition,))
            errors = validate(schema._schema, single)
            assert errors == [], f"{errors}\n{block}"


def test_a_block_of_several_operations_names_each_one() -> None:
    """Pasted whole into GraphiQL or sent as one document, each can be picked by its name."""
    for block in graphql_blocks():
        operations = [
            definition
            for definition in parse(block).definitions
            if isinstance(definition, OperationDefinitionNode)
        ]
        if len(operations) > 1:
            assert all(operation.name is not None for operation in operations), block


# What the README claims in prose is checked against the code where a machine can:
# settings, commands, endpoints and paths. A claim that goes stale fails here.

ROOT = README.parent


def _settings_fields() -> set[str]:
    from api.settings import Settings

    return {name.upper() for name in Settings.model_fields}


def test_every_setting_in_the_configuration_table_exists_and_every_setting_is_there() -> None:
    text = README.read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", section, flags=re.MULTILINE))
    fields = _settings_fields()
    assert documented - fields == set(), "documented but not a setting"
    assert fields - documented == set(), "a setting the Configuration table does not list"


def test_every_dev_command_the_readme_names_exists() -> None:
    dev = (ROOT / "dev").read_text()
    commands = set(re.findall(r"`\./dev ([a-z]+)", README.read_text()))
    assert commands, "the README names no ./dev command"
    for command in commands:
        assert re.search(rf"^\s*{command}\)", dev, flags=re.MULTILINE), f"./dev {command}"


def test_every_studio_command_the_readme_names_exists() -> None:
    from api import cli

    source = Path(cli.__file__).read_text()
    commands = set(re.findall(r"`studio ([a-z]+)", README.read_text()))
    assert commands
    for command in commands:
        assert f'"{command}"' in source, f"studio {command}"


def test_every_endpoint_in_the_table_is_routed() -> None:
    from starlette.routing import Mount, Route, WebSocketRoute

    from api.app import create_app
    from api.settings import Settings

    section = README.read_text().split("## Endpoints", 1)[1].split("\n## ", 1)[0]
    paths = set(re.findall(r"^\| `(?:[A-Z]+|WS) (/[^ `]*)", section, flags=re.MULTILINE))
    app = create_app(Settings())
    routed = {
        route.path.split("{")[0].rstrip("/") or "/"
        for route in app.routes
        if isinstance(route, Route | WebSocketRoute | Mount)
    }
    assert paths
    for path in paths:
        stem = path.split("...")[0].rstrip("/") or "/"
        assert stem in routed, path


def test_every_file_or_folder_the_readme_points_to_exists() -> None:
    text = README.read_text()
    named = set(
        re.findall(
            r"`((?:api|schema|resolvers|services|migrations|web|tests|deploy)/[\w./-]*)`", text
        )
    )
    tree = text.split("## Architecture in a page", 1)[1].split("```", 2)[1]
    named |= set(
        re.findall(
            r"^((?:api|schema|resolvers|services|migrations|web|tests)/[\w./-]*)",
            tree,
            flags=re.MULTILINE,
        )
    )
    assert named
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert missing == []


def test_every_module_the_architecture_page_names_exists() -> None:
    """The layout block names modules by file (`feed.py`); each is a file of the project."""
    text = README.read_text()
    tree = text.split("## Architecture in a page", 1)[1].split("```", 2)[1]
    named = set(re.findall(r"\b(\w+\.py)\b", tree))
    files = {
        path.name
        for folder in ("api", "schema", "resolvers", "services", "tests")
        for path in (ROOT / folder).rglob("*.py")
    }
    assert len(named) > 30
    assert sorted(named - files) == []
