"""Documents whose validation would cost too much are refused before they are validated.

graphql-core's same-named-fields check is quadratic (see schema.validation_budget):
each shape below, under the depth, alias and token limits, took 0.2-3.5 s of
validation on the event loop before the budget.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import get_introspection_query, parse

from api.bench import run as bench
from api.schema import schema
from schema.app import MAX_VALIDATION_WORK
from schema.validation_budget import validation_work
from tests import test_n_plus_one
from tests.servers import StudioServer, studio_env


def _tree(depth: int, width: int, scene: bool = False) -> str:
    """`scenes{project{scenes{...}}}` `width` copies wide at every level, `id` at the leaves."""
    if depth == 0:
        return "id"
    inner = _tree(depth - 1, width, not scene)
    return " ".join([f"{'project' if scene else 'scenes'} {{ {inner} }}"] * width)


BOMBS: dict[str, Callable[[], str]] = {
    "one field many times": lambda: "{" + " viewer{id}" * 990 + "}",
    "a leaf many times": lambda: "{" + " __typename" * 3900 + "}",
    "many fields of one object": lambda: "{viewer{" + " id" * 3900 + "}}",
    "several fields many times": lambda: "{viewer{" + " id email name teams{id}" * 400 + "}}",
    "many fragments spread once each": lambda: (
        " ".join(f"fragment F{i} on User{{id email}}" for i in range(247))
        + " {viewer{"
        + " ".join(f"...F{i}" for i in range(247))
        + "}}"
    ),
    "one fragment spread many times": lambda: (
        "fragment F on User{id email name} {viewer{" + " ...F" * 990 + "}}"
    ),
    "inline fragments": lambda: "{viewer{" + " ... on User{id}" * 600 + "}}",
    "nested selections": lambda: "{" + " viewer{teams{id name}}" * 495 + "}",
    "a tree two wide and eight deep": lambda: '{ project(id:"x") { ' + _tree(8, 2) + " } }",
    "fragments spreading each other twice": lambda: (
        '{ project(id:"x") { ...P0 } } '
        + " ".join(
            f"fragment P{i} on Project {{ scenes {{ ...S{i + 1} }} scenes {{ ...S{i + 1} }} }}"
            if i % 2 == 0
            else f"fragment S{i} on Scene {{ project {{ ...P{i + 1} }} project {{ ...P{i + 1} }} }}"
            for i in range(30)
        )
        + " fragment P30 on Project { id }"
    ),
}


@pytest.mark.parametrize("shape", list(BOMBS))
async def test_costly_documents_are_refused_before_validation(
    shape: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refusing walks at most MAX_VALIDATION_WORK steps; graphql-core's validation (which
    took up to seconds on these) never runs. Counted, not timed: a loaded machine makes
    any time bound flaky."""
    import strawberry.schema.schema as strawberry_schema

    validated: list[object] = []
    original = strawberry_schema.validate  # type: ignore[attr-defined]

    def counting(*args: Any, **kwargs: Any) -> Any:
        validated.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(strawberry_schema, "validate", counting)
    result = await schema.execute(BOMBS[shape]())
    assert result.data is None
    assert result.errors is not None
    assert [error.extensions for error in result.errors] == [{"code": "TOO_COMPLEX"}], shape
    assert validated == []


def _readme_queries() -> list[str]:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    return re.findall(r"```graphql\n(.*?)```", readme, re.S)


def _realistic() -> Iterator[tuple[str, str]]:
    yield "introspection", get_introspection_query(descriptions=True)
    yield "editor's nested storyboard query", test_n_plus_one.NESTED
    yield "bench's nested query", bench.NESTED
    for number, query in enumerate(_readme_queries()):
        yield f"README example {number}", query


@pytest.mark.parametrize(("name", "query"), list(_realistic()), ids=lambda v: str(v)[:40])
def test_real_queries_are_well_within_the_budget(name: str, query: str) -> None:
    work = validation_work(parse(query), limit=MAX_VALIDATION_WORK)
    assert work is not None, name
    assert work * 4 < MAX_VALIDATION_WORK, (name, work)


