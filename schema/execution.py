"""One correction to graphql-core 3.3's subscription execution, applied on import.

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

from graphql.execution.executor import Executor
from graphql.pyutils import RefMap

_build_per_event_executor = Executor.build_per_event_executor


def _per_event_executor(self: Executor[Any], payload: Any) -> Executor[Any]:
    executor = _build_per_event_executor(self, payload)
    executor._relevant_sub_fields = {}
    executor._stream_usages = RefMap()
    return executor


Executor.build_per_event_executor = _per_event_executor  # type: ignore[method-assign]
