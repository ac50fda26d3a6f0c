"""The README's examples are valid against the schema, so they cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

from graphql import DocumentNode, parse, validate

from schema.app import schema

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