def test_the_readme_has_example_queries() -> None:
    assert len(_readme_queries()) >= 10


async def test_introspection_still_runs() -> None:
    result = await schema.execute(get_introspection_query(descriptions=True))
    assert result.errors is None
    assert result.data is not None
    assert result.data["__schema"]["queryType"]["name"] == "Query"


async def test_the_schema_is_asked_for_a_bounded_number_of_times_per_operation() -> None:
    """Each `__schema` answer is about a megabyte of work; aliased copies were a CPU bomb."""
    fields = "types { name fields { name args { name } type { name ofType { name } } } }"
    for copies, refused in ((1, False), (2, False), (3, True), (14, True)):
        document = "{ " + " ".join(f"s{n}: __schema {{ {fields} }}" for n in range(copies)) + " }"
        result = await schema.execute(document)
        codes = [(error.extensions or {}).get("code") for error in result.errors or []]
        assert codes == (["TOO_COMPLEX"] if refused else []), (copies, result.errors)
    typed = "{ " + " ".join(f't{n}: __type(name: "Shot") {{ name }}' for n in range(3)) + " }"
    result = await schema.execute(typed)
    assert [(e.extensions or {}).get("code") for e in result.errors or []] == ["TOO_COMPLEX"]


def test_the_walk_stops_at_its_limit() -> None:
    document = parse(BOMBS["one field many times"]())
    started = time.perf_counter()
    assert validation_work(document, limit=1000) is None
    assert time.perf_counter() - started < 0.05
    assert validation_work(parse("{viewer{id} viewer{id}}"), limit=1000) == 11


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioServer]:
    tmp = tmp_path_factory.mktemp("budget")
    server = StudioServer(
        env=studio_env(
            DATABASE_URL=f"sqlite+aiosqlite:///{tmp / 'studio.db'}",
            SECRET_KEY="validation budget tests secret key, long enough",
        ),
        cwd=tmp,
        name="budget",
    )
    with server:
        yield server


@pytest.mark.e2e
def test_an_anonymous_bomb_over_http_is_refused_at_once(studio: StudioServer) -> None:
    with httpx.Client(base_url=studio.base_url, trust_env=False, timeout=30) as http:
        for shape in ("one field many times", "many fragments spread once each"):
            started = time.perf_counter()
            response = http.post("/graphql", json={"query": BOMBS[shape]()})
            elapsed = time.perf_counter() - started
            assert response.status_code == 200, response.text
            errors = response.json()["errors"]
            assert [error["extensions"]["code"] for error in errors] == ["TOO_COMPLEX"]
            assert elapsed < 0.5, (shape, elapsed)
        health = http.get("/healthz")
        assert health.status_code == 200


CYCLES = {
    "a fragment spreading itself": "fragment A on User { ...A id } { viewer { ...A } }",
    "two fragments through fields": (
        "fragment A on User { teams { ...B } } fragment B on Team { members { user { ...A } } } "
        "{ viewer { ...A } }"
    ),
    "the same, compared in a pair": (
        "fragment A on User { teams { ...B } } fragment B on Team { members { user { ...A } } } "
        "{ viewer { ...A } viewer { ...A } }"
    ),
}


@pytest.mark.parametrize("shape", list(CYCLES))
async def test_fragment_cycles_end_the_walk(shape: str) -> None:
    """A cycle is graphql-core's error to report; the walk neither loops nor overflows."""
    result = await schema.execute(CYCLES[shape])
    assert result.errors is not None
    (error,) = result.errors
    assert error.extensions == {"code": "TOO_COMPLEX"} or "within itself" in error.message


async def test_a_document_is_validated_once_however_often_it_is_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The validation cache is keyed by the rules: the depth and alias rules must be the
    same classes on every operation, or every request is validated again (it was)."""
    import strawberry.schema.schema as strawberry_schema

    calls: list[object] = []
    original = strawberry_schema.validate  # type: ignore[attr-defined]

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(strawberry_schema, "validate", counting)
    document = '{ __typename once: __type(name: "Scene") { name } }'
    for _ in range(3):
        result = await schema.execute(document)
        assert result.errors is None, result.errors
    assert len(calls) <= 1
