"""The layers import one way: resolvers import the schema's types, never the reverse.

Read from the source with `ast`, so every import counts wherever it stands: at
module level, inside a function (a lazy import only hides a cycle), or under
`TYPE_CHECKING`. From the bottom: `services/` (the domain), `schema/`,
`resolvers/`, and `api/`, the composition root, whose `api.schema` composes the
`Schema` from the resolvers' root types. Each imports only those below it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("api", "schema", "resolvers", "services")


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(root: Path) -> Iterator[tuple[str, int, str]]:
    """(importing module, line, imported module) for every import of a first-party module.

    `from package import name` counts as an import of `package.name` when that is
    a module, else of `package`; relative imports are resolved.
    """
    modules = {
        _module_name(path, root): path
        for package in PACKAGES
        for path in (root / package).rglob("*.py")
    }
    for name, path in sorted(modules.items()):
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")
                    anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            else:
                continue
            for target in targets:
                if target.split(".")[0] in PACKAGES:
                    yield name, node.lineno, target


def _package(module: str) -> str:
    return module.split(".")[0]


def reaches(root: Path, start: str, goal: str) -> list[str]:
    """An import chain from a module of package `start` to one of package `goal`; [] if none."""
    edges: dict[str, set[str]] = {}
    for source, _, target in imports(root):
        edges.setdefault(source, set()).add(target)
    frontier = [[module] for module in sorted(edges) if _package(module) == start]
    seen = {chain[0] for chain in frontier}
    while frontier:
        chain = frontier.pop()
        for target in sorted(edges.get(chain[-1], ())):
            if _package(target) == goal:
                return [*chain, target]
            if target not in seen:
                seen.add(target)
                frontier.append([*chain, target])
    return []


def test_no_module_of_the_schema_imports_a_resolver() -> None:
    found = [
        f"{source}:{line} imports {target}"
        for source, line, target in imports(ROOT)
        if _package(source) == "schema" and _package(target) == "resolvers"
    ]
    assert found == [], "schema/ must not import resolvers/ (it is the other way):\n" + "\n".join(
        found
    )


def test_the_schema_does_not_reach_the_resolvers_through_another_module() -> None:
    assert reaches(ROOT, "schema", "resolvers") == []


def test_the_domain_imports_neither_the_schema_nor_the_resolvers() -> None:
    assert reaches(ROOT, "services", "schema") == []
    assert reaches(ROOT, "services", "resolvers") == []


def test_only_the_composition_root_imports_api() -> None:
    for package in ("schema", "resolvers", "services"):
        assert reaches(ROOT, package, "api") == [], package


def test_the_check_sees_function_level_and_type_checking_imports(tmp_path: Path) -> None:
    (tmp_path / "schema").mkdir()
    (tmp_path / "resolvers").mkdir()
    (tmp_path / "schema" / "__init__.py").write_text("")
    (tmp_path / "resolvers" / "__init__.py").write_text("")
    (tmp_path / "resolvers" / "query.py").write_text("from schema import types\n")
    (tmp_path / "schema" / "types.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from resolvers.query import Query\n"
        "def late():\n    from ..resolvers import query\n"
    )
    (tmp_path / "schema" / "other.py").write_text("from . import types\n")
    assert sorted(imports(tmp_path)) == [
        ("resolvers.query", 1, "schema.types"),
        ("schema.other", 1, "schema.types"),
        ("schema.types", 3, "resolvers.query"),
        ("schema.types", 5, "resolvers.query"),
    ]
    assert reaches(tmp_path, "schema", "resolvers")[-1] == "resolvers.query"


MAX_SERVICE_MODULE_LINES = 500


def test_no_module_in_services_is_longer_than_500_lines() -> None:
    """One module per concept: a module that grows past this holds several."""
    long = {
        str(path.relative_to(ROOT)): lines
        for path in (ROOT / "services").rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_SERVICE_MODULE_LINES
    }
    assert long == {}
