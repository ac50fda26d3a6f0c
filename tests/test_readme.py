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
