"""Our executor (`StudioExecutor`), and one correction to graphql-core 3.3's
subscription execution, applied on import.

`Executor.build_per_event_executor` makes each event's executor with a shallow
copy, so every event shares the subscription's memo of collected sub-fields. The
memo is keyed by the identity of a list made anew for every event, so it gains an
entry per event and is never emptied: about 1 KB per event per subscription, for
as long as the subscription lasts. Each event's executor gets its own memo here,
which is dropped with it. The memo only saves work within one execution, so this
changes no result.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLOutputType, GraphQLResolveInfo
from graphql.execution.executor import Executor
from graphql.pyutils import Path, RefMap
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from schema.compiled import Finished

_build_per_event_executor = Executor.build_per_event_executor


def _per_event_executor(self: Executor[Any], payload: Any) -> Executor[Any]:
    executor = _build_per_event_executor(self, payload)
    executor._relevant_sub_fields = {}
    executor._stream_usages = RefMap()
    return executor


Executor.build_per_event_executor = _per_event_executor  # type: ignore[method-assign]


class StudioExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, taking a compiled read's value (`schema.compiled.Finished`)
    as the field's completed value instead of walking it field by field."""

    def complete_value(
        self,
        return_type: GraphQLOutputType,
        field_details_list: Any,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        if type(result) is Finished:
            return result.value
        return super().complete_value(
            return_type, field_details_list, info, path, result, position_context
        )
