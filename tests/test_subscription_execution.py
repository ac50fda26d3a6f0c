"""Subscription events are executed without keeping anything per event."""

from __future__ import annotations

from graphql import ExecutionResult, build_schema, parse
from graphql.execution.executor import Executor

from schema import app as _app  # noqa: F401  (what the server imports, with its correction)


def test_each_event_leaves_nothing_behind_in_the_subscription() -> None:
    sdl = build_schema(
        "type Query { a: Int } type Subscription { event: Event } type Event { n: Int }"
    )
    executor = Executor.build(sdl, parse("subscription { event { n } }"))
    assert isinstance(executor, Executor)
    results = [
        executor.build_per_event_executor({"event": {"n": n}}).execute_operation(False)
        for n in range(50)
    ]
    assert results[-1] == ExecutionResult(data={"event": {"n": 49}})
    assert len(executor._relevant_sub_fields) == 0
